// Case 10 — grant expiry worked out from totals instead of time-ordered usage, or the
// validity bounds of a grant applied off by one
// (shared/cases/case-10-grant-expiry-chronology.md).
//
// Parts A and B each run on a fresh database and process (within a part time only moves
// forward; part B goes back to 2025-10-14). Each part sets up the case's full
// preconditions (all four grants and the set-up request of both users), so each part's
// upstream sees 4 calls; the case's 6 are u1's 3 (part A) and u2's 3 (part B).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, assertReceipt, assertStatus, rowMoney, grantState,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

const OCT1 = '2025-10-01T00:00:00.000Z';
const OCT15 = '2025-10-15T00:00:00.000Z';
const NOV15 = '2025-11-15T00:00:00.000Z';

const G1 = (remaining, expired) => ({ amount: 3_000_000, remaining, expired, effective_at: OCT1, expires_at: OCT15 });
const G2 = (remaining, expired) => ({ amount: 5_000_000, remaining, expired, effective_at: OCT1, expires_at: null });
const H1 = (remaining, expired) => ({ amount: 1_000_000, remaining, expired, effective_at: OCT1, expires_at: OCT15 });
const H2 = (remaining, expired) => ({ amount: 2_000_000, remaining, expired, effective_at: OCT15, expires_at: NOV15 });

// Preconditions at 2025-10-01T00:00:00Z: the four grants, then one request each for u1 and
// u2, cost 10.000000 -> free 10,000,000 (October allowances used up).
async function setup(h) {
  await h.setClock('2025-10-01T00:00:00Z');
  const keys = await h.usersWithKeys(['u1', 'u2']);
  const ids = {};
  const grants = [
    ['g1', 'user:u1', 3_000_000, { effective_at: '2025-10-01T00:00:00Z', expires_at: '2025-10-15T00:00:00Z' }, G1],
    ['g2', 'user:u1', 5_000_000, { effective_at: '2025-10-01T00:00:00Z' }, G2],
    ['h1', 'user:u2', 1_000_000, { effective_at: '2025-10-01T00:00:00Z', expires_at: '2025-10-15T00:00:00Z' }, H1],
    ['h2', 'user:u2', 2_000_000, { effective_at: '2025-10-15T00:00:00Z', expires_at: '2025-11-15T00:00:00Z' }, H2],
  ];
  for (const [name, owner, amount, opts, state] of grants) {
    const g = await h.admin.grant(owner, amount, { ...opts, idempotency_key: `case10-${name}` });
    ids[name] = g.id;
    const { amount: a, remaining, expired, effective_at, expires_at } = state(amount, 0);
    assert.deepEqual(g, {
      id: g.id, owner, amount_microdollars: a, remaining_microdollars: remaining, expired_microdollars: expired,
      effective_at, expires_at, idempotency_key: `case10-${name}`,
    }, `grant ${name}`);
  }
  // u1: G1 + G2 = 8,000,000 spendable; u2: H1 only (H2 not yet effective).
  const r1 = await h.search(keys.u1, '10.000000');
  assertStatus(r1, 200);
  assertReceipt(r1, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 8_000_000 });
  const r2 = await h.search(keys.u2, '10.000000');
  assertStatus(r2, 200);
  assertReceipt(r2, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 1_000_000 });
  return { keys, ids };
}

// POST /admin/v1/recompute {} and `tollgate recompute` on the database (read-only, beside
// the running server): no drift. The command runs once on the server's clock and once
// on the real clock (later than every time of the case).
async function expectNoDriftAnywhere(h) {
  await h.expectNoDrift();
  for (const realClock of [false, true]) {
    const cli = await h.tollgate.recompute({ realClock });
    assert.equal(cli.code, 0, `tollgate recompute (${realClock ? 'real' : 'server'} clock) exit code; stdout ${cli.stdout} stderr ${cli.stderr}`);
    assert.ok(cli.json, `tollgate recompute prints a JSON report: ${cli.stdout}`);
    assert.deepEqual(cli.json.drift, [], `tollgate recompute drift: ${cli.stdout}`);
    assert.equal(cli.json.owners_checked, 2, 'owners_checked');
  }
}

