// Case 03 — stale state at the month rollover; allowance changes applied backwards
// (shared/cases/case-03-month-rollover-and-lock-in.md).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, assertReceipt, assertStatus, assert402, rowMoney,
} from './lib/harness.mjs';

const CONFIG = {
  allowance: { default_microdollars: 10_000_000, tiers: { small_microdollars: 5_000_000 } },
  admission: { policy: 'any_remaining' },
};

// Users u1..u4 with keys, no tier; user:u3 2,000,000 effective 2025-02-01, non-expiring.
async function setup(h) {
  const keys = await h.usersWithKeys(['u1', 'u2', 'u3', 'u4']);
  await h.admin.grant('user:u3', 2_000_000, { effective_at: '2025-02-01T00:00:00Z' });
  return keys;
}

describe('case 03 part A: rollover with warm state (u1), one process throughout', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-01-15T12:00:00Z' });
  let keys;
  before(async () => { keys = await setup(h); });

  it('step 1: 2025-01-15T12:00:00Z, cost 10.000000 -> 200, free 10,000,000', async () => {
    await h.setClock('2025-01-15T12:00:00Z');
    const res = await h.search(keys.u1, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 0 });
  });

  it('step 2: 2025-01-31T23:00:00Z -> 402, not forwarded', async () => {
    await h.setClock('2025-01-31T23:00:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u1, '0.007'));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'personal' });
  });

  it('step 3: 2025-02-01T00:00:00Z -> 200, free 7,000; January unchanged', async () => {
    await h.setClock('2025-02-01T00:00:00Z');
    const res = await h.expectUpstreamCalls(1, () => h.search(keys.u1, '0.007'));
    assertStatus(res, 200);
    assertReceipt(res, { cost: 7000, free: 7000, charged: 0, remaining: 9_993_000, balance: 0 });
    await h.expectUsage('u1', '2025-02', {
      free_allowance: 10_000_000,
      free_used: 7000,
      contexts: { personal: { request_count: 1, total_cost: 7000, total_free: 7000, total_charged: 0 } },
    });
    await h.expectUsage('u1', '2025-01', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 1, total_cost: 10_000_000, total_free: 10_000_000, total_charged: 0 } },
    });
  });

  it('step 4: 2025-02-01T00:00:05Z, cost 9.993000 -> 200, free 9,993,000, remaining 0', async () => {
    await h.setClock('2025-02-01T00:00:05Z');
    const res = await h.search(keys.u1, '9.993000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 9_993_000, free: 9_993_000, charged: 0, remaining: 0, balance: 0 });
    await h.expectUsage('u1', '2025-02', { free_used: 10_000_000 });
  });

  it('step 5: 2025-02-01T00:00:10Z -> 402, not forwarded; balance 0 throughout', async () => {
    await h.setClock('2025-02-01T00:00:10Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u1, '0.007'));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'personal' });
    await h.expectAccount('user:u1', { balance: 0, held: 0 });
    await h.expectUsage('u1', '2025-02', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 2, total_cost: 10_000_000, total_free: 10_000_000, total_charged: 0 } },
    });
  });

  it('recompute reports no drift', async () => { await h.expectNoDrift(); });
});

