// Case 06 — a missing cost is billed as zero, or a real zero as missing
// (shared/cases/case-06-missing-or-zero-cost.md).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, searchBody, costAnswer, assertReceipt, assertStatus, assert402, rowMoney, metricValue,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

// [name, upstream 200 body, row cost = charged, cost_source, balance after]
const TABLE = [
  ['R1', '{"results":[],"costDollars":{"total":0}}', 0, 'upstream', 50_000],
  ['R2', '{"results":[]}', 7000, 'estimate', 43_000],
  ['R3', '{"results":[],"costDollars":{"total":null}}', 7000, 'estimate', 36_000],
  ['R4', '{"results":[],"costDollars":{"total":-0.005}}', 7000, 'estimate', 29_000],
  ['R5', '{"results":[],"costDollars":{"total":"n/a"}}', 7000, 'estimate', 22_000],
  ['R6', '{"results":[],"costDollars":{"total":1e400}}', 7000, 'estimate', 15_000],
  ['R7', '{"results":[],"costDollars":{"total":0.005}}', 5000, 'upstream', 10_000],
  ['R8', '{"results":[]}', 7000, 'estimate', 3000],
  ['R9', '{"results":[]}', 7000, 'estimate', -4000],
];

function estimateMetrics(text) {
  return {
    estimateCharged: metricValue(text, 'tollgate_estimate_charged_total') ?? 0,
    estimateMicrodollars: metricValue(text, 'tollgate_cost_microdollars_total', { source: 'estimate' }) ?? 0,
  };
}

describe('case 06: missing, malformed and zero costs (u1, May 2025)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-05-01T00:00:00Z' });
  let keys;
  let metricsBefore;
  before(async () => {
    keys = await h.usersWithKeys(['u1', 'u2']);
    await h.admin.grant('user:u1', 50_000, { effective_at: '2025-05-01T00:00:00Z' });
    await h.setClock('2025-05-01T00:00:00Z');
    const res = await h.search(keys.u1, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 50_000 });
    metricsBefore = estimateMetrics(await h.admin.metrics());
  });

  TABLE.forEach(([name, upstreamBody, cost, source, balanceAfter], i) => {
    it(`${name}: upstream 200 ${upstreamBody} -> 200, cost ${cost} (${source}), balance ${balanceAfter}`, async () => {
      await h.setClock(`2025-05-05T10:0${i}:00Z`);
      const res = await h.expectUpstreamCalls(1, () => h.proxy('search', { key: keys.u1, body: searchBody({ body: upstreamBody }) }));
      assertStatus(res, 200);
      assert.equal(res.text, upstreamBody, 'upstream body passed through unchanged');
      assertReceipt(res, { cost, free: 0, charged: cost, remaining: 0, balance: balanceAfter });
      const row = await h.auditRow(res.requestId, { user: 'u1' });
      assert.deepEqual(rowMoney(row), { cost, free: 0, charged: cost, source, status: 200 });
      await h.expectAccount('user:u1', { balance: balanceAfter, held: 0 });
    });
  });

  it('R10: 2025-05-05T10:09:00Z -> 402 with balance -4000, not forwarded', async () => {
    await h.setClock('2025-05-05T10:09:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.search(keys.u1, '0.007'));
    assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: -4000, context: 'personal' });
    await h.expectAccount('user:u1', { balance: -4000, held: 0 });
  });

  it('metrics: 7 answers charged the estimate, 49,000 µ$ from source "estimate"', async () => {
    const now = estimateMetrics(await h.admin.metrics());
    assert.equal(now.estimateCharged - metricsBefore.estimateCharged, 7, 'tollgate_estimate_charged_total increase');
    assert.equal(now.estimateMicrodollars, 49_000, 'tollgate_cost_microdollars_total{source="estimate"}');
  });

  it('May usage for u1', async () => {
    await h.expectUsage('u1', '2025-05', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 10, total_cost: 10_054_000, total_free: 10_000_000, total_charged: 54_000 } },
    });
    await h.expectAccount('user:u1', { balance: -4000, held: 0 });
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-05' });
    assert.equal(rows.length, 10);
    for (const row of rows.slice(1)) assert.equal(row.free_microdollars, 0);
  });

  it('recompute reports no drift', async () => { await h.expectNoDrift(); });
});

describe('case 06: a zero cost still locks the month (u2)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-06-01T00:00:00Z' });
  let keys;
  before(async () => { keys = await h.usersWithKeys(['u1', 'u2']); });

  it('2025-06-01T00:00:00Z: u2 first June request, cost 0 -> 200, cost 0 from upstream, month locked', async () => {
    await h.setClock('2025-06-01T00:00:00Z');
    const res = await h.search(keys.u2, '0');
    assertStatus(res, 200);
    assert.equal(res.text, costAnswer('0'));
    assertReceipt(res, { cost: 0, free: 0, charged: 0, remaining: 10_000_000, balance: 0 });
    const row = await h.auditRow(res.requestId, { user: 'u2' });
    assert.deepEqual(rowMoney(row), { cost: 0, free: 0, charged: 0, source: 'upstream', status: 200 });
    await h.expectUsage('u2', '2025-06', {
      free_allowance: 10_000_000,
      free_used: 0,
      contexts: { personal: { request_count: 1, total_cost: 0, total_free: 0, total_charged: 0 } },
    });
    await h.expectAccount('user:u2', { balance: 0, held: 0 });
  });

  it('recompute reports no drift', async () => { await h.expectNoDrift(); });
});
