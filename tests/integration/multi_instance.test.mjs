// Several stateless tollgate processes on one PostgreSQL database (SPEC §5, §6, §10):
// hundreds of concurrent requests spread across three instances, at users with small
// allowances and balances. Every counter, balance, allowance lock and the upstream call
// count are checked to the microdollar; the guarantees must be enforced by the database.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import { useHarness, costBody, assertReceipt, PG_SKIP, SEARCH_ESTIMATE } from './lib/harness.mjs';

const USERS = ['u1', 'u2', 'u3', 'u4', 'u5', 'u6'];
const ALLOWANCE = 21_000;  // 3 requests at the 7,000 estimate
const PERSONAL_GRANT = 14_000;  // 2 more personal requests each
const ORG_GRANT = 70_000;  // 10 org requests, shared by all members

async function setup(h) {
  const keys = await h.usersWithKeys(USERS);
  await h.admin.createOrg('acme');
  for (const u of USERS) await h.admin.addMember('acme', u);
  return keys;
}

// Usage-log rows of a user-month summed per context, as the usage endpoint reports them.
function sumRows(rows) {
  const out = {};
  for (const r of rows) {
    const c = (out[r.context] ??= { request_count: 0, total_cost: 0, total_free: 0, total_charged: 0 });
    c.request_count += 1;
    c.total_cost += r.cost_microdollars;
    c.total_free += r.free_microdollars;
    c.total_charged += r.charged_microdollars;
    assert.equal(r.free_microdollars + r.charged_microdollars, r.cost_microdollars, `row ${r.request_id}`);
  }
  return out;
}

// Counters = Σ audit rows, per user and context, read through every instance.
async function checkCountersAgainstRows(h, month) {
  const perUser = {};
  for (const u of USERS) {
    const rows = await h.admin.usageLog({ user: u, month });
    const sums = sumRows(rows);
    const free = rows.reduce((s, r) => s + r.free_microdollars, 0);
    for (const admin of h.admins) {
      const usage = await admin.usage(u, month);
      const actual = {};
      for (const c of usage.contexts) {
        actual[c.context] = {
          request_count: c.request_count,
          total_cost: c.total_cost_microdollars,
          total_free: c.total_free_microdollars,
          total_charged: c.total_charged_microdollars,
        };
      }
      assert.deepEqual(actual, sums, `${u} ${month} counters = Σ audit rows`);
      assert.equal(usage.free_used_microdollars, free, `${u} ${month} free_used = Σ free parts`);
      assert.ok(free <= usage.free_allowance_microdollars, `${u} free ${free} within the allowance`);
    }
    perUser[u] = { rows, sums, free };
  }
  return perUser;
}

describe('three instances on one PostgreSQL database: exact spending under a burst', { skip: PG_SKIP }, () => {
  const h = useHarness({
    postgres: true,
    instances: 3,
    clock: '2025-04-30T23:59:00Z',
    config: {
      allowance: { default_microdollars: ALLOWANCE },
      admission: { policy: 'any_remaining' },
      database: { pool_size: 4 },
    },
  });
  let keys;
  before(async () => {
    keys = await setup(h);
    for (const u of USERS) await h.admin.grant(`user:${u}`, PERSONAL_GRANT, { effective_at: '2025-04-01T00:00:00Z' });
    await h.admin.grant('org:acme', ORG_GRANT, { effective_at: '2025-04-01T00:00:00Z' });
  });

  it('300 requests at the first instant of May: 40 admitted, exactly the funds spent', async () => {
    await h.setClock('2025-05-01T00:00:00Z');
    const N = 300;
    // Each cost equals its hold (the estimate), so the outcome does not depend on the
    // interleaving: every pool is drained exactly, nothing more is forwarded.
    const admitted = USERS.length * (ALLOWANCE + PERSONAL_GRANT) / SEARCH_ESTIMATE + ORG_GRANT / SEARCH_ESTIMATE;
    assert.equal(admitted, 40);
    const responses = await h.expectUpstreamCalls(admitted, () => h.burst(N, (i) => h.proxyRequest('search', {
      key: keys[USERS[i % USERS.length]],
      org: Math.floor(i / USERS.length) % 2 === 1 ? 'acme' : undefined,
      body: costBody('0.007', { delay_ms: 50 + (i % 7) * 40 }),
      instance: i % 3,
    })));
    const statuses = {};
    for (const r of responses) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    assert.deepEqual(statuses, { 200: admitted, 402: N - admitted }, 'statuses');
    for (const r of responses.filter((x) => x.status === 200)) {
      assertReceipt(r, { cost: SEARCH_ESTIMATE });
      assert.equal(Number(r.header('x-tollgate-free-microdollars')) + Number(r.header('x-tollgate-charged-microdollars')),
        SEARCH_ESTIMATE);
    }
    for (const r of responses.filter((x) => x.status === 402)) {
      assert.equal(r.json.monthly_allowance_microdollars, ALLOWANCE);
      assert.equal(r.json.used_microdollars <= ALLOWANCE, true);
    }
  });

  it('every counter, balance and lock to the microdollar, through every instance', async () => {
    const perUser = await checkCountersAgainstRows(h, '2025-05');
    let orgCharged = 0;
    let rows = 0;
    for (const u of USERS) {
      const { sums, free } = perUser[u];
      assert.equal(free, ALLOWANCE, `${u}: the whole allowance, and no more, is free`);
      assert.equal(sums.personal.total_charged, PERSONAL_GRANT, `${u}: personal credit charged exactly`);
      orgCharged += sums['org:acme']?.total_charged ?? 0;
      rows += perUser[u].rows.length;
    }
    assert.equal(orgCharged, ORG_GRANT, 'the org balance is charged exactly');
    assert.equal(rows, 40, 'one audit row per admitted request');
    for (const admin of h.admins) {
      for (const u of USERS) {
        const acc = await admin.account(`user:${u}`);
        assert.deepEqual([acc.balance_microdollars, acc.held_microdollars], [0, 0], `user:${u} balance, held`);
      }
      const org = await admin.account('org:acme');
      assert.deepEqual([org.balance_microdollars, org.held_microdollars], [0, 0], 'org:acme balance, held');
    }
    // One lock per user-month, made by the first request of May whichever instance had it.
    const locks = await h.pg("SELECT user_id, month, allowance_microdollars, free_used_microdollars, " +
      'free_held_microdollars FROM allowance_locks ORDER BY user_id, month');
    assert.deepEqual(locks.split('\n'), USERS.map((u) => `${u}|2025-05|${ALLOWANCE}|${ALLOWANCE}|0`));
    assert.equal(await h.pg('SELECT count(*) FROM holds'), '0', 'no hold left');
    // The rows lie in May's partition, made at start-up.
    assert.equal(await h.pg('SELECT tableoid::regclass::text, count(*) FROM audit_log GROUP BY 1'), 'audit_log_2025_05|40');
  });

  it('recompute reports no drift on any instance', async () => {
    for (const admin of h.admins) {
      const report = await admin.recompute();
      assert.deepEqual(report.drift, [], JSON.stringify(report));
    }
  });
});