describe('case 10 part A: expiry after partial use (u1)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-10-01T00:00:00Z' });
  let keys;
  let ids;
  before(async () => { ({ keys, ids } = await setup(h)); });

  it('step 1: 2025-10-10T12:00, cost 2.000000 -> drawn from G1: G1 1,000,000, G2 5,000,000, balance 6,000,000', async () => {
    await h.setClock('2025-10-10T12:00:00Z');
    const res = await h.search(keys.u1, '2.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 2_000_000, free: 0, charged: 2_000_000, remaining: 0, balance: 6_000_000 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.deepEqual(rowMoney(row), { cost: 2_000_000, free: 0, charged: 2_000_000, source: 'upstream', status: 200 });
    const acc = await h.expectAccount('user:u1', { balance: 6_000_000, held: 0 });
    assert.deepEqual(grantState(acc, ids.g1), G1(1_000_000, 0));
    assert.deepEqual(grantState(acc, ids.g2), G2(5_000_000, 0));
  });

  it('step 2: 2025-10-15T00:00:00, G1 expired 1,000,000 (not 3,000,000, not what is left of October); balance 5,000,000', async () => {
    await h.setClock('2025-10-15T00:00:00Z');
    const acc = await h.expectAccount('user:u1', { balance: 5_000_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0, 'debt_microdollars');
    assert.deepEqual(grantState(acc, ids.g1), G1(0, 1_000_000));
    assert.deepEqual(grantState(acc, ids.g2), G2(5_000_000, 0));
  });

  it('step 3: 2025-10-20T12:00, cost 1.500000 -> drawn from G2: G2 3,500,000, balance 3,500,000', async () => {
    await h.setClock('2025-10-20T12:00:00Z');
    const res = await h.search(keys.u1, '1.500000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 1_500_000, free: 0, charged: 1_500_000, remaining: 0, balance: 3_500_000 });
    const acc = await h.expectAccount('user:u1', { balance: 3_500_000, held: 0 });
    assert.deepEqual(grantState(acc, ids.g1), G1(0, 1_000_000));
    assert.deepEqual(grantState(acc, ids.g2), G2(3_500_000, 0));
  });

  it('step 4: 2025-10-31T23:59:59, balance 3,500,000; 3,500,000 charged + 1,000,000 expired + 3,500,000 = 8,000,000', async () => {
    await h.setClock('2025-10-31T23:59:59Z');
    const acc = await h.expectAccount('user:u1', { balance: 3_500_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0, 'debt_microdollars');
    assert.deepEqual(grantState(acc, ids.g1), G1(0, 1_000_000));
    assert.deepEqual(grantState(acc, ids.g2), G2(3_500_000, 0));
    const u = await h.expectUsage('u1', '2025-10', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 3, total_cost: 13_500_000, total_free: 10_000_000, total_charged: 3_500_000 } },
    });
    const granted = acc.grants.reduce((s, g) => s + g.amount_microdollars, 0);
    const expired = acc.grants.reduce((s, g) => s + g.expired_microdollars, 0);
    assert.equal(granted, 8_000_000);
    assert.equal(u.contexts[0].total_charged_microdollars + expired + acc.balance_microdollars, granted);
  });

  it('u2 meanwhile (no credit spent): H1 expired 1,000,000 at 10-15, H2 effective then: balance 2,000,000', async () => {
    const acc = await h.expectAccount('user:u2', { balance: 2_000_000, held: 0 });
    assert.deepEqual(grantState(acc, ids.h1), H1(0, 1_000_000));
    assert.deepEqual(grantState(acc, ids.h2), H2(2_000_000, 0));
  });

  it('recompute (admin API and command line) reports no drift; upstream calls 4', async () => {
    await expectNoDriftAnywhere(h);
    assert.equal(await h.fake.totalCalls(), 4, 'upstream calls: 2 set-up requests, steps 1 and 3');
  });
});

describe('case 10 part B: validity instants (u2)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-10-01T00:00:00Z' });
  let keys;
  let ids;
  before(async () => { ({ keys, ids } = await setup(h)); });

  it('step 5: 2025-10-14T23:59:59.999, cost 0.200000 -> drawn from H1 (H2 not yet effective)', async () => {
    await h.setClock('2025-10-14T23:59:59.999Z');
    const res = await h.search(keys.u2, '0.200000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 200_000, free: 0, charged: 200_000, remaining: 0, balance: 800_000 });
    const acc = await h.expectAccount('user:u2', { balance: 800_000, held: 0 });
    assert.deepEqual(grantState(acc, ids.h1), H1(800_000, 0));
    assert.deepEqual(grantState(acc, ids.h2), H2(2_000_000, 0));
  });

  it('step 6: 2025-10-15T00:00:00.000, cost 0.500000 -> drawn from H2 (H1 has just ended, expired 800,000)', async () => {
    await h.setClock('2025-10-15T00:00:00.000Z');
    const res = await h.search(keys.u2, '0.500000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 500_000, free: 0, charged: 500_000, remaining: 0, balance: 1_500_000 });
    const row = await h.auditRow(res.requestId, { user: 'u2' });
    assert.equal(row.arrived_at, '2025-10-15T00:00:00.000Z');
    assert.deepEqual(rowMoney(row), { cost: 500_000, free: 0, charged: 500_000, source: 'upstream', status: 200 });
    const acc = await h.expectAccount('user:u2', { balance: 1_500_000, held: 0 });
    assert.deepEqual(grantState(acc, ids.h1), H1(0, 800_000));
    assert.deepEqual(grantState(acc, ids.h2), H2(1_500_000, 0));
  });

  it('step 7: 2025-10-20, balance 1,500,000; 700,000 charged + 800,000 expired + 1,500,000 = 3,000,000', async () => {
    await h.setClock('2025-10-20T00:00:00Z');
    const acc = await h.expectAccount('user:u2', { balance: 1_500_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0, 'debt_microdollars');
    assert.deepEqual(grantState(acc, ids.h1), H1(0, 800_000));
    assert.deepEqual(grantState(acc, ids.h2), H2(1_500_000, 0));
    const u = await h.expectUsage('u2', '2025-10', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 3, total_cost: 10_700_000, total_free: 10_000_000, total_charged: 700_000 } },
    });
    const granted = acc.grants.reduce((s, g) => s + g.amount_microdollars, 0);
    const expired = acc.grants.reduce((s, g) => s + g.expired_microdollars, 0);
    assert.equal(granted, 3_000_000);
    assert.equal(u.contexts[0].total_charged_microdollars + expired + acc.balance_microdollars, granted);
  });

  it('u1 meanwhile (no credit spent): G1 expired 3,000,000 at 10-15; balance 5,000,000', async () => {
    const acc = await h.expectAccount('user:u1', { balance: 5_000_000, held: 0 });
    assert.deepEqual(grantState(acc, ids.g1), G1(0, 3_000_000));
    assert.deepEqual(grantState(acc, ids.g2), G2(5_000_000, 0));
  });

  it('recompute (admin API and command line) reports no drift; upstream calls 4', async () => {
    await expectNoDriftAnywhere(h);
    assert.equal(await h.fake.totalCalls(), 4, 'upstream calls: 2 set-up requests, steps 5 and 6');
  });
});
