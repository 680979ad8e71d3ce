// Case 12 — a request straddling the allowance is mis-split, or its overshoot is lost
// (shared/cases/case-12-straddle-and-debt.md).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, assertReceipt, assertStatus, assert402, rowMoney,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

// Users u1, u2 with keys; G0: user:u1 200,000 effective 2026-02-01, non-expiring.
async function setup(h) {
  const keys = await h.usersWithKeys(['u1', 'u2']);
  const g0 = await h.admin.grant('user:u1', 200_000, { effective_at: '2026-02-01T00:00:00Z' });
  return { keys, g0 };
}

function grantRemaining(account, grantId) {
  const g = account.grants.find((x) => x.id === grantId);
  assert.ok(g, `grant ${grantId} listed in ${JSON.stringify(account)}`);
  return g.remaining_microdollars;
}

describe('case 12 part A: straddle with a large cost, then debt (u1, February 2026)', () => {
  const h = useHarness({ config: CONFIG, clock: '2026-02-02T08:00:00Z' });
  let keys;
  let g0;
  let g1;
  before(async () => { ({ keys, g0 } = await setup(h)); });

  it('step 1: 08:00, cost 9.700000 -> free 9,700,000', async () => {
    await h.setClock('2026-02-02T08:00:00Z');
    const res = await h.search(keys.u1, '9.700000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 9_700_000, free: 9_700_000, charged: 0, remaining: 300_000, balance: 200_000 });
  });

  it('step 2: 08:05, cost 0.700000 -> free 300,000 + charged 400,000; balance -200,000', async () => {
    await h.setClock('2026-02-02T08:05:00Z');
    const res = await h.search(keys.u1, '0.700000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 700_000, free: 300_000, charged: 400_000, remaining: 0, balance: -200_000 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.deepEqual(rowMoney(row), { cost: 700_000, free: 300_000, charged: 400_000, source: 'upstream', status: 200 });
    const acc = await h.expectAccount('user:u1', { balance: -200_000, held: 0 });
    assert.equal(grantRemaining(acc, g0.id), 0, 'G0 remaining');
  });

  it('step 3: 08:10 -> 402 with balance -200000, not forwarded', async () => {
    await h.setClock('2026-02-02T08:10:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u1, '0.007'));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: -200_000, context: 'personal' });
  });

  it('step 4: 08:15, grant G1 1,000,000 repays the debt first: balance 800,000, G1 remaining 800,000', async () => {
    await h.setClock('2026-02-02T08:15:00Z');
    g1 = await h.admin.grant('user:u1', 1_000_000);
    assert.equal(g1.amount_microdollars, 1_000_000);
    assert.equal(g1.remaining_microdollars, 800_000, 'G1 remaining in the 201 answer');
    assert.equal(g1.expires_at, null);
    assert.equal(g1.effective_at, '2026-02-02T08:15:00.000Z');
    const acc = await h.expectAccount('user:u1', { balance: 800_000, held: 0 });
    assert.equal(grantRemaining(acc, g1.id), 800_000, 'G1 remaining');
    assert.equal(grantRemaining(acc, g0.id), 0, 'G0 remaining');
  });

  it('step 5: 08:20, cost 0.050000 -> charged 50,000; balance 750,000', async () => {
    await h.setClock('2026-02-02T08:20:00Z');
    const res = await h.search(keys.u1, '0.050000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 50_000, free: 0, charged: 50_000, remaining: 0, balance: 750_000 });
    const acc = await h.expectAccount('user:u1', { balance: 750_000, held: 0 });
    assert.equal(grantRemaining(acc, g1.id), 750_000, 'G1 remaining');
  });

  it('step 6: February usage; granted 1,200,000 - charged 450,000 = balance 750,000', async () => {
    await h.expectUsage('u1', '2026-02', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 3, total_cost: 10_450_000, total_free: 10_000_000, total_charged: 450_000 } },
    });
    assert.equal(await h.fake.totalCalls(), 3, 'upstream calls in part A');
    await h.expectNoDrift();
  });
});

describe('case 12 part B: straddle with a partial hold (u2, February 2026)', () => {
  const h = useHarness({ config: CONFIG, clock: '2026-02-02T09:00:00Z' });
  let keys;
  before(async () => { ({ keys } = await setup(h)); });

  it('step 7: 09:00, cost 9.997000 -> free 9,997,000 (3,000 left)', async () => {
    await h.setClock('2026-02-02T09:00:00Z');
    const res = await h.search(keys.u2, '9.997000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 9_997_000, free: 9_997_000, charged: 0, remaining: 3000, balance: 0 });
  });

  it('step 8: 09:05, cost 0.007 -> 200 (held 3,000 free); free 3,000 + charged 4,000; balance -4,000', async () => {
    await h.setClock('2026-02-02T09:05:00Z');
    const res = await h.search(keys.u2, '0.007');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 7000, free: 3000, charged: 4000, remaining: 0, balance: -4000 });
    const row = await h.auditRow(res.requestId, { user: 'u2' });
    assert.deepEqual(rowMoney(row), { cost: 7000, free: 3000, charged: 4000, source: 'upstream', status: 200 });
    await h.expectAccount('user:u2', { balance: -4000, held: 0 });
  });

  it('step 9: 09:10 -> 402 with balance -4000, not forwarded', async () => {
    await h.setClock('2026-02-02T09:10:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u2, '0.007'));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: -4000, context: 'personal' });
  });

  it('step 10: 09:15, grant 10,000 -> balance 6,000, its remaining 6,000', async () => {
    await h.setClock('2026-02-02T09:15:00Z');
    const g = await h.admin.grant('user:u2', 10_000);
    assert.equal(g.remaining_microdollars, 6000, 'remaining in the 201 answer');
    const acc = await h.expectAccount('user:u2', { balance: 6000, held: 0 });
    assert.equal(grantRemaining(acc, g.id), 6000);
  });

  it('step 11: 09:20, cost 0.005 -> charged 5,000; balance 1,000; February usage', async () => {
    await h.setClock('2026-02-02T09:20:00Z');
    const res = await h.search(keys.u2, '0.005');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 5000, free: 0, charged: 5000, remaining: 0, balance: 1000 });
    await h.expectAccount('user:u2', { balance: 1000, held: 0 });
    await h.expectUsage('u2', '2026-02', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 3, total_cost: 10_009_000, total_free: 10_000_000, total_charged: 9000 } },
    });
    assert.equal(await h.fake.totalCalls(), 3, 'upstream calls in part B');
    await h.expectNoDrift();
  });
});

