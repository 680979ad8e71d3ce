// Usage metered elsewhere and backdated ledger entries (SPEC sections 4 and 7):
// POST /admin/v1/usage (shape, idempotency, validation, debt), external usage and proxied
// requests interleaved in time order around a grant's expiry, backdated grants and usage
// that rebuild an owner's state to what a chronological replay gives, and grants whose
// effective_at lies in the future.
//
// Expected figures are worked out by hand from SPEC section 4: usage draws from live grants,
// earliest expires_at first, non-expiring last, then older effective_at, then id; at one
// instant expiries come first, then grants, then usage; a grant pays for usage at t when
// effective_at <= t < expires_at; a new grant repays debt first.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, assertReceipt, assertStatus, assert402, rowMoney, grantState,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

async function usageError(h, status, body) {
  const res = await h.admin.call('POST', '/admin/v1/usage', body);
  assert.equal(res.status, status, `POST /admin/v1/usage ${typeof body === 'string' ? body : JSON.stringify(body)} -> ${res.status} ${res.text}`);
  assert.equal(typeof res.json?.error, 'string', `JSON error body: ${res.text}`);
  return res;
}

async function expectOwnerNoDrift(h, owner) {
  const report = await h.admin.recompute(owner);
  assert.deepEqual(report.drift, [], `recompute ${owner} drift: ${JSON.stringify(report)}`);
  assert.equal(report.owners_checked, 1, 'owners_checked');
}

// Σ grants = Σ usage (proxied charges + external) + Σ expired + balance.
function assertBooks(acc, { granted, expired, balance }) {
  const g = acc.grants.reduce((s, x) => s + x.amount_microdollars, 0);
  const e = acc.grants.reduce((s, x) => s + x.expired_microdollars, 0);
  assert.deepEqual({ granted: g, expired: e, balance: acc.balance_microdollars }, { granted, expired, balance }, `books of ${acc.owner}`);
}

