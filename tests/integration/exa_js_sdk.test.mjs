// The official exa-js SDK works unchanged against tollgate with
// baseURL = <origin>/api/exa (SPEC section 2), and every call it makes is metered:
// one usage-log row per call, with the path and the cost the upstream reported.
//
// exa-js is installed under tests/sdk (cd tests/sdk && npm install).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { useHarness, assertReceipt } from './lib/harness.mjs';

const SDK_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../sdk');
const SDK_INSTALLED = fs.existsSync(path.join(SDK_DIR, 'node_modules', 'exa-js', 'package.json'));
const SKIP = SDK_INSTALLED ? false : `exa-js is not installed: run "cd ${SDK_DIR} && npm install"`;

async function loadExa() {
  const entry = createRequire(path.join(SDK_DIR, 'package.json')).resolve('exa-js');
  const mod = await import(pathToFileURL(entry).href);
  const Exa = mod.default?.default ?? mod.default ?? mod.Exa;
  assert.equal(typeof Exa, 'function', 'exa-js exports the Exa class');
  return Exa;
}

// costDollars.total as the SDK parsed it, to µ$; only to compare with the audit row.
function microdollars(costDollars) {
  const total = typeof costDollars === 'string' ? JSON.parse(costDollars).total : costDollars?.total;
  assert.equal(typeof total, 'number', `costDollars.total in ${JSON.stringify(costDollars)}`);
  return Math.round(total * 1_000_000);
}

describe('exa-js SDK through the proxy', { skip: SKIP }, () => {
  const h = useHarness({ config: {}, clock: '2025-11-10T12:00:00Z' });
  let exa;
  let key;
  const calls = []; // [path, µ$ reported by the upstream]
  // The usage log is ordered by (arrival, request id): one second per call keeps call order.
  let second = 0;
  const tick = () => h.setClock(`2025-11-10T12:00:${String(second++).padStart(2, '0')}Z`);

  before(async () => {
    ({ u1: key } = await h.usersWithKeys(['u1']));
    const Exa = await loadExa();
    exa = new Exa(key, `${h.tollgate.proxyUrl}/api/exa`);
  });

  it('search', async () => {
    await tick();
    const res = await exa.search('tollgate metering', { numResults: 3 });
    assert.ok(Array.isArray(res.results), `results: ${JSON.stringify(res)}`);
    for (const r of res.results) assert.equal(typeof r.url, 'string');
    calls.push(['search', microdollars(res.costDollars)]);
  });

  it('searchAndContents', async () => {
    await tick();
    const res = await exa.searchAndContents('tollgate metering', { text: true, numResults: 2 });
    assert.ok(Array.isArray(res.results));
    for (const r of res.results) assert.equal(typeof r.url, 'string');
    calls.push(['search', microdollars(res.costDollars)]);
  });

  it('getContents', async () => {
    await tick();
    const res = await exa.getContents(['https://example.com/a', 'https://example.com/b'], { text: true });
    assert.ok(Array.isArray(res.results));
    calls.push(['contents', microdollars(res.costDollars)]);
  });

  it('findSimilar', async () => {
    await tick();
    const res = await exa.findSimilar('https://example.com/a', { numResults: 2 });
    assert.ok(Array.isArray(res.results));
    calls.push(['findSimilar', microdollars(res.costDollars)]);
  });

  it('answer (exa-js sends "stream": false)', async () => {
    await tick();
    const res = await exa.answer('what is a microdollar?');
    assert.equal(typeof res.answer, 'string', `answer: ${JSON.stringify(res)}`);
    calls.push(['answer', microdollars(res.costDollars)]);
  });

  it('the usage log holds exactly these calls, with their paths and upstream costs', async () => {
    assert.equal(calls.length, 5, 'every SDK call succeeded');
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-11' });
    assert.deepEqual(rows.map((r) => [r.path, r.cost_microdollars]), calls);
    for (const r of rows) {
      assert.equal(r.cost_source, 'upstream');
      assert.equal(r.upstream_status, 200);
      assert.equal(r.context, 'personal');
      assert.equal(r.free_microdollars, r.cost_microdollars);
    }
    const total = calls.reduce((s, [, c]) => s + c, 0);
    await h.expectUsage('u1', '2025-11', {
      free_used: total,
      contexts: { personal: { request_count: 5, total_cost: total, total_free: total, total_charged: 0 } },
    });
    assert.equal(await h.fake.totalCalls(), 5);
  });

  it('the upstream saw the operator key, never the SDK user\'s key', async () => {
    for (const req of await h.fake.requests()) {
      const headers = Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k.toLowerCase(), v]));
      assert.equal(headers['x-api-key'], h.tollgate.upstreamKey);
      assert.ok(!JSON.stringify(req).includes(key), 'caller key forwarded upstream');
    }
  });

  it('a receipt comes with every SDK call (checked on a raw request with the SDK\'s headers)', async () => {
    const res = await h.proxy('search', { key, keyHeader: 'x-api-key', body: '{"query":"q","numResults":1}' });
    assert.equal(res.status, 200);
    assertReceipt(res, {});
  });
});
