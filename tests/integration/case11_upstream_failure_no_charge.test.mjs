// Case 11 — an upstream failure is charged, or leaves its hold behind
// (shared/cases/case-11-upstream-failure-no-charge.md).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, searchBody, assertReceipt, assertStatus, assert402, rowMoney,
} from './lib/harness.mjs';

const UPSTREAM_TIMEOUT_MS = 5000;
const CONFIG = {
  allowance: { default_microdollars: 10_000_000 },
  admission: { policy: 'any_remaining' },
  upstream: { timeout_ms: UPSTREAM_TIMEOUT_MS },
};

describe('case 11: upstream failures are not charged and release their holds (December 2025)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-12-01T00:00:00Z' });
  let key;
  const rowsOf = () => h.admin.usageLog({ user: 'u1', month: '2025-12' });

  before(async () => {
    ({ u1: key } = await h.usersWithKeys(['u1']));
    await h.admin.grant('user:u1', 15_000, { effective_at: '2025-12-01T00:00:00Z' });
    await h.setClock('2025-12-01T00:00:00Z');
    const res = await h.search(key, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 15_000 });
  });

  // An upstream error answer is passed through and charged nothing.
  async function expectUnchargedError(minute, status, body) {
    await h.setClock(`2025-12-03T10:0${minute}:00Z`);
    const res = await h.expectUpstreamCalls(1, () => h.proxy('search', { key, body: searchBody({ status, body }) }));
    assertStatus(res, status);
    assert.equal(res.text, body, 'upstream body passed through');
    assertReceipt(res, { cost: 0, free: 0, charged: 0, remaining: 0, balance: 15_000 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.deepEqual(rowMoney(row), { cost: 0, free: 0, charged: 0, source: 'none', status });
    await h.expectAccount('user:u1', { balance: 15_000, held: 0 });
  }

  it('step 1: upstream 500 {"error":"internal"} -> 500, cost 0, balance 15,000', async () => {
    await expectUnchargedError(1, 500, '{"error":"internal"}');
  });

  it('step 2: upstream 429 {"error":"rate limited"} -> 429, nothing charged', async () => {
    await expectUnchargedError(2, 429, '{"error":"rate limited"}');
  });

  it('step 3: upstream 400 {"error":"bad query"} -> 400, nothing charged', async () => {
    await expectUnchargedError(3, 400, '{"error":"bad query"}');
  });

  it('step 4: upstream silent for 30 s -> 504 after about 5 s, nothing charged', async () => {
    await h.setClock('2025-12-03T10:04:00Z');
    const rowsBefore = (await rowsOf()).length;
    const started = Date.now();
    const res = await h.expectUpstreamCalls(1, () => h.proxy('search', { key, body: searchBody({ delay_ms: 30_000 }) }));
    const elapsed = Date.now() - started;
    assertStatus(res, 504);
    assert.equal(typeof res.json?.error, 'string', `504 body: ${res.text}`);
    assert.ok(elapsed >= UPSTREAM_TIMEOUT_MS - 250 && elapsed < UPSTREAM_TIMEOUT_MS + 5000, `answered after ${elapsed} ms`);
    await h.expectAccount('user:u1', { balance: 15_000, held: 0 });
    const rows = await rowsOf();
    assert.equal(rows.length, rowsBefore + 1, 'exactly one audit row for the admitted request');
    assert.deepEqual(rowMoney(rows.at(-1)), { cost: 0, free: 0, charged: 0, source: 'none', status: 0 });
  });

  it('step 5: upstream stopped (connection refused) -> 502, nothing charged; upstream started again', async () => {
    await h.setClock('2025-12-03T10:05:00Z');
    assert.equal(await h.fake.totalCalls(), 5, 'setup and steps 1-4 reached the upstream');
    await h.fake.stop();
    const rowsBefore = (await rowsOf()).length;
    const res = await h.search(key, '0.007');
    assertStatus(res, 502);
    assert.equal(typeof res.json?.error, 'string', `502 body: ${res.text}`);
    await h.expectAccount('user:u1', { balance: 15_000, held: 0 });
    const rows = await rowsOf();
    assert.equal(rows.length, rowsBefore + 1, 'exactly one audit row for the admitted request');
    assert.deepEqual(rowMoney(rows.at(-1)), { cost: 0, free: 0, charged: 0, source: 'none', status: 0 });
    await h.fake.start();
  });

  it('step 6: upstream 400 carrying a cost of 0.001 -> 400, cost charged: balance 14,000', async () => {
    await h.setClock('2025-12-03T10:06:00Z');
    const body = '{"error":"bad query","costDollars":{"total":0.001}}';
    const res = await h.expectUpstreamCalls(1, () => h.proxy('search', { key, body: searchBody({ status: 400, body }) }));
    assertStatus(res, 400);
    assert.equal(res.text, body);
    assertReceipt(res, { cost: 1000, free: 0, charged: 1000, remaining: 0, balance: 14_000 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.deepEqual(rowMoney(row), { cost: 1000, free: 0, charged: 1000, source: 'upstream', status: 400 });
    await h.expectAccount('user:u1', { balance: 14_000, held: 0 });
  });

  it('step 7: cost 0.007 -> 200, charged 7,000, balance 7,000', async () => {
    await h.setClock('2025-12-03T10:07:00Z');
    const res = await h.search(key, '0.007');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 7000, free: 0, charged: 7000, remaining: 0, balance: 7000 });
    await h.expectAccount('user:u1', { balance: 7000, held: 0 });
  });

  it('step 8: cost 0.007 -> 200 (no hold was left behind), balance 0', async () => {
    await h.setClock('2025-12-03T10:08:00Z');
    const res = await h.search(key, '0.007');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 7000, free: 0, charged: 7000, remaining: 0, balance: 0 });
    await h.expectAccount('user:u1', { balance: 0, held: 0 });
  });

  it('step 9: -> 402, not forwarded', async () => {
    await h.setClock('2025-12-03T10:09:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(key, '0.007'));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'personal' });
    await h.expectAccount('user:u1', { balance: 0, held: 0 });
  });

  it('totals: usage, audit rows, upstream calls, recompute', async () => {
    // The setup request and steps 1-8 were admitted: one row and one count each.
    await h.expectUsage('u1', '2025-12', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 9, total_cost: 10_015_000, total_free: 10_000_000, total_charged: 15_000 } },
    });
    const rows = await rowsOf();
    assert.deepEqual(rows.map((r) => r.upstream_status), [200, 500, 429, 400, 0, 0, 400, 200, 200]);
    assert.deepEqual(rows.map((r) => r.cost_microdollars), [10_000_000, 0, 0, 0, 0, 0, 1000, 7000, 7000]);
    assert.equal(await h.fake.totalCalls(), 8);
    await h.expectNoDrift();
  });
});
