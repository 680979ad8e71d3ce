// Case 05 — the charge is lost when the client goes away, or hidden in a stream
// (shared/cases/case-05-client-abort-and-streaming.md).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, openRequest, costBody, costAnswer, searchBody, assertReceipt, assertStatus, rowMoney,
  waitFor, sleep,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };
const UPSTREAM_DELAY_MS = 3000;
const ABANDON_AFTER_MS = 1000;

describe('case 05: client abort and streaming', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-04-01T00:00:00Z' });
  let key;
  before(async () => {
    ({ u1: key } = await h.usersWithKeys(['u1']));
    await h.admin.grant('user:u1', 100_000, { effective_at: '2025-04-01T00:00:00Z' });
    await h.setClock('2025-04-01T00:00:00Z');
    const res = await h.search(key, '10.000000');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 10_000_000, free: 10_000_000, charged: 0, remaining: 0, balance: 100_000 });
  });

  // n requests sent together, each closed by the client 1 s after sending; the
  // upstream answers 3 s after it receives them. Resolves once they are sent.
  async function abandoned(n, body) {
    const reqs = Array.from({ length: n }, () => {
      const { url, ...options } = h.proxyRequest('search', { key, body });
      return openRequest(url, options);
    });
    await Promise.all(reqs.map((r) => r.connected));
    for (const r of reqs) r.release();
    setTimeout(() => { for (const r of reqs) r.abort(); }, ABANDON_AFTER_MS);
    return { outcomes: Promise.all(reqs.map((r) => r.response)) };
  }

  async function rowCount() { return (await h.admin.usageLog({ user: 'u1', month: '2025-04' })).length; }

  // Values "after" a step: once the upstream has answered and tollgate has settled.
  async function waitSettled(expectedRows) {
    await waitFor(`${expectedRows} audit rows and no holds`, async () => {
      const acc = await h.admin.account('user:u1');
      return acc.held_microdollars === 0 && (await rowCount()) === expectedRows;
    }, { timeoutMs: 30_000 });
  }

  it('step 1: 2025-04-20T10:00:00Z, one abandoned request at cost 0.012 is still charged', async () => {
    await h.setClock('2025-04-20T10:00:00Z');
    const { outcomes } = await abandoned(1, costBody('0.012', { delay_ms: UPSTREAM_DELAY_MS }));
    await sleep(2000);
    await h.expectAccount('user:u1', { balance: 100_000, held: 7000 });
    const [outcome] = await outcomes;
    assert.equal(outcome.aborted, true, 'the client closed before any answer');

    await waitSettled(2);
    await h.expectAccount('user:u1', { balance: 88_000, held: 0 });
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-04' });
    assert.deepEqual(rowMoney(rows[1]), { cost: 12_000, free: 0, charged: 12_000, source: 'upstream', status: 200 });
    assert.equal(await h.fake.totalCalls(), 2);
  });

  it('step 2: 2025-04-20T10:01:00Z, five abandoned requests at once are all charged', async () => {
    await h.setClock('2025-04-20T10:01:00Z');
    const { outcomes } = await abandoned(5, costBody('0.012', { delay_ms: UPSTREAM_DELAY_MS }));
    await sleep(2000);
    await h.expectAccount('user:u1', { held: 35_000 });
    await outcomes;

    await waitSettled(7);
    await h.expectAccount('user:u1', { balance: 28_000, held: 0 });
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-04' });
    for (const row of rows.slice(1)) {
      assert.deepEqual(rowMoney(row), { cost: 12_000, free: 0, charged: 12_000, source: 'upstream', status: 200 });
    }
  });

  it('step 3: 2025-04-20T10:02:00Z, an abandoned request answered 500 without cost is not charged', async () => {
    await h.setClock('2025-04-20T10:02:00Z');
    const { outcomes } = await abandoned(1, searchBody({
      delay_ms: UPSTREAM_DELAY_MS, status: 500, body: '{"error":"internal"}',
    }));
    await outcomes;
    await waitSettled(8);
    await h.expectAccount('user:u1', { balance: 28_000, held: 0 });
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-04' });
    assert.deepEqual(rowMoney(rows[7]), { cost: 0, free: 0, charged: 0, source: 'none', status: 500 });
  });

  it('step 4: 2025-04-20T10:03:00Z, "stream": true -> 400 (streaming is not metered), not forwarded', async () => {
    await h.setClock('2025-04-20T10:03:00Z');
    const res = await h.expectUpstreamCalls(0, () => h.proxy('search', {
      key, body: searchBody({ body: costAnswer('0.012') }, { stream: true }),
    }));
    assertStatus(res, 400);
    assert.match(res.json?.error ?? '', /stream/i);
    assert.match(res.json.error, /meter/i);
    await h.expectAccount('user:u1', { balance: 28_000, held: 0 });
    assert.equal(await rowCount(), 8, 'no audit row for a refused request');
  });

  it('step 5: restart with stream_policy = "strip"; 2025-04-20T10:04:00Z, stream is removed and charged', async () => {
    await h.tollgate.restart({ config: { ...CONFIG, proxy: { stream_policy: 'strip' } } });
    await h.setClock('2025-04-20T10:04:00Z');
    const sent = searchBody({ reject_stream: true, body: costAnswer('0.012') }, { stream: true });
    const res = await h.expectUpstreamCalls(1, () => h.proxy('search', { key, body: sent }));
    assertStatus(res, 200);
    assert.equal(res.text, costAnswer('0.012'), 'the upstream JSON body, unchanged');
    assertReceipt(res, { cost: 12_000, free: 0, charged: 12_000, remaining: 0, balance: 16_000 });

    const received = (await h.fake.requests()).at(-1);
    const receivedBody = JSON.parse(received.body);
    assert.equal('stream' in receivedBody, false, `forwarded body still has stream: ${received.body}`);
    assert.deepEqual(receivedBody, { query: 'q', fake_exa: { reject_stream: true, body: costAnswer('0.012') } });

    await h.expectAccount('user:u1', { balance: 16_000, held: 0 });
    const row = await h.auditRow(res.requestId, { user: 'u1' });
    assert.deepEqual(rowMoney(row), { cost: 12_000, free: 0, charged: 12_000, source: 'upstream', status: 200 });
  });

  it('step 6: April usage and upstream call total', async () => {
    await h.expectUsage('u1', '2025-04', {
      free_allowance: 10_000_000,
      free_used: 10_000_000,
      contexts: { personal: { request_count: 9, total_cost: 10_084_000, total_free: 10_000_000, total_charged: 84_000 } },
    });
    assert.equal(await h.fake.totalCalls(), 9);
  });

  it('step 7: recompute reports no drift', async () => { await h.expectNoDrift(); });
});