describe('POST /admin/v1/usage: shape, idempotency, validation, debt (November 2025)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-11-10T12:00:00Z' });
  let keys;
  let g1;
  before(async () => {
    await h.admin.createUser('u1');
    keys = await h.usersWithKeys(['u2']);
    await h.admin.createUser('fut');
    await h.admin.createOrg('o1');
    g1 = await h.admin.grant('user:u1', 1_000_000, { effective_at: '2025-11-01T00:00:00Z', idempotency_key: 'g-u1' });
  });

  const ext1 = { owner: 'user:u1', amount_microdollars: 250_000, at: '2025-11-10T11:00:00Z', idempotency_key: 'ext-1' };
  const ext2 = { owner: 'user:u1', amount_microdollars: 50_000, idempotency_key: 'ext-2' };
  let first2;

  it('12:00: 201 with the record and the balance after it; the same body replays 200, a different one is 409', async () => {
    await h.setClock('2025-11-10T12:00:00Z');
    const created = await h.admin.call('POST', '/admin/v1/usage', ext1);
    assert.equal(created.status, 201, created.text);
    const u = created.json;
    assert.ok(typeof u.id === 'string' && u.id.length > 0, `usage id: ${created.text}`);
    assert.deepEqual(u, {
      id: u.id,
      owner: 'user:u1',
      amount_microdollars: 250_000,
      at: '2025-11-10T11:00:00.000Z',
      idempotency_key: 'ext-1',
      balance_microdollars: 750_000,
    });
    const replay = await h.admin.call('POST', '/admin/v1/usage', ext1);
    assert.equal(replay.status, 200, replay.text);
    assert.deepEqual(replay.json, u);
    await usageError(h, 409, { ...ext1, amount_microdollars: 250_001 });
    await usageError(h, 409, { ...ext1, at: '2025-11-10T11:00:01Z' });
    await usageError(h, 409, { ...ext1, owner: 'org:o1' });
    const { at, ...withoutAt } = ext1;
    await usageError(h, 409, withoutAt);
    const acc = await h.expectAccount('user:u1', { balance: 750_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0);
    assert.deepEqual(grantState(acc, g1.id), {
      amount: 1_000_000, remaining: 750_000, expired: 0, effective_at: '2025-11-01T00:00:00.000Z', expires_at: null,
    });
    await h.expectAccount('org:o1', { balance: 0, held: 0 });
  });

  it('12:00: without "at" the usage is timed now; replayed at 12:10 it is still the original', async () => {
    await h.setClock('2025-11-10T12:00:00Z');
    first2 = await h.admin.externalUsage(ext2.owner, ext2.amount_microdollars, { idempotency_key: ext2.idempotency_key });
    assert.deepEqual(first2, {
      id: first2.id,
      owner: 'user:u1',
      amount_microdollars: 50_000,
      at: '2025-11-10T12:00:00.000Z',
      idempotency_key: 'ext-2',
      balance_microdollars: 700_000,
    });
    await h.setClock('2025-11-10T12:10:00Z');
    const replay = await h.admin.call('POST', '/admin/v1/usage', ext2);
    assert.equal(replay.status, 200, replay.text);
    assert.deepEqual(replay.json, first2);
    await h.expectAccount('user:u1', { balance: 700_000, held: 0 });
  });

  it('12:10: bad owners, amounts, timestamps and keys are 400, unknown owners 404; nothing changes', async () => {
    await h.setClock('2025-11-10T12:10:00Z');
    const ok = { owner: 'user:u1', amount_microdollars: 1000, idempotency_key: 'ext-bad' };
    const { amount_microdollars: _a, ...noAmount } = ok;
    const { idempotency_key: _k, ...noKey } = ok;
    const { owner: _o, ...noOwner } = ok;
    for (const body of [
      { ...ok, amount_microdollars: 0 },
      { ...ok, amount_microdollars: -1 },
      { ...ok, amount_microdollars: -250_000 },
      { ...ok, amount_microdollars: 1.5 },
      { ...ok, amount_microdollars: '1000' },
      { ...ok, amount_microdollars: null },
      noAmount,
      noKey,
      noOwner,
      { ...ok, idempotency_key: '' },
      { ...ok, idempotency_key: 7 },
      { ...ok, owner: 'u1' },
      { ...ok, owner: 'team:u1' },
      { ...ok, owner: 'user:' },
      { ...ok, owner: 'user:bad id' },
      { ...ok, at: 'yesterday' },
      { ...ok, at: '2025-11-10' },
      { ...ok, at: '2025-13-01T00:00:00Z' },
      { ...ok, at: 1762776000 },
      // More than 5 minutes in the future.
      { ...ok, at: '2025-11-10T12:15:00.001Z' },
      { ...ok, at: '2025-11-10T14:15:00.001+02:00' },
      { ...ok, at: '2025-11-11T00:00:00Z' },
      { ...ok, at: '2026-11-10T12:10:00Z' },
    ]) await usageError(h, 400, body);
    for (const text of ['9223372036854775808', '1e30', '-9223372036854775809', '18446744073709551616']) {
      await usageError(h, 400, `{"owner":"user:u1","amount_microdollars":${text},"idempotency_key":"ext-bad"}`);
    }
    await usageError(h, 400, '{"owner":"user:u1",');
    await usageError(h, 400, '[]');
    await usageError(h, 404, { ...ok, owner: 'user:ghost' });
    await usageError(h, 404, { ...ok, owner: 'org:ghost' });
    const acc = await h.expectAccount('user:u1', { balance: 700_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0);
    // The refused calls did not use up their idempotency key.
    const u = await h.admin.externalUsage('user:u1', 100_000, { idempotency_key: 'ext-bad' });
    assert.equal(u.at, '2025-11-10T12:10:00.000Z');
    assert.equal(u.balance_microdollars, 600_000);
    await h.expectAccount('user:u1', { balance: 600_000, held: 0 });
  });

  it('12:10: "at" exactly 5 minutes ahead is accepted (owner without grants: debt)', async () => {
    await h.setClock('2025-11-10T12:10:00Z');
    const u = await h.admin.externalUsage('user:fut', 1000, { at: '2025-11-10T12:15:00Z', idempotency_key: 'fut-1' });
    assert.equal(u.at, '2025-11-10T12:15:00.000Z');
    assert.equal(u.amount_microdollars, 1000);
    assert.equal(u.owner, 'user:fut');
    await h.setClock('2025-11-10T12:16:00Z');
    const acc = await h.expectAccount('user:fut', { balance: -1000, held: 0 });
    assert.deepEqual({ debt: acc.debt_microdollars, grants: acc.grants }, { debt: 1000, grants: [] });
  });

  it('12:20: never refused for lack of funds: u2 goes into debt, shown as a negative balance', async () => {
    await h.setClock('2025-11-10T12:20:00Z');
    const a = await h.admin.externalUsage('user:u2', 300_000, { idempotency_key: 'u2-1' });
    assert.equal(a.balance_microdollars, -300_000);
    let acc = await h.expectAccount('user:u2', { balance: -300_000, held: 0 });
    assert.deepEqual({ debt: acc.debt_microdollars, grants: acc.grants }, { debt: 300_000, grants: [] });
    await h.setClock('2025-11-10T12:21:00Z');
    const b = await h.admin.externalUsage('user:u2', 200_000, { idempotency_key: 'u2-2' });
    assert.equal(b.balance_microdollars, -500_000);
    acc = await h.expectAccount('user:u2', { balance: -500_000, held: 0 });
    assert.equal(acc.debt_microdollars, 500_000);
  });

  it('12:22: a user in debt keeps the month\'s free allowance: cost 0.007 -> free 7,000, balance -500,000', async () => {
    await h.setClock('2025-11-10T12:22:00Z');
    const res = await h.expectUpstreamCalls(1, () => h.search(keys.u2, '0.007'));
    assertStatus(res, 200);
    assertReceipt(res, { cost: 7000, free: 7000, charged: 0, remaining: 9_993_000, balance: -500_000 });
    await h.expectAccount('user:u2', { balance: -500_000, held: 0 });
  });

  it('12:25: the next grant repays the debt first: 800,000 -> remaining 300,000, balance 300,000', async () => {
    await h.setClock('2025-11-10T12:25:00Z');
    const g = await h.admin.grant('user:u2', 800_000, { idempotency_key: 'g-u2' });
    assert.deepEqual(g, {
      id: g.id,
      owner: 'user:u2',
      amount_microdollars: 800_000,
      remaining_microdollars: 300_000,
      expired_microdollars: 0,
      effective_at: '2025-11-10T12:25:00.000Z',
      expires_at: null,
      idempotency_key: 'g-u2',
    });
    const acc = await h.expectAccount('user:u2', { balance: 300_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0);
    assert.deepEqual(grantState(acc, g.id), {
      amount: 800_000, remaining: 300_000, expired: 0, effective_at: '2025-11-10T12:25:00.000Z', expires_at: null,
    });
  });

  it('12:30: cost 10.000000 straddles the allowance: free 9,993,000, charged 7,000, balance 293,000', async () => {
    await h.setClock('2025-11-10T12:30:00Z');
    const res = await h.search(keys.u2, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 9_993_000, charged: 7000, remaining: 0, balance: 293_000 });
    const acc = await h.expectAccount('user:u2', { balance: 293_000, held: 0 });
    assertBooks(acc, { granted: 800_000, expired: 0, balance: 293_000 }); // 800,000 = 500,000 external + 7,000 charged + 293,000
    // External usage is not an Exa request: no audit row, no monthly counter.
    await h.expectUsage('u2', '2025-11', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 2, total_cost: 10_007_000, total_free: 10_000_000, total_charged: 7000 } },
    });
    const rows = await h.admin.usageLog({ user: 'u2' });
    assert.deepEqual(rows.map(rowMoney), [
      { cost: 7000, free: 7000, charged: 0, source: 'upstream', status: 200 },
      { cost: 10_000_000, free: 9_993_000, charged: 7000, source: 'upstream', status: 200 },
    ]);
    assert.equal(await h.fake.totalCalls(), 2, 'upstream calls');
    await h.expectNoDrift();
  });
});

