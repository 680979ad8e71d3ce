// Case 08 — org spending leaks into the personal account; allowance kept per context
// (shared/cases/case-08-org-context-and-shared-allowance.md).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, assertReceipt, assertStatus, assert402, rowMoney,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

describe('case 08: org context and one allowance per user (July 2025)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-07-02T09:00:00Z' });
  let keys;
  const ids = {};
  before(async () => {
    keys = await h.usersWithKeys(['u1', 'u2']);
    await h.admin.createOrg('o1');
    await h.admin.createOrg('o2');
    await h.admin.addMember('o1', 'u1');
    await h.admin.addMember('o2', 'u1');
    await h.admin.addMember('o1', 'u2');
    const effective_at = '2025-07-01T00:00:00Z';
    await h.admin.grant('org:o1', 50_000_000, { effective_at });
    await h.admin.grant('user:u1', 5_000_000, { effective_at });
    await h.admin.grant('user:u2', 3_000_000, { effective_at });
  });

  it('step 1: 09:00, u1 in o1, cost 12.000000 -> free 10,000,000 + charged 2,000,000 to org:o1', async () => {
    await h.setClock('2025-07-02T09:00:00Z');
    const res = await h.search(keys.u1, '12.000000', { org: 'o1' });
    assertStatus(res, 200);
    assertReceipt(res, { cost: 12_000_000, free: 10_000_000, charged: 2_000_000, remaining: 0, balance: 48_000_000 });
    ids.step1 = res.requestId;
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.equal(row.context, 'org:o1');
    assert.deepEqual(rowMoney(row), { cost: 12_000_000, free: 10_000_000, charged: 2_000_000, source: 'upstream', status: 200 });
    await h.expectAccount('org:o1', { balance: 48_000_000, held: 0 });
    await h.expectAccount('user:u1', { balance: 5_000_000, held: 0 });
  });

  it('step 2: 09:05, u1 personal, cost 1.000000 -> free 0 (allowance shared across contexts), charged 1,000,000', async () => {
    await h.setClock('2025-07-02T09:05:00Z');
    const res = await h.search(keys.u1, '1.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 1_000_000, free: 0, charged: 1_000_000, remaining: 0, balance: 4_000_000 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.equal(row.context, 'personal');
    await h.expectAccount('user:u1', { balance: 4_000_000, held: 0 });
    await h.expectAccount('org:o1', { balance: 48_000_000, held: 0 });
  });

  it('step 3: 09:10, u2 with X-Organization-Id: o1, cost 8.000000 -> free 8,000,000 from u2\'s own allowance', async () => {
    await h.setClock('2025-07-02T09:10:00Z');
    const res = await h.search(keys.u2, '8.000000', { org: 'o1', orgHeader: 'X-Organization-Id' });
    assertStatus(res, 200);
    assertReceipt(res, { cost: 8_000_000, free: 8_000_000, charged: 0, remaining: 2_000_000, balance: 48_000_000 });
    ids.step3 = res.requestId;
    const row = await h.auditRow(res.requestId, { user: 'u2' });
    assert.equal(row.context, 'org:o1');
    await h.expectAccount('org:o1', { balance: 48_000_000, held: 0 });
    await h.expectAccount('user:u2', { balance: 3_000_000, held: 0 });
  });

  it('step 4: 09:15, u1 personal, cost 0.500000 -> charged 500,000', async () => {
    await h.setClock('2025-07-02T09:15:00Z');
    const res = await h.search(keys.u1, '0.500000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 500_000, free: 0, charged: 500_000, remaining: 0, balance: 3_500_000 });
    await h.expectAccount('user:u1', { balance: 3_500_000, held: 0 });
  });

  it('step 5: 09:20, u1 in o2 (no credits) -> 402 for org:o2, not forwarded', async () => {
    await h.setClock('2025-07-02T09:20:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u1, '0.007', { org: 'o2' }));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'org:o2' });
  });

  it('step 6: 09:25, u2 in o2 (not a member) -> 403, not forwarded', async () => {
    await h.setClock('2025-07-02T09:25:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u2, '0.007', { org: 'o2' }));
    assertStatus(res, 403);
    assert.equal(typeof res.json?.error, 'string');
  });

  it('step 7: u1 July usage, one allowance over org:o1 and personal', async () => {
    await h.expectUsage('u1', '2025-07', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: {
        'org:o1': { request_count: 1, total_cost: 12_000_000, total_free: 10_000_000, total_charged: 2_000_000 },
        personal: { request_count: 2, total_cost: 1_500_000, total_free: 0, total_charged: 1_500_000 },
      },
    });
  });

  it('step 8: u2 July usage, all under org:o1', async () => {
    await h.expectUsage('u2', '2025-07', {
      free_allowance: 10_000_000,
      free_used: 8_000_000,
      contexts: { 'org:o1': { request_count: 1, total_cost: 8_000_000, total_free: 8_000_000, total_charged: 0 } },
    });
  });

  it('step 9: balances, org usage log, upstream calls, recompute', async () => {
    await h.expectAccount('org:o1', { balance: 48_000_000, held: 0 });
    await h.expectAccount('org:o2', { balance: 0, held: 0 });
    await h.expectAccount('user:u1', { balance: 3_500_000, held: 0 });
    await h.expectAccount('user:u2', { balance: 3_000_000, held: 0 });
    const rows = await h.admin.usageLog({ org: 'o1', month: '2025-07' });
    assert.deepEqual(rows.map((r) => r.request_id), [ids.step1, ids.step3]);
    assert.deepEqual(rows.map((r) => [r.user, r.context]), [['u1', 'org:o1'], ['u2', 'org:o1']]);
    assert.equal(await h.fake.totalCalls(), 4);
    await h.expectNoDrift();
  });
});
