// Case 04 — a cached usage figure counts the same charges twice after a reload
// (shared/cases/case-04-usage-counter-double-count.md). Again on PostgreSQL with two
// tollgate processes on one database (step 9): only the first is restarted, half of
// each burst goes to each, single requests alternate between them.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, costBody, assertReceipt, assertStatus, rowMoney, metricValue, PG_SKIP,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };
const GRANT_U1 = 5_000_000;

const VARIANTS = [
  { name: '', options: {}, skip: false },
  { name: ' [step 9: PostgreSQL, two processes]', options: { postgres: true, instances: 2 }, skip: PG_SKIP },
];

for (const v of VARIANTS) {
  describe(`case 04: usage and balance survive restarts without double counting${v.name}`, { skip: v.skip }, () => {
    const h = useHarness({ config: CONFIG, clock: '2025-03-02T10:00:00Z', ...v.options });
    let keys;
    // Single requests alternate between the processes.
    let nextInstance = 0;
    const alternate = () => ({ instance: nextInstance++ % h.tollgates.length });
    before(async () => {
      keys = await h.usersWithKeys(['u1', 'u2']);
      await h.admin.grant('user:u1', GRANT_U1, { effective_at: '2025-03-01T00:00:00Z' });
    });

    // After every step: free_used = Σ free parts of the user's March rows, and
    // balance = grants − Σ charged parts.
    async function checkBooks() {
      for (const [user, granted] of [['u1', GRANT_U1], ['u2', 0]]) {
        const rows = await h.admin.usageLog({ user, month: '2025-03' });
        const free = rows.reduce((s, r) => s + r.free_microdollars, 0);
        const charged = rows.reduce((s, r) => s + r.charged_microdollars, 0);
        for (const r of rows) assert.equal(r.free_microdollars + r.charged_microdollars, r.cost_microdollars);
        await h.expectUsage(user, '2025-03', { free_used: free });
        await h.expectAccount(`user:${user}`, { balance: granted - charged, held: 0 });
      }
    }

    it('step 1: 2025-03-02T10:00:00Z, u1 and u2 cost 6.000000 -> 200, free 6,000,000 each', async () => {
      await h.setClock('2025-03-02T10:00:00Z');
      const r1 = await h.search(keys.u1, '6.000000', alternate());
      assertStatus(r1, 200);
      assertReceipt(r1, { cost: 6_000_000, free: 6_000_000, charged: 0, remaining: 4_000_000, balance: GRANT_U1 });
      const r2 = await h.search(keys.u2, '6.000000', alternate());
      assertStatus(r2, 200);
      assertReceipt(r2, { cost: 6_000_000, free: 6_000_000, charged: 0, remaining: 4_000_000, balance: 0 });
      await checkBooks();
    });

    it('step 2: 2025-03-02T11:00:00Z, restart', async () => {
      await h.setClock('2025-03-02T11:00:00Z');
      await h.tollgate.restart();
      await checkBooks();
    });

    it('step 3: 2025-03-02T11:05:00Z, 8 concurrent requests each for u1 and u2 at 0.375 -> all 200 and free', async () => {
      await h.setClock('2025-03-02T11:05:00Z');
      const responses = await h.burst(16, (i) => h.proxyRequest('search', {
        key: i % 2 === 0 ? keys.u1 : keys.u2,
        body: costBody('0.375', { delay_ms: 200 }),
        instance: Math.floor(i / 2) % h.tollgates.length,  // each user's requests split across the processes
      }));
      assert.deepEqual(responses.map((r) => r.status), Array(16).fill(200));
      for (const res of responses) assertReceipt(res, { cost: 375_000, free: 375_000, charged: 0 });

      for (const user of ['u1', 'u2']) {
        const rows = (await h.admin.usageLog({ user, month: '2025-03' })).filter((r) => r.arrived_at === '2025-03-02T11:05:00.000Z');
        assert.equal(rows.length, 8, `${user} step-3 rows`);
        for (const row of rows) {
          assert.deepEqual(rowMoney(row), { cost: 375_000, free: 375_000, charged: 0, source: 'upstream', status: 200 });
        }
        await h.expectUsage(user, '2025-03', { free_used: 9_000_000 });
      }
      await h.expectAccount('user:u1', { balance: 5_000_000, held: 0 });
      await h.expectAccount('user:u2', { balance: 0, held: 0 });
      await checkBooks();
    });

    it('step 4: 2025-03-02T11:10:00Z, u1 cost 2.000000 -> split 1,000,000 free / 1,000,000 charged', async () => {
      await h.setClock('2025-03-02T11:10:00Z');
      const res = await h.search(keys.u1, '2.000000', alternate());
      assertStatus(res, 200);
      assertReceipt(res, { cost: 2_000_000, free: 1_000_000, charged: 1_000_000, remaining: 0, balance: 4_000_000 });
      const row = await h.auditRow(res.requestId, { user: 'u1' });
      assert.deepEqual(rowMoney(row), { cost: 2_000_000, free: 1_000_000, charged: 1_000_000, source: 'upstream', status: 200 });
      await h.expectUsage('u1', '2025-03', { free_used: 10_000_000 });
      await checkBooks();
    });

    it('step 5: 2025-03-02T11:12:00Z, restart again', async () => {
      await h.setClock('2025-03-02T11:12:00Z');
      await h.tollgate.restart();
      await checkBooks();
    });

    it('step 6: 2025-03-02T11:15:00Z, u1 cost 0.500000 -> charged 500,000, balance 3,500,000', async () => {
      await h.setClock('2025-03-02T11:15:00Z');
      const res = await h.search(keys.u1, '0.500000', alternate());
      assertStatus(res, 200);
      assertReceipt(res, { cost: 500_000, free: 0, charged: 500_000, remaining: 0, balance: 3_500_000 });
      await h.expectAccount('user:u1', { balance: 3_500_000, held: 0 });
      await checkBooks();
    });

    it('step 7: 2025-03-02T11:16:00Z, u2 cost 1.000000 -> free 1,000,000 (exactly what remained)', async () => {
      await h.setClock('2025-03-02T11:16:00Z');
      const res = await h.search(keys.u2, '1.000000', alternate());
      assertStatus(res, 200);
      assertReceipt(res, { cost: 1_000_000, free: 1_000_000, charged: 0, remaining: 0, balance: 0 });
      await checkBooks();
    });

    it('step 8: final usage, balances, recompute and drift metric', async () => {
      await h.expectUsage('u1', '2025-03', {
        free_allowance: 10_000_000,
        free_used: 10_000_000,
        contexts: { personal: { request_count: 11, total_cost: 11_500_000, total_free: 10_000_000, total_charged: 1_500_000 } },
      });
      await h.expectUsage('u2', '2025-03', {
        free_allowance: 10_000_000,
        free_used: 10_000_000,
        contexts: { personal: { request_count: 10, total_cost: 10_000_000, total_free: 10_000_000, total_charged: 0 } },
      });
      await h.expectAccount('user:u1', { balance: 3_500_000, held: 0 });
      await h.expectAccount('user:u2', { balance: 0, held: 0 });
      await checkBooks();
      await h.expectNoDrift();
      const metrics = await h.admin.metrics();
      assert.equal(metricValue(metrics, 'tollgate_ledger_drift_microdollars'), 0, 'tollgate_ledger_drift_microdollars');
    });

  });
}
