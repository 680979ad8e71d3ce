// PostgreSQL goes down during a run (SPEC §6 guarantees 5, 6, 7): this file starts a private
// server of its own (scripts/pg-test-server.sh) so that stopping it disturbs no other test.
// While it is down, new requests get 503 quickly and are not forwarded; requests already
// forwarded are settled once it is back (settlement retries), or, when it stays down past
// their retry window, answered `x-tollgate-settlement: pending` and resolved by the hold
// policy. Nothing is counted twice, and the books balance afterwards.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import fsp from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import {
  useHarness, costBody, assertReceipt, assertStatus, makeTempDir, waitFor, sleep, request, PG_SKIP, rowMoney,
} from './lib/harness.mjs';

const SCRIPT = fileURLToPath(new URL('../../scripts/pg-test-server.sh', import.meta.url));

function pgServer(cmd, dir) {
  return new Promise((resolve, reject) => {
    execFile(SCRIPT, [cmd, dir], { timeout: 90_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`pg-test-server.sh ${cmd}: ${stderr || err.message}`));
      else resolve(stdout.trim());
    });
  });
}

// Module level, so the harnesses below can be pointed at it when they are declared.
const serverDir = PG_SKIP ? null : await makeTempDir('tollgate-pg-outage-');
const serverUrl = PG_SKIP ? null : await pgServer('start', serverDir);
after(async () => {
  if (!serverDir) return;
  await pgServer('stop', serverDir).catch(() => {});
  await fsp.rm(serverDir, { recursive: true, force: true });
});

// The audit rows of these requests, read through the admin API.
async function rowsOf(h, ids) {
  const rows = await h.admin.usageLog({ user: 'u1' });
  return ids.map((id) => rows.filter((r) => r.request_id === id));
}

async function expect503Fast(h, key, n) {
  for (let i = 0; i < n; i++) {
    const t0 = Date.now();
    const res = await h.search(key, '0.001');
    assertStatus(res, 503);
    assert.match(res.json.error, /not forwarded/);
    assert.ok(Date.now() - t0 < 5000, `503 after ${Date.now() - t0} ms`);
  }
}

describe('PostgreSQL stops and starts while requests are in flight', { skip: PG_SKIP }, () => {
  const h = useHarness({
    postgres: true,
    pgServer: serverUrl,
    clock: '2025-03-10T12:00:00Z',
    config: { upstream: { timeout_ms: 10_000 }, holds: { timeout_ms: 30_000 } },
  });
  let key;
  let inflight;
  before(async () => {
    ({ u1: key } = await h.usersWithKeys(['u1']));
    await h.admin.grant('user:u1', 1_000_000, { effective_at: '2025-03-01T00:00:00Z' });
    assertStatus(await h.search(key, '10.000000'), 200);  // the month's allowance is used up
  });

  it('in-flight requests are forwarded; then the database stops: new requests get 503, not forwarded', async () => {
    const calls0 = await h.fake.totalCalls();
    inflight = Array.from({ length: 6 }, () => h.search(key, '0.010', { controls: { delay_ms: 1500 } }));
    await waitFor('the 6 requests at the upstream', async () => (await h.fake.totalCalls()) === calls0 + 6);
    await pgServer('stop', serverDir);
    await h.expectUpstreamCalls(0, () => expect503Fast(h, key, 5));
    const ready = await request(`${h.tollgate.proxyUrl}/readyz`, { method: 'GET' });
    assertStatus(ready, 503);
  });

  it('the database comes back: in-flight requests are settled once, with receipts', async () => {
    await sleep(1000);  // their upstream answers arrived meanwhile; settlement is retrying
    await pgServer('start', serverDir);
    const responses = await Promise.all(inflight);
    for (const res of responses) {
      assertStatus(res, 200);
      assert.equal(res.header('x-tollgate-settlement'), undefined, 'settled, not pending');
      assertReceipt(res, { cost: 10_000, free: 0, charged: 10_000 });
    }
    const rows = await rowsOf(h, responses.map((r) => r.requestId));
    for (const r of rows) {
      assert.equal(r.length, 1, 'exactly one audit row');
      assert.deepEqual(rowMoney(r[0]), { cost: 10_000, free: 0, charged: 10_000, source: 'upstream', status: 200 });
    }
  });

  it('new requests are served again; the books balance', async () => {
    await waitFor('/readyz', async () => (await request(`${h.tollgate.proxyUrl}/readyz`, { method: 'GET' })).status === 200);
    const res = await h.expectUpstreamCalls(1, () => h.search(key, '0.020'));
    assertStatus(res, 200);
    assertReceipt(res, { cost: 20_000, charged: 20_000, balance: 1_000_000 - 6 * 10_000 - 20_000 });
    await h.expectAccount('user:u1', { balance: 1_000_000 - 80_000, held: 0 });
    await h.expectUsage('u1', '2025-03', {
      free_used: 10_000_000,
      contexts: { personal: { request_count: 8, total_cost: 10_080_000, total_free: 10_000_000, total_charged: 80_000 } },
    });
    assert.equal(await h.pg('SELECT count(*) FROM holds'), '0');
    await h.expectNoDrift();
    assert.ok(h.tollgate.proc.running, 'tollgate kept running');
  });
});

