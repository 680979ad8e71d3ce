// Case 01 — concurrent requests overspend the allowance or the balance
// (shared/cases/case-01-concurrent-overspend.md). Each part runs on its own database:
// on SQLite, and again on PostgreSQL with every burst split across two tollgate
// processes sharing the database (the same values).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, costBody, assertReceipt, assertStatus, assert402, rowMoney, PG_SKIP,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

// Users u1, u2, u3 with keys; grants effective 2025-03-01T00:00:00Z, non-expiring.
async function setup(h) {
  const keys = await h.usersWithKeys(['u1', 'u2', 'u3']);
  await h.admin.grant('user:u1', 1_000_000, { effective_at: '2025-03-01T00:00:00Z' });
  await h.admin.grant('user:u2', 21_000, { effective_at: '2025-03-01T00:00:00Z' });
  await h.admin.grant('user:u3', 2_000_000, { effective_at: '2025-03-01T00:00:00Z' });
  return keys;
}

// Split evenly across the harness's tollgate processes.
function searchBurst(h, key, n, costText, delayMs) {
  return h.burst(n, (i) => h.proxyRequest('search', {
    key, body: costBody(costText, { delay_ms: delayMs }), instance: i % h.tollgates.length,
  }));
}

const VARIANTS = [
  { name: '', options: {}, skip: false },
  { name: ' [PostgreSQL, two processes]', options: { postgres: true, instances: 2 }, skip: PG_SKIP },
];