describe('case 12 step 12: cover_estimate refuses the partial hold (u2, fresh database)', () => {
  const h = useHarness({
    config: { ...CONFIG, admission: { policy: 'cover_estimate' } },
    clock: '2026-02-02T09:00:00Z',
  });
  let keys;
  before(async () => { ({ keys } = await setup(h)); });

  it('step 7 again: 09:00, cost 9.997000 -> free 9,997,000', async () => {
    await h.setClock('2026-02-02T09:00:00Z');
    const res = await h.search(keys.u2, '9.997000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 9_997_000, free: 9_997_000, charged: 0, remaining: 3000, balance: 0 });
  });

  it('step 8 again: 09:05 -> 402 (available 3,000 < estimate 7,000), nothing forwarded', async () => {
    await h.setClock('2026-02-02T09:05:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u2, '0.007'));
    // Free allowance remains, so the message is about the estimate not being covered.
    assert402(res, { allowance: 10_000_000, used: 9_997_000, balance: 0, context: 'personal', message: /estimat/i });
    await h.expectAccount('user:u2', { balance: 0, held: 0 });
    await h.expectUsage('u2', '2026-02', {
      free_allowance: 10_000_000,
      free_used: 9_997_000,
      contexts: { personal: { request_count: 1, total_cost: 9_997_000, total_free: 9_997_000, total_charged: 0 } },
    });
    assert.equal(await h.fake.totalCalls(), 1, 'upstream calls in the cover_estimate run');
    await h.expectNoDrift();
  });
});