describe('external usage and proxied requests interleave in time order around an expiry (u3)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-11-01T00:00:00Z' });
  let key;
  let ga;
  let gb;
  let gc;
  const GA = (remaining, expired) => ({
    amount: 1_000_000, remaining, expired, effective_at: '2025-11-01T00:00:00.000Z', expires_at: '2025-11-15T00:00:00.000Z',
  });
  const GB = (remaining) => ({
    amount: 2_000_000, remaining, expired: 0, effective_at: '2025-11-01T00:00:00.000Z', expires_at: null,
  });
  const GC = (remaining, expired) => ({
    amount: 500_000, remaining, expired, effective_at: '2025-11-15T00:00:00.000Z', expires_at: '2025-11-16T00:00:00.000Z',
  });

  before(async () => {
    await h.setClock('2025-11-01T00:00:00Z');
    ({ u3: key } = await h.usersWithKeys(['u3']));
    ga = await h.admin.grant('user:u3', 1_000_000, { effective_at: '2025-11-01T00:00:00Z', expires_at: '2025-11-15T00:00:00Z' });
    gb = await h.admin.grant('user:u3', 2_000_000, { effective_at: '2025-11-01T00:00:00Z' });
    const res = await h.search(key, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 3_000_000 });
  });

  it('11-14T10:00: cost 0.300000 -> charged from GA (expires first): GA 700,000, GB 2,000,000', async () => {
    await h.setClock('2025-11-14T10:00:00Z');
    const res = await h.search(key, '0.300000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 300_000, free: 0, charged: 300_000, remaining: 0, balance: 2_700_000 });
    const acc = await h.expectAccount('user:u3', { balance: 2_700_000, held: 0 });
    assert.deepEqual(grantState(acc, ga.id), GA(700_000, 0));
    assert.deepEqual(grantState(acc, gb.id), GB(2_000_000));
  });

  it('11-15T00:01: GA has expired 700,000; balance 2,000,000', async () => {
    await h.setClock('2025-11-15T00:01:00Z');
    const acc = await h.expectAccount('user:u3', { balance: 2_000_000, held: 0 });
    assert.deepEqual(grantState(acc, ga.id), GA(0, 700_000));
    assert.deepEqual(grantState(acc, gb.id), GB(2_000_000));
  });

  it('11-15T00:01: usage 500,000 timed 11-14T20:00 (before the expiry) draws from GA: GA expired 200,000, balance 2,000,000', async () => {
    await h.setClock('2025-11-15T00:01:00Z');
    const u = await h.admin.externalUsage('user:u3', 500_000, { at: '2025-11-14T20:00:00Z', idempotency_key: 'u3-late' });
    assert.deepEqual(u, {
      id: u.id,
      owner: 'user:u3',
      amount_microdollars: 500_000,
      at: '2025-11-14T20:00:00.000Z',
      idempotency_key: 'u3-late',
      balance_microdollars: 2_000_000,
    });
    const acc = await h.expectAccount('user:u3', { balance: 2_000_000, held: 0 });
    assert.deepEqual(grantState(acc, ga.id), GA(0, 200_000));
    assert.deepEqual(grantState(acc, gb.id), GB(2_000_000));
    await expectOwnerNoDrift(h, 'user:u3');
  });

  it('11-15T00:02: usage 400,000 timed exactly at GA\'s expires_at draws from GB: balance 1,600,000', async () => {
    await h.setClock('2025-11-15T00:02:00Z');
    const u = await h.admin.externalUsage('user:u3', 400_000, { at: '2025-11-15T00:00:00Z', idempotency_key: 'u3-at-expiry' });
    assert.equal(u.at, '2025-11-15T00:00:00.000Z');
    assert.equal(u.balance_microdollars, 1_600_000);
    const acc = await h.expectAccount('user:u3', { balance: 1_600_000, held: 0 });
    assert.deepEqual(grantState(acc, ga.id), GA(0, 200_000));
    assert.deepEqual(grantState(acc, gb.id), GB(1_600_000));
  });

  it('11-15T00:03: cost 0.100000 -> charged 100,000 from GB; balance 1,500,000', async () => {
    await h.setClock('2025-11-15T00:03:00Z');
    const res = await h.search(key, '0.100000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 100_000, free: 0, charged: 100_000, remaining: 0, balance: 1_500_000 });
    const acc = await h.expectAccount('user:u3', { balance: 1_500_000, held: 0 });
    assert.deepEqual(grantState(acc, gb.id), GB(1_500_000));
    await expectOwnerNoDrift(h, 'user:u3');
  });

  it('11-15T00:05: backdated GC 500,000 effective 11-15T00:00 (the instant of the 400,000 usage), expires 11-16: it pays for that usage and the 00:03 request', async () => {
    // Replay: 00:00 GA expires (200,000), GC takes effect, then the 400,000 usage draws from
    // GC (expires before GB): GC 100,000; 00:03 the 100,000 request empties GC. GB 2,000,000.
    await h.setClock('2025-11-15T00:05:00Z');
    gc = await h.admin.grant('user:u3', 500_000, {
      effective_at: '2025-11-15T00:00:00Z', expires_at: '2025-11-16T00:00:00Z', idempotency_key: 'u3-gc',
    });
    assert.deepEqual(gc, {
      id: gc.id,
      owner: 'user:u3',
      amount_microdollars: 500_000,
      remaining_microdollars: 0,
      expired_microdollars: 0,
      effective_at: '2025-11-15T00:00:00.000Z',
      expires_at: '2025-11-16T00:00:00.000Z',
      idempotency_key: 'u3-gc',
    });
    const acc = await h.expectAccount('user:u3', { balance: 2_000_000, held: 0 });
    assert.deepEqual(grantState(acc, ga.id), GA(0, 200_000));
    assert.deepEqual(grantState(acc, gb.id), GB(2_000_000));
    assert.deepEqual(grantState(acc, gc.id), GC(0, 0));
    await expectOwnerNoDrift(h, 'user:u3');
  });

  it('11-16: GC expires with nothing left; 3,500,000 granted = 1,300,000 used + 200,000 expired + 2,000,000', async () => {
    await h.setClock('2025-11-16T00:00:00Z');
    const acc = await h.expectAccount('user:u3', { balance: 2_000_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0);
    assert.deepEqual(grantState(acc, ga.id), GA(0, 200_000));
    assert.deepEqual(grantState(acc, gb.id), GB(2_000_000));
    assert.deepEqual(grantState(acc, gc.id), GC(0, 0));
    assertBooks(acc, { granted: 3_500_000, expired: 200_000, balance: 2_000_000 });
    await h.expectUsage('u3', '2025-11', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 3, total_cost: 10_400_000, total_free: 10_000_000, total_charged: 400_000 } },
    });
    assert.equal(await h.fake.totalCalls(), 3, 'upstream calls');
    await h.expectNoDrift();
  });
});