describe('three instances on one PostgreSQL database: cover_estimate never goes below zero', { skip: PG_SKIP }, () => {
  const h = useHarness({
    postgres: true,
    instances: 3,
    clock: '2025-06-02T10:00:00Z',
    config: {
      allowance: { default_microdollars: ALLOWANCE },
      admission: { policy: 'cover_estimate' },
      database: { pool_size: 2, batch_max: 32 },
    },
  });
  let keys;
  before(async () => {
    keys = await setup(h);
    for (const u of USERS) await h.admin.grant(`user:${u}`, 30_000, { effective_at: '2025-06-01T00:00:00Z' });
    await h.admin.grant('org:acme', 100_000, { effective_at: '2025-06-01T00:00:00Z' });
  });

  it('240 requests whose costs vary below the estimate: balances stay >= 0, books exact', async () => {
    await h.setClock('2025-06-02T10:05:00Z');
    const costs = ['0.007', '0.005', '0.0031', '0.006999', '0'];
    const responses = await h.burst(240, (i) => h.proxyRequest('search', {
      key: keys[USERS[i % USERS.length]],
      org: i % 4 === 3 ? 'acme' : undefined,
      body: costBody(costs[i % costs.length], { delay_ms: 30 + (i % 5) * 50 }),
      instance: i % 3,
    }));
    const ok = responses.filter((r) => r.status === 200);
    assert.ok(responses.every((r) => r.status === 200 || r.status === 402), `statuses ${responses.map((r) => r.status)}`);
    assert.equal(await h.fake.totalCalls(), ok.length, 'forwarded = admitted');
    const perUser = await checkCountersAgainstRows(h, '2025-06');
    assert.equal(USERS.reduce((s, u) => s + perUser[u].rows.length, 0), ok.length, 'audit rows = admitted');
    for (const owner of [...USERS.map((u) => `user:${u}`), 'org:acme']) {
      const acc = await h.admins[1].account(owner);
      assert.ok(acc.balance_microdollars >= 0, `${owner} balance ${acc.balance_microdollars} >= 0`);
      assert.equal(acc.held_microdollars, 0, `${owner} held`);
      const charged = USERS.reduce((s, u) => s + perUser[u].rows
        .filter((r) => (owner === 'org:acme' ? r.context === 'org:acme' : r.context === 'personal' && `user:${r.user}` === owner))
        .reduce((t, r) => t + r.charged_microdollars, 0), 0);
      const granted = owner === 'org:acme' ? 100_000 : 30_000;
      assert.equal(acc.balance_microdollars, granted - charged, `${owner} balance = grants - Σ charged`);
    }
    const report = await h.admins[2].recompute();
    assert.deepEqual(report.drift, [], JSON.stringify(report));
  });
});