for (const v of VARIANTS) {
  describe(`case 01 part A${v.name}: many small charges at once (u1)`, { skip: v.skip }, () => {
    const h = useHarness({ config: CONFIG, clock: '2025-03-01T08:00:00Z', ...v.options });
    let keys;
    before(async () => { keys = await setup(h); });

    it('step 1: 2025-03-01T08:00:00Z, cost 10.000000 -> 200, all free', async () => {
      await h.setClock('2025-03-01T08:00:00Z');
      const res = await h.search(keys.u1, '10.000000');
      assertStatus(res, 200);
      assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 1_000_000 });
    });

    it('step 2: 2025-03-10T12:00:00Z, burst of 50 at cost 0.007 -> all 200, each charged 7,000', async () => {
      await h.setClock('2025-03-10T12:00:00Z');
      const responses = await h.expectUpstreamCalls(50, () => searchBurst(h, keys.u1, 50, '0.007', 500));
      assert.deepEqual(responses.map((r) => r.status), Array(50).fill(200));
      for (const res of responses) assertReceipt(res, { cost: 7000, free: 0, charged: 7000, remaining: 0 });

      await h.expectAccount('user:u1', { balance: 650_000, held: 0 });

      const rows = await h.admin.usageLog({ user: 'u1', month: '2025-03' });
      assert.equal(rows.length, 51);
      const burstIds = new Set(responses.map((r) => r.requestId));
      assert.equal(burstIds.size, 50, 'distinct request ids');
      const burstRows = rows.filter((r) => burstIds.has(r.request_id));
      assert.equal(burstRows.length, 50, 'one audit row per burst request');
      for (const row of burstRows) {
        assert.deepEqual(rowMoney(row), { cost: 7000, free: 0, charged: 7000, source: 'upstream', status: 200 });
        assert.equal(row.context, 'personal');
        assert.equal(row.path, 'search');
      }

      await h.expectUsage('u1', '2025-03', {
        free_allowance: 10_000_000,
        free_used: 10_000_000,
        contexts: { personal: { request_count: 51, total_cost: 10_350_000, total_free: 10_000_000, total_charged: 350_000 } },
      });
    });

    it('recompute reports no drift', async () => { await h.expectNoDrift(); });
  });

  describe(`case 01 part B${v.name}: a burst larger than the balance (u2)`, { skip: v.skip }, () => {
    const h = useHarness({ config: CONFIG, clock: '2025-03-01T08:00:01Z', ...v.options });
    let keys;
    before(async () => { keys = await setup(h); });

    it('step 3: 2025-03-01T08:00:01Z, cost 10.000000 -> 200 (allowance used up)', async () => {
      await h.setClock('2025-03-01T08:00:01Z');
      const res = await h.search(keys.u2, '10.000000');
      assertStatus(res, 200);
      assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 21_000 });
    });

    it('step 4: 2025-03-10T12:05:00Z, burst of 20 at cost 0.007 -> exactly 3 x 200, 17 x 402, 3 upstream calls', async () => {
      await h.setClock('2025-03-10T12:05:00Z');
      const responses = await h.expectUpstreamCalls(3, () => searchBurst(h, keys.u2, 20, '0.007', 500));
      const ok = responses.filter((r) => r.status === 200);
      const refused = responses.filter((r) => r.status === 402);
      assert.deepEqual({ ok: ok.length, refused: refused.length }, { ok: 3, refused: 17 },
        `statuses: ${responses.map((r) => r.status).join(',')}`);
      for (const res of ok) assertReceipt(res, { cost: 7000, free: 0, charged: 7000, remaining: 0 });
      // Their balance figure depends on when each was refused relative to the settlements.
      for (const res of refused) assert402(res, { allowance: 10_000_000, used: 10_000_000, context: 'personal' });

      await h.expectAccount('user:u2', { balance: 0, held: 0 });
      await h.expectUsage('u2', '2025-03', {
        free_allowance: 10_000_000,
        free_used: 10_000_000,
        contexts: { personal: { request_count: 4, total_cost: 10_021_000, total_free: 10_000_000, total_charged: 21_000 } },
      });
      const rows = await h.admin.usageLog({ user: 'u2', month: '2025-03' });
      assert.equal(rows.length, 4, 'audit rows: setup + 3 admitted');
    });

    it('step 5: 2025-03-10T12:06:00Z, another burst of 20 -> all 402, no upstream call', async () => {
      await h.setClock('2025-03-10T12:06:00Z');
      const responses = await h.expectUpstreamCalls(0, () => searchBurst(h, keys.u2, 20, '0.007', 500));
      for (const res of responses) {
        assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'personal' });
      }
      await h.expectAccount('user:u2', { balance: 0, held: 0 });
      await h.expectUsage('u2', '2025-03', {
        free_used: 10_000_000,
        contexts: { personal: { request_count: 4, total_cost: 10_021_000, total_free: 10_000_000, total_charged: 21_000 } },
      });
      assert.equal((await h.admin.usageLog({ user: 'u2' })).length, 4, 'no new audit rows');
    });

    it('recompute reports no drift', async () => { await h.expectNoDrift(); });
  });

  describe(`case 01 part C${v.name}: two requests straddling the allowance at once (u3)`, { skip: v.skip }, () => {
    const h = useHarness({ config: CONFIG, clock: '2025-04-02T10:00:00Z', ...v.options });
    let keys;
    before(async () => { keys = await setup(h); });

    it('step 6: 2025-04-02T10:00:00Z, cost 9.000000 -> 200, free 9,000,000', async () => {
      await h.setClock('2025-04-02T10:00:00Z');
      const res = await h.search(keys.u3, '9.000000');
      assertStatus(res, 200);
      assertReceipt(res, { cost: 9_000_000, free: 9_000_000, charged: 0, remaining: 1_000_000, balance: 2_000_000 });
    });

    it('step 7: 2025-04-02T10:01:00Z, burst of 2 at cost 0.800000 -> both 200, split 800,000 | 200,000 + 600,000', async () => {
      await h.setClock('2025-04-02T10:01:00Z');
      const responses = await h.expectUpstreamCalls(2, () => searchBurst(h, keys.u3, 2, '0.800000', 500));
      assert.deepEqual(responses.map((r) => r.status), [200, 200]);

      const rows = [];
      for (const res of responses) rows.push(await h.auditRow(res.requestId, { user: 'u3' }));
      const splits = rows.map((r) => [r.free_microdollars, r.charged_microdollars]).sort((a, b) => b[0] - a[0]);
      assert.deepEqual(splits, [[800_000, 0], [200_000, 600_000]]);
      for (const row of rows) assert.equal(row.cost_microdollars, 800_000);
      for (const res of responses) {
        const row = rows.find((r) => r.request_id === res.requestId);
        assertReceipt(res, { cost: 800_000, free: row.free_microdollars, charged: row.charged_microdollars });
      }

      await h.expectUsage('u3', '2025-04', {
        free_allowance: 10_000_000,
        free_used: 10_000_000,
        contexts: { personal: { request_count: 3, total_cost: 10_600_000, total_free: 10_000_000, total_charged: 600_000 } },
      });
      await h.expectAccount('user:u3', { balance: 1_400_000, held: 0 });
    });

    it('recompute reports no drift', async () => { await h.expectNoDrift(); });

  });
}