describe('PostgreSQL stays down past the settlement retries: pending, then recovered once', { skip: PG_SKIP }, () => {
  const h = useHarness({
    postgres: true,
    pgServer: serverUrl,
    clock: '2025-03-10T12:00:00Z',
    config: { upstream: { timeout_ms: 1000 }, holds: { timeout_ms: 2000, recovery: 'charge_estimate' } },
  });
  let key;
  let pending;
  before(async () => {
    ({ u1: key } = await h.usersWithKeys(['u1']));
    await h.admin.grant('user:u1', 1_000_000, { effective_at: '2025-03-01T00:00:00Z' });
  });

  it('forwarded requests whose settlement cannot be written are answered pending', async () => {
    const calls0 = await h.fake.totalCalls();
    const inflight = Array.from({ length: 3 }, () => h.search(key, '0.003', { controls: { delay_ms: 300 } }));
    await waitFor('the 3 requests at the upstream', async () => (await h.fake.totalCalls()) === calls0 + 3);
    await pgServer('stop', serverDir);
    pending = await Promise.all(inflight);
    for (const res of pending) {
      assertStatus(res, 200);
      assert.equal(res.header('x-tollgate-settlement'), 'pending');
      assert.equal(res.header('x-tollgate-cost-microdollars'), undefined, 'no receipt figures');
    }
    await h.expectUpstreamCalls(0, () => expect503Fast(h, key, 2));
  });

  it('after restart, the hold policy resolves each of them exactly once', async () => {
    await pgServer('start', serverDir);
    await h.setClock('2025-03-10T12:00:10Z');  // past [holds] timeout_ms
    const ids = pending.map((r) => r.requestId);
    await waitFor('recovered audit rows', async () => (await rowsOf(h, ids)).every((r) => r.length === 1), { timeoutMs: 30_000 });
    for (const r of await rowsOf(h, ids)) {
      assert.equal(r.length, 1);
      // charge_estimate: the 7,000 estimate, free (the allowance is untouched), upstream status 0.
      assert.deepEqual(rowMoney(r[0]), { cost: 7000, free: 7000, charged: 0, source: 'recovered', status: 0 });
    }
    assert.equal(await h.pg('SELECT count(*) FROM holds'), '0');
    await h.expectUsage('u1', '2025-03', {
      free_used: 21_000,
      contexts: { personal: { request_count: 3, total_cost: 21_000, total_free: 21_000, total_charged: 0 } },
    });
    await h.expectAccount('user:u1', { balance: 1_000_000, held: 0 });
    await h.expectNoDrift();
  });
});