describe('case 03 part B: configuration changed after the lock (u2, u3)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-02-03T00:00:00Z' });
  let keys;
  before(async () => { keys = await setup(h); });

  it('step 6: 2025-02-03T00:00:00Z, u2 cost 4.000000 -> 200, February locked at 10,000,000', async () => {
    await h.setClock('2025-02-03T00:00:00Z');
    const res = await h.search(keys.u2, '4.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 4_000_000, free: 4_000_000, charged: 0, remaining: 6_000_000, balance: 0 });
    await h.expectUsage('u2', '2025-02', { free_allowance: 10_000_000, free_used: 4_000_000 });
  });

  it('step 7: 2025-02-10T00:00:00Z, restart with default_microdollars = 5,000,000', async () => {
    await h.setClock('2025-02-10T00:00:00Z');
    await h.tollgate.restart({
      config: { ...CONFIG, allowance: { ...CONFIG.allowance, default_microdollars: 5_000_000 } },
    });
  });

  it('step 8: 2025-02-11T00:00:00Z, u2 cost 3.000000 -> 200, free; February still 10,000,000', async () => {
    await h.setClock('2025-02-11T00:00:00Z');
    const res = await h.search(keys.u2, '3.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 3_000_000, free: 3_000_000, charged: 0, remaining: 3_000_000, balance: 0 });
    await h.expectUsage('u2', '2025-02', {
      free_allowance: 10_000_000,
      free_used: 7_000_000,
      contexts: { personal: { request_count: 2, total_cost: 7_000_000, total_free: 7_000_000, total_charged: 0 } },
    });
    await h.expectAccount('user:u2', { balance: 0, held: 0 });
  });

  it('step 9: 2025-02-12T00:00:00Z, u3 first February request cost 6.000000 -> locked at 5,000,000', async () => {
    await h.setClock('2025-02-12T00:00:00Z');
    const res = await h.search(keys.u3, '6.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 6_000_000, free: 5_000_000, charged: 1_000_000, remaining: 0, balance: 1_000_000 });
    const row = await h.auditRow(res.requestId, { user: 'u3' });
    assert.deepEqual(rowMoney(row), { cost: 6_000_000, free: 5_000_000, charged: 1_000_000, source: 'upstream', status: 200 });
    await h.expectUsage('u3', '2025-02', { free_allowance: 5_000_000, free_used: 5_000_000 });
    await h.expectAccount('user:u3', { balance: 1_000_000, held: 0 });
  });

  it('step 10: 2025-03-01T00:00:00Z, u2 cost 0.001 -> 200; March locked at 5,000,000', async () => {
    await h.setClock('2025-03-01T00:00:00Z');
    const res = await h.search(keys.u2, '0.001');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 1000, free: 1000, charged: 0, remaining: 4_999_000, balance: 0 });
    await h.expectUsage('u2', '2025-03', {
      free_allowance: 5_000_000,
      free_used: 1000,
      contexts: { personal: { request_count: 1, total_cost: 1000, total_free: 1000, total_charged: 0 } },
    });
    await h.expectUsage('u2', '2025-02', { free_allowance: 10_000_000, free_used: 7_000_000 });
  });

  it('recompute reports no drift', async () => { await h.expectNoDrift(); });
});

describe('case 03 part C: tier changed after the lock (u4)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-02-03T00:00:00Z' });
  let keys;
  before(async () => { keys = await setup(h); });

  it('step 11: 2025-02-03T00:00:00Z, u4 cost 4.000000 -> 200, free 4,000,000', async () => {
    await h.setClock('2025-02-03T00:00:00Z');
    const res = await h.search(keys.u4, '4.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 4_000_000, free: 4_000_000, charged: 0, remaining: 6_000_000, balance: 0 });
  });

  it('step 12: 2025-02-10T00:00:00Z, PATCH u4 tier small -> 200', async () => {
    await h.setClock('2025-02-10T00:00:00Z');
    await h.admin.patchUser('u4', { tier: 'small' });
  });

  it('step 13: 2025-02-11T00:00:00Z, u4 cost 3.000000 -> 200, free; February still 10,000,000', async () => {
    await h.setClock('2025-02-11T00:00:00Z');
    const res = await h.search(keys.u4, '3.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 3_000_000, free: 3_000_000, charged: 0, remaining: 3_000_000, balance: 0 });
    await h.expectUsage('u4', '2025-02', {
      free_allowance: 10_000_000,
      free_used: 7_000_000,
      contexts: { personal: { request_count: 2, total_cost: 7_000_000, total_free: 7_000_000, total_charged: 0 } },
    });
  });

  it('step 14: 2025-03-01T00:00:00Z, u4 cost 0.001 -> 200; March locked at 5,000,000 (tier small)', async () => {
    await h.setClock('2025-03-01T00:00:00Z');
    const res = await h.search(keys.u4, '0.001');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 1000, free: 1000, charged: 0, remaining: 4_999_000, balance: 0 });
    await h.expectUsage('u4', '2025-03', { free_allowance: 5_000_000, free_used: 1000 });
  });

  it('recompute reports no drift', async () => { await h.expectNoDrift(); });
});