describe('backdated grants and usage rebuild the owner\'s state (u4)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-11-01T00:00:00Z' });
  let key;
  let k1;
  let k2;
  const K1 = (remaining) => ({
    amount: 1_000_000, remaining, expired: 0, effective_at: '2025-11-05T00:00:00.000Z', expires_at: '2025-12-31T00:00:00.000Z',
  });
  const K2 = (remaining, expired) => ({
    amount: 2_000_000, remaining, expired, effective_at: '2025-11-08T00:00:00.000Z', expires_at: '2025-11-15T00:00:00.000Z',
  });

  before(async () => {
    await h.setClock('2025-11-01T00:00:00Z');
    ({ u4: key } = await h.usersWithKeys(['u4']));
    const res = await h.search(key, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 0 });
  });

  it('11-05: grant K1 1,000,000 (expires 12-31); 11-10: cost 0.600000 -> charged from K1, balance 400,000', async () => {
    await h.setClock('2025-11-05T00:00:00Z');
    k1 = await h.admin.grant('user:u4', 1_000_000, { expires_at: '2025-12-31T00:00:00Z', idempotency_key: 'u4-k1' });
    assert.equal(k1.effective_at, '2025-11-05T00:00:00.000Z');
    assert.equal(k1.remaining_microdollars, 1_000_000);
    await h.setClock('2025-11-10T00:00:00Z');
    const res = await h.search(key, '0.600000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 600_000, free: 0, charged: 600_000, remaining: 0, balance: 400_000 });
    const acc = await h.expectAccount('user:u4', { balance: 400_000, held: 0 });
    assert.deepEqual(grantState(acc, k1.id), K1(400_000));
  });

  it('11-12: backdated K2 2,000,000 effective 11-08, expires 11-15: the 11-10 request is redrawn from K2 (expires first)', async () => {
    // Replay: 11-05 K1 1,000,000; 11-08 K2 2,000,000; 11-10 600,000 from K2 -> K2 1,400,000, K1 untouched.
    await h.setClock('2025-11-12T00:00:00Z');
    k2 = await h.admin.grant('user:u4', 2_000_000, {
      effective_at: '2025-11-08T00:00:00Z', expires_at: '2025-11-15T00:00:00Z', idempotency_key: 'u4-k2',
    });
    assert.deepEqual(k2, {
      id: k2.id,
      owner: 'user:u4',
      amount_microdollars: 2_000_000,
      remaining_microdollars: 1_400_000,
      expired_microdollars: 0,
      effective_at: '2025-11-08T00:00:00.000Z',
      expires_at: '2025-11-15T00:00:00.000Z',
      idempotency_key: 'u4-k2',
    });
    const acc = await h.expectAccount('user:u4', { balance: 2_400_000, held: 0 });
    assert.deepEqual(grantState(acc, k1.id), K1(1_000_000));
    assert.deepEqual(grantState(acc, k2.id), K2(1_400_000, 0));
    await expectOwnerNoDrift(h, 'user:u4');
  });

  it('11-16: K2 expired 1,400,000 (not 2,000,000); K1 1,000,000; balance 1,000,000', async () => {
    await h.setClock('2025-11-16T00:00:00Z');
    const acc = await h.expectAccount('user:u4', { balance: 1_000_000, held: 0 });
    assert.deepEqual(grantState(acc, k1.id), K1(1_000_000));
    assert.deepEqual(grantState(acc, k2.id), K2(0, 1_400_000));
  });

  it('11-16: backdated usage 300,000 at 11-09 comes out of K2 before it expired: K2 expired 1,100,000, balance still 1,000,000', async () => {
    // Replay: 11-09 300,000 from K2 -> 1,700,000; 11-10 600,000 -> 1,100,000; 11-15 K2 expires 1,100,000.
    await h.setClock('2025-11-16T00:00:00Z');
    const u = await h.admin.externalUsage('user:u4', 300_000, { at: '2025-11-09T00:00:00Z', idempotency_key: 'u4-e1' });
    assert.deepEqual(u, {
      id: u.id,
      owner: 'user:u4',
      amount_microdollars: 300_000,
      at: '2025-11-09T00:00:00.000Z',
      idempotency_key: 'u4-e1',
      balance_microdollars: 1_000_000,
    });
    const acc = await h.expectAccount('user:u4', { balance: 1_000_000, held: 0 });
    assert.deepEqual(grantState(acc, k1.id), K1(1_000_000));
    assert.deepEqual(grantState(acc, k2.id), K2(0, 1_100_000));
    await expectOwnerNoDrift(h, 'user:u4');
  });

  it('11-16: backdated usage 1,500,000 at 11-14 empties K2 (1,100,000) and takes 400,000 from K1: balance 600,000', async () => {
    await h.setClock('2025-11-16T00:00:00Z');
    const u = await h.admin.externalUsage('user:u4', 1_500_000, { at: '2025-11-14T00:00:00Z', idempotency_key: 'u4-e2' });
    assert.equal(u.at, '2025-11-14T00:00:00.000Z');
    assert.equal(u.balance_microdollars, 600_000);
    const acc = await h.expectAccount('user:u4', { balance: 600_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0);
    assert.deepEqual(grantState(acc, k1.id), K1(600_000));
    assert.deepEqual(grantState(acc, k2.id), K2(0, 0));
    await expectOwnerNoDrift(h, 'user:u4');
  });

  it('11-16T00:01: cost 0.100000 -> charged 100,000 from K1; balance 500,000', async () => {
    await h.setClock('2025-11-16T00:01:00Z');
    const res = await h.search(key, '0.100000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 100_000, free: 0, charged: 100_000, remaining: 0, balance: 500_000 });
    const acc = await h.expectAccount('user:u4', { balance: 500_000, held: 0 });
    assert.deepEqual(grantState(acc, k1.id), K1(500_000));
    assert.deepEqual(grantState(acc, k2.id), K2(0, 0));
  });

  it('totals: 3,000,000 granted = 700,000 charged + 1,800,000 external + 0 expired + 500,000; recompute, --fix, CLI', async () => {
    const acc = await h.expectAccount('user:u4', { balance: 500_000, held: 0 });
    assertBooks(acc, { granted: 3_000_000, expired: 0, balance: 500_000 });
    await h.expectUsage('u4', '2025-11', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 3, total_cost: 10_700_000, total_free: 10_000_000, total_charged: 700_000 } },
    });
    const rows = await h.admin.usageLog({ user: 'u4' });
    assert.deepEqual(rows.map((r) => [r.arrived_at, r.charged_microdollars]), [
      ['2025-11-01T00:00:00.000Z', 0], ['2025-11-10T00:00:00.000Z', 600_000], ['2025-11-16T00:01:00.000Z', 100_000],
    ]);
    assert.equal(await h.fake.totalCalls(), 3, 'upstream calls');
    await h.expectNoDrift();
    const fixed = await h.admin.recompute(undefined, { fix: true });
    assert.equal(fixed.fixed, true, `recompute {"fix":true}: ${JSON.stringify(fixed)}`);
    assert.deepEqual(fixed.drift, [], `recompute {"fix":true} drift: ${JSON.stringify(fixed)}`);
    const after = await h.expectAccount('user:u4', { balance: 500_000, held: 0 });
    assert.deepEqual(grantState(after, k1.id), K1(500_000));
    assert.deepEqual(grantState(after, k2.id), K2(0, 0));
    await h.expectNoDrift();
    const cli = await h.tollgate.recompute();
    assert.equal(cli.code, 0, `tollgate recompute exit code; stdout ${cli.stdout} stderr ${cli.stderr}`);
    assert.deepEqual(cli.json?.drift, [], `tollgate recompute: ${cli.stdout}`);
  });
});

