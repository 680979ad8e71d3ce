// Case 02 — the month boundary is taken in local time instead of UTC
// (shared/cases/case-02-month-boundary-utc.md). The whole case runs twice, with the
// tollgate process under TZ=Asia/Tokyo and under TZ=America/Los_Angeles; the
// expected values are the same. Both runs again on PostgreSQL, where the rows
// must also lie in their month's audit-log partition.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, assertReceipt, assertStatus, assert402, rowMoney, PG_SKIP,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

const VARIANTS = [
  { name: '', options: {}, skip: false },
  { name: ' [PostgreSQL]', options: { postgres: true }, skip: PG_SKIP },
];

// The partition that holds a request's audit row (ids are checked first: they go into SQL text).
async function partitionOf(h, requestId) {
  assert.match(requestId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  return h.pg(`SELECT tableoid::regclass FROM audit_log WHERE request_id = '${requestId}'`);
}

for (const v of VARIANTS) for (const tz of ['Asia/Tokyo', 'America/Los_Angeles']) {
  describe(`case 02 under TZ=${tz}${v.name}`, { skip: v.skip }, () => {
    const h = useHarness({ config: CONFIG, clock: '2025-03-05T00:00:00Z', tz, ...v.options });
    let key;
    let step1Id;
    let requestBId;
    before(async () => { ({ u1: key } = await h.usersWithKeys(['u1'])); });

    it('step 1: 2025-03-05T00:00:00Z, cost 10.000000 -> 200, free 10,000,000', async () => {
      await h.setClock('2025-03-05T00:00:00Z');
      const res = await h.search(key, '10.000000');
      assertStatus(res, 200);
      assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 0 });
      step1Id = res.requestId;
    });

    it('step 2: 2025-03-31T15:30:00Z (April in Tokyo), request A -> 402, not forwarded', async () => {
      await h.setClock('2025-03-31T15:30:00Z');
      const res = await h.expectUpstreamCalls(0, () => h.search(key, '0.005'));
      assert402(res, { allowance: 10_000_000, used: 10_000_000, balance: 0, context: 'personal' });
      assert.equal(res.json.monthlyAllowance, '$10.00');
      assert.equal(res.json.used, '$10.00');
    });

    it('step 3: 2025-04-01T00:00:00Z (still March in Los Angeles), request B -> 200, free', async () => {
      await h.setClock('2025-04-01T00:00:00Z');
      const res = await h.expectUpstreamCalls(1, () => h.search(key, '0.005'));
      assertStatus(res, 200);
      assertReceipt(res, { cost: 5000, free: 5000, charged: 0, remaining: 9_995_000, balance: 0 });
      requestBId = res.requestId;
    });

    it('step 4: April usage is locked by B', async () => {
      await h.expectUsage('u1', '2025-04', {
        free_allowance: 10_000_000,
        free_used: 5000,
        contexts: { personal: { request_count: 1, total_cost: 5000, total_free: 5000, total_charged: 0 } },
      });
    });

    it('step 5: March usage holds only step 1; request A left no money anywhere', async () => {
      await h.expectUsage('u1', '2025-03', {
        free_allowance: 10_000_000,
        free_used: 10_000_000,
        contexts: { personal: { request_count: 1, total_cost: 10_000_000, total_free: 10_000_000, total_charged: 0 } },
      });
    });

    it('step 6: the usage log puts B in April and step 1 in March, at their UTC arrival', async () => {
      const april = await h.admin.usageLog({ user: 'u1', month: '2025-04' });
      assert.deepEqual(april.map((r) => r.request_id), [requestBId]);
      assert.deepEqual(rowMoney(april[0]), { cost: 5000, free: 5000, charged: 0, source: 'upstream', status: 200 });
      assert.equal(april[0].arrived_at, '2025-04-01T00:00:00.000Z');

      const march = await h.admin.usageLog({ user: 'u1', month: '2025-03' });
      assert.deepEqual(march.map((r) => r.request_id), [step1Id]);
      assert.equal(march[0].arrived_at, '2025-03-05T00:00:00.000Z');
    });

    it('step 6 (PostgreSQL): B lies in the 2025-04 partition, step 1 in 2025-03',
      { skip: v.options.postgres ? false : 'SQLite keeps the audit log in one table' }, async () => {
        assert.equal(await partitionOf(h, requestBId), 'audit_log_2025_04');
        assert.equal(await partitionOf(h, step1Id), 'audit_log_2025_03');
        assert.equal(await h.pg('SELECT count(*) FROM audit_log_default'), '0');
      });

    it('step 7: balance 0, held 0; tollgate report for 2025-04', async () => {
      await h.expectAccount('user:u1', { balance: 0, held: 0 });
      const report = await h.tollgate.report('2025-04', 'json');
      assert.equal(report.code, 0, `tollgate report failed: ${report.stderr}`);
      assert.deepEqual(report.json, {
        month: '2025-04',
        rows: [{
          user: 'u1',
          context: 'personal',
          request_count: 1,
          total_cost_microdollars: 5000,
          total_free_microdollars: 5000,
          total_charged_microdollars: 0,
        }],
      });
    });

    it('step 8: the test upstream was called twice in all', async () => {
      assert.equal(await h.fake.totalCalls(), 2);
    });
  });
}
