// Crash safety (SPEC section 6, guarantee 6): tollgate is killed with SIGKILL while
// requests are in flight upstream; after a restart with a short hold time-out their
// durable holds are resolved by the recovery policy, exactly once, and the books
// balance again. Also: SIGTERM settles in-flight requests before exiting.
//
// These run on the real clock: hold time-outs are measured in wall time.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, openRequest, costBody, assertStatus, assertReceipt, rowMoney, metricValue, waitFor,
} from './lib/harness.mjs';

const ESTIMATE = 7000;
const UPSTREAM_DELAY_MS = 20_000;
// "credit" users have no free allowance, so their holds are credit holds and show
// in held_microdollars; "free" users hold from their allowance.
const BASE = {
  allowance: { default_microdollars: 10_000_000, tiers: { credit_microdollars: 0 } },
  admission: { policy: 'any_remaining' },
};
const short = (recovery) => ({
  ...BASE,
  upstream: { timeout_ms: 1000 },
  holds: { timeout_ms: 3000, recovery },
});

function currentMonth() { return new Date().toISOString().slice(0, 7); }

// Starts n search requests that the upstream answers only after UPSTREAM_DELAY_MS.
function inFlight(h, key, n) {
  return Array.from({ length: n }, () => {
    const { url, ...options } = h.proxyRequest('search', { key, body: costBody('0.005', { delay_ms: UPSTREAM_DELAY_MS }) });
    const r = openRequest(url, options);
    r.release();
    return r.response.then((res) => res, (err) => ({ error: err.message }));
  });
}

function crashScenario(recovery) {
  describe(`kill -9 with requests in flight, then recovery = "${recovery}"`, () => {
    const h = useHarness({ config: BASE, clock: null });
    let keys;
    let month;
    let outcomes;
    before(async () => {
      keys = await h.usersWithKeys({ c1: 'credit', f1: undefined });
      await h.admin.grant('user:c1', 100_000);
    });

    it('four requests reach the upstream with durable holds; tollgate is killed', async () => {
      month = currentMonth();
      outcomes = [...inFlight(h, keys.c1, 3), ...inFlight(h, keys.f1, 1)];
      await waitFor('4 calls at the upstream', async () => (await h.fake.calls()) === 4);
      await h.expectAccount('user:c1', { balance: 100_000, held: 3 * ESTIMATE });
      await h.tollgate.kill();
      for (const outcome of await Promise.all(outcomes)) {
        assert.ok(outcome.error, `the client lost its connection: ${JSON.stringify(outcome)}`);
      }
    });

    it('after a restart with a short hold time-out the holds are resolved', async () => {
      await h.tollgate.start({ config: short(recovery) });
      await waitFor('holds resolved', async () => {
        const acc = await h.admin.account('user:c1');
        const rows = await h.admin.usageLog({ user: 'f1' });
        return acc.held_microdollars === 0 && rows.length === 1;
      }, { timeoutMs: 30_000, intervalMs: 250 });
    });

    it('one audit row per held request, resolved by the policy', async () => {
      const charge = recovery === 'charge_estimate';
      const credit = await h.admin.usageLog({ user: 'c1' });
      assert.equal(credit.length, 3);
      for (const row of credit) {
        assert.equal(row.arrived_at.slice(0, 7), month);
        const money = rowMoney(row);
        if (charge) {
          assert.deepEqual({ ...money, status: undefined }, { cost: ESTIMATE, free: 0, charged: ESTIMATE, source: 'recovered', status: undefined });
        } else {
          assert.deepEqual({ cost: money.cost, free: money.free, charged: money.charged }, { cost: 0, free: 0, charged: 0 });
        }
      }
      const free = await h.admin.usageLog({ user: 'f1' });
      assert.equal(free.length, 1);
      if (charge) {
        assert.deepEqual({ ...rowMoney(free[0]), status: undefined }, { cost: ESTIMATE, free: ESTIMATE, charged: 0, source: 'recovered', status: undefined });
      } else {
        assert.equal(free[0].cost_microdollars, 0);
      }

      const charged = charge ? 3 * ESTIMATE : 0;
      await h.expectAccount('user:c1', { balance: 100_000 - charged, held: 0 });
      await h.expectAccount('user:f1', { balance: 0, held: 0 });
      await h.expectUsage('c1', month, {
        free_allowance: 0,
        free_used: 0,
        contexts: { personal: { request_count: 3, total_cost: charged, total_free: 0, total_charged: charged } },
      });
      await h.expectUsage('f1', month, {
        free_allowance: 10_000_000,
        free_used: charge ? ESTIMATE : 0,
        contexts: { personal: { request_count: 1, total_cost: charge ? ESTIMATE : 0, total_free: charge ? ESTIMATE : 0, total_charged: 0 } },
      });
    });

    it('nothing was forwarded again, the books balance and the metric counts the recovered µ$', async () => {
      assert.equal(await h.fake.totalCalls(), 4);
      await h.expectNoDrift();
      if (recovery === 'charge_estimate') {
        const metrics = await h.admin.metrics();
        assert.equal(metricValue(metrics, 'tollgate_cost_microdollars_total', { source: 'recovered' }), 4 * ESTIMATE,
          'tollgate_cost_microdollars_total{source="recovered"}');
      }
    });

    it('the restarted process serves and settles new requests normally', async () => {
      const res = await h.search(keys.c1, '0.005');
      assertStatus(res, 200);
      const balance = 100_000 - (recovery === 'charge_estimate' ? 3 * ESTIMATE : 0) - 5000;
      assertReceipt(res, { cost: 5000, free: 0, charged: 5000, remaining: 0, balance });
      await h.expectAccount('user:c1', { balance, held: 0 });
    });
  });
}

crashScenario('charge_estimate');
crashScenario('release');

describe('SIGTERM settles in-flight requests before exiting', () => {
  const h = useHarness({ config: BASE, clock: null });
  let keys;
  before(async () => {
    keys = await h.usersWithKeys({ c1: 'credit' });
    await h.admin.grant('user:c1', 100_000);
  });

  it('a request in flight at SIGTERM is answered and charged its upstream cost', async () => {
    const { url, ...options } = h.proxyRequest('search', { key: keys.c1, body: costBody('0.005', { delay_ms: 1500 }) });
    const r = openRequest(url, options);
    r.release();
    await waitFor('the call at the upstream', async () => (await h.fake.calls()) === 1);
    const stopped = h.tollgate.stop();
    const res = await r.response;
    assertStatus(res, 200);
    assertReceipt(res, { cost: 5000, free: 0, charged: 5000, balance: 95_000 });
    const { code, signal } = await stopped;
    assert.deepEqual({ code, signal }, { code: 0, signal: null }, 'clean exit after SIGTERM');

    await h.tollgate.start();
    const rows = await h.admin.usageLog({ user: 'c1' });
    assert.equal(rows.length, 1);
    assert.deepEqual(rowMoney(rows[0]), { cost: 5000, free: 0, charged: 5000, source: 'upstream', status: 200 });
    await h.expectAccount('user:c1', { balance: 95_000, held: 0 });
    await h.expectNoDrift();
  });
});