describe('a grant effective in the future is listed, but neither counted nor spendable until then (u5, u6)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-11-20T00:00:00Z' });
  let key;
  let f1;
  let f2;
  const F1 = (remaining) => ({
    amount: 1_000_000, remaining, expired: 0, effective_at: '2025-11-25T00:00:00.000Z', expires_at: null,
  });
  const F2 = (remaining) => ({
    amount: 500_000, remaining, expired: 0, effective_at: '2025-11-26T00:00:00.000Z', expires_at: null,
  });

  before(async () => {
    await h.setClock('2025-11-20T00:00:00Z');
    ({ u5: key } = await h.usersWithKeys(['u5']));
    await h.admin.createUser('u6');
    const res = await h.search(key, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 0 });
  });

  it('11-20: grant F1 1,000,000 effective 11-25 -> listed with its full remaining, balance 0', async () => {
    await h.setClock('2025-11-20T00:00:00Z');
    f1 = await h.admin.grant('user:u5', 1_000_000, { effective_at: '2025-11-25T00:00:00Z', idempotency_key: 'u5-f1' });
    assert.deepEqual(f1, {
      id: f1.id,
      owner: 'user:u5',
      amount_microdollars: 1_000_000,
      remaining_microdollars: 1_000_000,
      expired_microdollars: 0,
      effective_at: '2025-11-25T00:00:00.000Z',
      expires_at: null,
      idempotency_key: 'u5-f1',
    });
    const acc = await h.expectAccount('user:u5', { balance: 0, held: 0 });
    assert.equal(acc.debt_microdollars, 0);
    assert.equal(acc.grants.length, 1);
    assert.deepEqual(grantState(acc, f1.id), F1(1_000_000));
    await h.expectNoDrift();
  });

  it('11-20T00:01 and 11-24T23:59:59.999: 402 with balance 0, not forwarded', async () => {
    for (const clock of ['2025-11-20T00:01:00Z', '2025-11-24T23:59:59.999Z']) {
      await h.setClock(clock);
      const res = await h.expectUpstreamCalls(0, () => h.search(key, '0.007'));
      assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'personal' });
      const acc = await h.expectAccount('user:u5', { balance: 0, held: 0 });
      assert.deepEqual(grantState(acc, f1.id), F1(1_000_000), `F1 at ${clock}`);
    }
  });

  it('11-25T00:00:00.000: F1 has taken effect: cost 0.250000 -> admitted, charged 250,000, balance 750,000', async () => {
    await h.setClock('2025-11-25T00:00:00.000Z');
    const res = await h.expectUpstreamCalls(1, () => h.search(key, '0.250000'));
    assertStatus(res, 200);
    assertReceipt(res, { cost: 250_000, free: 0, charged: 250_000, remaining: 0, balance: 750_000 });
    const acc = await h.expectAccount('user:u5', { balance: 750_000, held: 0 });
    assert.deepEqual(grantState(acc, f1.id), F1(750_000));
  });

  it('u6 in debt: a future grant is listed in full and repays the debt only when it takes effect', async () => {
    await h.setClock('2025-11-25T00:00:00Z');
    const u = await h.admin.externalUsage('user:u6', 200_000, { idempotency_key: 'u6-e1' });
    assert.equal(u.balance_microdollars, -200_000);
    f2 = await h.admin.grant('user:u6', 500_000, { effective_at: '2025-11-26T00:00:00Z', idempotency_key: 'u6-f2' });
    assert.equal(f2.remaining_microdollars, 500_000, 'remaining in the 201 answer, before it takes effect');
    let acc = await h.expectAccount('user:u6', { balance: -200_000, held: 0 });
    assert.equal(acc.debt_microdollars, 200_000, 'debt before F2 takes effect');
    assert.deepEqual(grantState(acc, f2.id), F2(500_000));
    await h.expectNoDrift();

    await h.setClock('2025-11-26T00:00:00Z');
    acc = await h.expectAccount('user:u6', { balance: 300_000, held: 0 });
    assert.equal(acc.debt_microdollars, 0, 'debt after F2 took effect');
    assert.deepEqual(grantState(acc, f2.id), F2(300_000));
    assertBooks(acc, { granted: 500_000, expired: 0, balance: 300_000 });
  });

  it('totals: usage, upstream calls, recompute', async () => {
    await h.expectUsage('u5', '2025-11', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 2, total_cost: 10_250_000, total_free: 10_000_000, total_charged: 250_000 } },
    });
    assert.equal(await h.fake.totalCalls(), 2, 'upstream calls');
    await h.expectNoDrift();
  });
});
