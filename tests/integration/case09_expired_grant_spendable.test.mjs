// Case 09 — an expired grant can still be spent until a sweep runs, or expires twice
// when it does (shared/cases/case-09-expired-grant-spendable.md).
//
// Steps 1-5 run on one process that is never restarted, so no start-up expiry work runs
// before step 6; step 6 restarts tollgate twice (each start runs the expiry sweep) and
// lets the periodic sweep run in between.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, assertReceipt, assertStatus, assert402, rowMoney, grantState, sleep,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

const G1_EFFECTIVE = '2025-08-20T00:00:00.000Z';
const G1_EXPIRES = '2025-09-10T00:00:00.000Z';
// Time given to any background expiry work after each restart.
const SWEEP_WAIT_MS = 1500;

describe('case 09: an expired grant is not spendable, and expires once (September 2025)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-08-20T00:00:00Z' });
  let key;
  let g1;
  let g2;
  before(async () => { ({ u1: key } = await h.usersWithKeys(['u1'])); });

  const g1State = (remaining, expired) => ({
    amount: 3_000_000, remaining, expired, effective_at: G1_EFFECTIVE, expires_at: G1_EXPIRES,
  });

  it('step 1: 2025-08-20, grant G1 3,000,000 effective 2025-08-20, expires 2025-09-10', async () => {
    await h.setClock('2025-08-20T00:00:00Z');
    g1 = await h.admin.grant('user:u1', 3_000_000, {
      effective_at: '2025-08-20T00:00:00Z', expires_at: '2025-09-10T00:00:00Z', idempotency_key: 'case09-g1',
    });
    assert.deepEqual(g1, {
      id: g1.id,
      owner: 'user:u1',
      amount_microdollars: 3_000_000,
      remaining_microdollars: 3_000_000,
      expired_microdollars: 0,
      effective_at: G1_EFFECTIVE,
      expires_at: G1_EXPIRES,
      idempotency_key: 'case09-g1',
    });
    const acc = await h.expectAccount('user:u1', { balance: 3_000_000, held: 0 });
    assert.equal(acc.grants.length, 1, 'no other grants');
    assert.deepEqual(grantState(acc, g1.id), g1State(3_000_000, 0));
  });

  it('step 2: 2025-09-01, cost 10.000000 -> free 10,000,000; G1 untouched', async () => {
    await h.setClock('2025-09-01T00:00:00Z');
    const res = await h.search(key, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 3_000_000 });
    const acc = await h.expectAccount('user:u1', { balance: 3_000_000, held: 0 });
    assert.deepEqual(grantState(acc, g1.id), g1State(3_000_000, 0));
  });

  it('step 3: 2025-09-05T12:00, cost 1.000000 -> charged 1,000,000 from G1; balance 2,000,000', async () => {
    await h.setClock('2025-09-05T12:00:00Z');
    const res = await h.search(key, '1.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 1_000_000, free: 0, charged: 1_000_000, remaining: 0, balance: 2_000_000 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.deepEqual(rowMoney(row), { cost: 1_000_000, free: 0, charged: 1_000_000, source: 'upstream', status: 200 });
    const acc = await h.expectAccount('user:u1', { balance: 2_000_000, held: 0 });
    assert.deepEqual(grantState(acc, g1.id), g1State(2_000_000, 0));
  });

  it('step 4: 2025-09-09T23:59:59.999, cost 0.500000 -> charged 500,000; balance 1,500,000, expired 0', async () => {
    await h.setClock('2025-09-09T23:59:59.999Z');
    const res = await h.search(key, '0.500000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 500_000, free: 0, charged: 500_000, remaining: 0, balance: 1_500_000 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.equal(row.arrived_at, '2025-09-09T23:59:59.999Z');
    const acc = await h.expectAccount('user:u1', { balance: 1_500_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0, 'debt_microdollars');
    assert.deepEqual(grantState(acc, g1.id), g1State(1_500_000, 0));
  });

  it('step 5: 2025-09-10T00:00:00.000 -> 402 with balance 0, not forwarded; G1 expired 1,500,000', async () => {
    await h.setClock('2025-09-10T00:00:00.000Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(key, '0.007'));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'personal' });
    const acc = await h.expectAccount('user:u1', { balance: 0, held: 0 });
    assert.equal(acc.debt_microdollars, 0, 'debt_microdollars');
    assert.deepEqual(grantState(acc, g1.id), g1State(0, 1_500_000));
  });

  it('step 6: 2025-09-13, two restarts with expiry sweeps: still balance 0, G1 expired 1,500,000 once; no drift', async () => {
    await h.setClock('2025-09-13T00:00:00Z');
    for (let restart = 1; restart <= 2; restart++) {
      await h.tollgate.restart();
      await sleep(SWEEP_WAIT_MS);
      const acc = await h.expectAccount('user:u1', { balance: 0, held: 0 });
      assert.equal(acc.debt_microdollars, 0, `debt_microdollars after restart ${restart}`);
      assert.equal(acc.grants.length, 1, `grants after restart ${restart}`);
      assert.deepEqual(grantState(acc, g1.id), g1State(0, 1_500_000), `G1 after restart ${restart}`);
    }
    const report = await h.admin.recompute('user:u1');
    assert.deepEqual(report.drift, [], `recompute drift: ${JSON.stringify(report)}`);
    assert.equal(report.owners_checked, 1, 'owners_checked');
  });

  it('step 7: grant G2 1,000,000 (no expiry) at 2025-09-13; 01:00, cost 0.500000 -> charged from G2', async () => {
    await h.setClock('2025-09-13T00:00:00Z');
    g2 = await h.admin.grant('user:u1', 1_000_000, { idempotency_key: 'case09-g2' });
    assert.deepEqual(g2, {
      id: g2.id,
      owner: 'user:u1',
      amount_microdollars: 1_000_000,
      remaining_microdollars: 1_000_000,
      expired_microdollars: 0,
      effective_at: '2025-09-13T00:00:00.000Z',
      expires_at: null,
      idempotency_key: 'case09-g2',
    });
    await h.expectAccount('user:u1', { balance: 1_000_000, held: 0 });

    await h.setClock('2025-09-13T01:00:00Z');
    const res = await h.search(key, '0.500000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 500_000, free: 0, charged: 500_000, remaining: 0, balance: 500_000 });
    const acc = await h.expectAccount('user:u1', { balance: 500_000, held: 0 });
    assert.deepEqual(grantState(acc, g1.id), g1State(0, 1_500_000));
    assert.deepEqual(grantState(acc, g2.id), {
      amount: 1_000_000, remaining: 500_000, expired: 0, effective_at: '2025-09-13T00:00:00.000Z', expires_at: null,
    });
  });

  it('step 8: totals: granted 4,000,000 = charged 2,000,000 + expired 1,500,000 + balance 500,000', async () => {
    const acc = await h.expectAccount('user:u1', { balance: 500_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0, 'debt_microdollars');
    const granted = acc.grants.reduce((s, g) => s + g.amount_microdollars, 0);
    const expired = acc.grants.reduce((s, g) => s + g.expired_microdollars, 0);
    assert.deepEqual({ granted, expired, balance: acc.balance_microdollars },
      { granted: 4_000_000, expired: 1_500_000, balance: 500_000 });
    const u = await h.expectUsage('u1', '2025-09', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 4, total_cost: 12_000_000, total_free: 10_000_000, total_charged: 2_000_000 } },
    });
    assert.equal(granted, u.contexts[0].total_charged_microdollars + expired + acc.balance_microdollars);
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-09' });
    assert.deepEqual(rows.map((r) => r.charged_microdollars), [0, 1_000_000, 500_000, 500_000]);
    assert.equal(await h.fake.totalCalls(), 4, 'upstream calls');
    await h.expectNoDrift();
  });
});
