// Input validation of the proxy and the admin API (SPEC sections 2 and 7, guarantee 8):
// each refusal has the right status and a JSON error, in the documented order of
// precedence, and changes nothing: no upstream call, no audit row, no money moved.

import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import fsp from 'node:fs/promises';
import {
  useHarness, Tollgate, makeTempDir, costBody, searchBody, assertReceipt, assertStatus, assert402, request,
} from './lib/harness.mjs';

const BODY_LIMIT = 1024;
const CONFIG = {
  allowance: { default_microdollars: 10_000_000, tiers: { zero_microdollars: 0 } },
  proxy: { request_body_bytes_max: BODY_LIMIT },
};
const CLOCK = '2025-10-15T12:00:00Z';
const MONTH = '2025-10';
const PATHS = ['search', 'contents', 'findSimilar', 'answer', 'context'];

// Sends raw bytes on one connection and returns the first response's status and body
// (the server may answer before it has read everything it was promised).
function rawExchange(port, bytes, { timeoutMs = 10_000 } = {}) {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    let data = '';
    const timer = setTimeout(() => { socket.destroy(); reject(new Error(`no answer within ${timeoutMs} ms; got: ${data}`)); }, timeoutMs);
    const finish = () => {
      clearTimeout(timer);
      const m = data.match(/^HTTP\/1\.[01] (\d{3})/);
      if (!m) { reject(new Error(`not an HTTP answer: ${JSON.stringify(data)}`)); return; }
      const head = data.indexOf('\r\n\r\n');
      socket.destroy();
      resolve({ status: Number(m[1]), raw: data, body: head >= 0 ? data.slice(head + 4) : '' });
    };
    socket.on('data', (chunk) => {
      data += chunk;
      const head = data.indexOf('\r\n\r\n');
      if (head < 0) return;
      const len = data.slice(0, head).match(/\r\ncontent-length:\s*(\d+)/i);
      if (len && data.length - head - 4 >= Number(len[1])) finish();
    });
    socket.on('end', () => (data ? finish() : reject(new Error('closed without an answer'))));
    socket.on('error', (err) => (data ? finish() : reject(err)));
    socket.write(bytes);
  });
}

describe('proxy: check order and errors of SPEC section 2', () => {
  const h = useHarness({ config: CONFIG, clock: CLOCK });
  let keys;
  let revokedKey;
  let admitted = 0; // requests admitted so far (each leaves one audit row)

  before(async () => {
    keys = await h.usersWithKeys({ val: undefined, blocked: undefined, poor: 'zero', ok: undefined });
    await h.admin.patchUser('blocked', { blocked: true });
    await h.admin.createOrg('o1');
    await h.admin.addMember('o1', 'ok');
    await h.admin.grant('org:o1', 1_000_000, { effective_at: '2025-10-01T00:00:00Z' });
    await h.admin.createUser('gone');
    const k = await h.admin.createKey('gone');
    await h.admin.revokeKey(k.id);
    revokedKey = k.key;
  });

  // A refusal: status, a JSON error message, no upstream call, no audit row anywhere.
  async function refused(status, send, messagePattern) {
    const res = await h.expectUpstreamCalls(0, send);
    assertStatus(res, status);
    assert.match(res.headers['content-type'] ?? '', /application\/json/, 'content-type of the error');
    assert.equal(typeof res.json?.error, 'string', `JSON error body: ${res.text}`);
    assert.ok(res.json.error.length > 0);
    if (messagePattern) assert.match(res.json.error, messagePattern);
    assert.equal(res.headers['x-tollgate-cost-microdollars'], undefined, 'no receipt on a refusal');
    let rows = 0;
    for (const user of ['val', 'blocked', 'poor', 'ok', 'gone']) rows += (await h.admin.usageLog({ user })).length;
    assert.equal(rows, admitted, 'audit rows');
    return res;
  }

  const post = (p, opts) => h.proxy(p, { key: keys.val, ...opts });

  it('404 outside /api/exa/ (also the admin API on the proxy listener)', async () => {
    for (const [method, p] of [['POST', '/'], ['GET', '/'], ['POST', '/api/v1/search'], ['POST', '/api/exaa/search'],
      ['POST', '/search'], ['POST', '/admin/v1/users'], ['GET', '/admin/v1/accounts/user:val']]) {
      await refused(404, () => request(`${h.tollgate.proxyUrl}${p}`, {
        method, headers: { authorization: `Bearer ${keys.val}` }, body: method === 'GET' ? undefined : '{"query":"q"}',
      }));
    }
  });

  it('405 for other methods, before the token is checked', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'PATCH']) {
      await refused(405, () => post('search', { method, body: method === 'GET' || method === 'DELETE' ? undefined : '{"query":"q"}' }));
    }
    await refused(405, () => h.proxy('search', { method: 'GET', body: undefined }));
    await refused(405, () => h.proxy('search', { key: 'not-a-key', method: 'GET', body: undefined }));
  });

  it('401 for a missing, unknown or revoked token', async () => {
    await refused(401, () => h.proxy('search', {}));
    await refused(401, () => h.proxy('search', { key: 'tg_not_a_real_key' }));
    await refused(401, () => h.proxy('search', { key: 'tg_not_a_real_key', keyHeader: 'x-api-key' }));
    await refused(401, () => h.proxy('search', { key: `${keys.val}x` }));
    await refused(401, () => h.proxy('search', { key: keys.val.slice(0, -1) }));
    await refused(401, () => h.proxy('search', { headers: { authorization: `Basic ${keys.val}` } }));
    await refused(401, () => h.proxy('search', { headers: { authorization: 'Bearer' } }));
    await refused(401, () => h.proxy('search', { key: revokedKey }));
  });

  it('401 comes before blocked, org, path, JSON, stream and funds checks', async () => {
    await refused(401, () => h.proxy('nope', { key: 'bad', org: 'o1', body: '[' }));
    await refused(401, () => h.proxy('search', { key: 'bad', body: '[1]' }));
    await refused(401, () => h.proxy('search', { key: 'bad', body: '{"query":"q","stream":true}' }));
  });

  it('403 for a blocked user, before org, path and body checks', async () => {
    await refused(403, () => h.proxy('search', { key: keys.blocked }));
    await refused(403, () => h.proxy('search', { key: keys.blocked, keyHeader: 'x-api-key' }));
    await refused(403, () => h.proxy('nope', { key: keys.blocked, org: 'not-mine', body: '[' }));
  });

  it('403 for an org the user is not a member of (or that does not exist), before path and body checks', async () => {
    await refused(403, () => post('search', { org: 'o1' }));
    await refused(403, () => post('search', { org: 'o1', orgHeader: 'X-Organization-Id' }));
    await refused(403, () => post('search', { org: 'no-such-org' }));
    await refused(403, () => post('nope', { org: 'o1', body: '[' }));
  });

  it('400 for an unknown path, naming the allowed paths', async () => {
    for (const p of ['nope', 'Search', 'search/extra', 'websets', '']) {
      const res = await refused(400, () => post(p));
      for (const allowed of PATHS) assert.ok(res.json.error.includes(allowed), `"${res.json.error}" names ${allowed}`);
    }
  });

  it('413 for a body over request_body_bytes_max, before the JSON and stream checks', async () => {
    const big = JSON.stringify({ query: 'q'.repeat(BODY_LIMIT) });
    await refused(413, () => post('search', { body: big }));
    await refused(413, () => post('search', { body: 'x'.repeat(BODY_LIMIT + 1) }));
    await refused(413, () => post('search', { body: `{"query":"q","stream":true,"pad":"${'x'.repeat(BODY_LIMIT)}"}` }));
  });

  it('a body of exactly request_body_bytes_max passes the size check', async () => {
    const body = JSON.stringify({ query: 'q', pad: '' });
    const exact = JSON.stringify({ query: 'q', pad: 'p'.repeat(BODY_LIMIT - body.length) });
    assert.equal(Buffer.byteLength(exact), BODY_LIMIT);
    await refused(400, () => post('search', { body: 'x'.repeat(BODY_LIMIT) }));
    await refused(402, () => h.proxy('search', { key: keys.poor, body: exact }));
  });

  it('the size check comes after the token, blocked, org and path checks', async () => {
    const big = 'x'.repeat(BODY_LIMIT * 2);
    await refused(401, () => h.proxy('search', { key: 'bad', body: big }));
    await refused(403, () => h.proxy('search', { key: keys.blocked, body: big }));
    await refused(403, () => post('search', { org: 'o1', body: big }));
    await refused(400, () => post('nope', { body: big }));
  });

  it('413 is enforced while reading: a huge promised body is refused without waiting for it', async () => {
    const headers = [
      'POST /api/exa/search HTTP/1.1', `Host: 127.0.0.1:${h.tollgate.port}`, `Authorization: Bearer ${keys.val}`,
      'Content-Type: application/json',
    ];
    const before = await h.fake.totalCalls();
    const declared = await rawExchange(h.tollgate.port,
      `${[...headers, 'Content-Length: 100000000'].join('\r\n')}\r\n\r\n{"query":"${'q'.repeat(2 * BODY_LIMIT)}`);
    assert.equal(declared.status, 413, declared.raw);
    const chunk = `{"query":"${'q'.repeat(2 * BODY_LIMIT)}`;
    const chunked = await rawExchange(h.tollgate.port,
      `${[...headers, 'Transfer-Encoding: chunked'].join('\r\n')}\r\n\r\n${chunk.length.toString(16)}\r\n${chunk}\r\n`);
    assert.equal(chunked.status, 413, chunked.raw);
    assert.equal(typeof JSON.parse(chunked.body).error, 'string');
    assert.equal(await h.fake.totalCalls(), before);
    assert.equal((await h.admin.usageLog({ user: 'val' })).length, 0);
  });

  it('400 for a body that is not a JSON object', async () => {
    for (const body of ['', '[]', '[{"query":"q"}]', '"q"', '42', 'null', 'true', '{"query":', '{"query":"q"} x',
      '{query:"q"}', "{'query':'q'}", '{"query":"q",}', '\u00ff\u00fe']) {
      await refused(400, () => post('search', { body }));
    }
  });

  it('400 for "stream": true (streaming is not metered), before the funds check', async () => {
    const res = await refused(400, () => post('search', { body: '{"query":"q","stream":true}' }));
    assert.match(res.json.error, /stream/i);
    assert.match(res.json.error, /meter/i);
    await refused(400, () => h.proxy('answer', { key: keys.poor, body: '{"query":"q","stream":true}' }));
  });

  it('402 when no allowance and no credit are available', async () => {
    const res = await refused(402, () => h.proxy('search', { key: keys.poor }));
    assert402(res, { allowance: 0, used: 0, balance: 0, context: 'personal' });
  });

  it('"stream": false is an ordinary body; x-api-key works as the token', async () => {
    const body = searchBody({ body: '{"answer":"a","costDollars":{"total":0.005}}' }, { stream: false });
    const res = await h.expectUpstreamCalls(1, () => h.proxy('answer', { key: keys.ok, keyHeader: 'x-api-key', body }));
    assertStatus(res, 200);
    admitted += 1;
    assertReceipt(res, { cost: 5000, free: 5000, charged: 0, remaining: 9_995_000, balance: 0 });
    const received = (await h.fake.requests()).at(-1);
    assert.equal(received.body, body, 'body forwarded unchanged');
    assert.match(received.path, /\/answer$/);
  });

  it('only content-type, the operator key and a tollgate user-agent go upstream; the key never comes back', async () => {
    const body = costBody('0.007');
    const res = await h.expectUpstreamCalls(1, () => h.proxy('search', {
      key: keys.ok,
      org: 'o1',
      body,
      headers: { cookie: 'session=secret', 'x-custom-secret': 'abc', 'x-forwarded-for': '10.1.2.3', 'user-agent': 'client-agent/1.0' },
    }));
    assertStatus(res, 200);
    admitted += 1;
    assertReceipt(res, { cost: 7000, free: 7000, charged: 0, remaining: 9_988_000, balance: 1_000_000 });
    const received = (await h.fake.requests()).at(-1);
    const sent = Object.fromEntries(Object.entries(received.headers).map(([k, v]) => [k.toLowerCase(), v]));
    assert.match(received.path, /\/search$/);
    assert.equal(received.body, body);
    assert.equal(sent['x-api-key'], h.tollgate.upstreamKey);
    assert.match(sent['content-type'], /application\/json/);
    assert.match(sent['user-agent'], /tollgate/i);
    for (const leaked of ['authorization', 'cookie', 'x-custom-secret', 'x-forwarded-for', 'x-kilocode-organizationid']) {
      assert.equal(sent[leaked], undefined, `${leaked} must not be sent upstream`);
    }
    const allowed = new Set(['x-api-key', 'content-type', 'user-agent', 'host', 'content-length', 'connection', 'accept']);
    assert.deepEqual(Object.keys(sent).filter((k) => !allowed.has(k)), [], 'headers sent upstream');
    assert.ok(!JSON.stringify(res.headers).includes(h.tollgate.upstreamKey), 'operator key in response headers');
    assert.ok(!res.text.includes(h.tollgate.upstreamKey), 'operator key in response body');
    for (const p of h.processes()) assert.ok(!p.tail(5000).includes(h.tollgate.upstreamKey), `operator key in ${p.name} output`);
  });

  it('a blocked user can be unblocked', async () => {
    await h.admin.patchUser('blocked', { blocked: false });
    const res = await h.search(keys.blocked, '0.001');
    assertStatus(res, 200);
    admitted += 1;
  });

  it('refusals left no money anywhere', async () => {
    await h.expectUsage('val', MONTH, { contexts: {} });
    await h.expectAccount('user:val', { balance: 0, held: 0 });
    await h.expectUsage('poor', MONTH, { contexts: {} });
    await h.expectNoDrift();
  });
});

describe('admin API: authentication, validation, idempotency, timestamps', () => {
  const h = useHarness({ config: CONFIG, clock: CLOCK });

  async function adminError(status, method, p, body, opts) {
    const res = await h.admin.call(method, p, body, opts);
    assert.equal(res.status, status, `${method} ${p} ${body === undefined ? '' : typeof body === 'string' ? body : JSON.stringify(body)} -> ${res.status} ${res.text}`);
    assert.equal(typeof res.json?.error, 'string', `JSON error body: ${res.text}`);
    return res;
  }

  before(async () => {
    await h.admin.createUser('alice');
    await h.admin.createOrg('acme');
  });

  it('401 without the admin token or with a wrong one; health checks need none', async () => {
    for (const [method, p, body] of [
      ['GET', '/admin/v1/accounts/user:alice'], ['POST', '/admin/v1/users', { id: 'mallory' }],
      ['POST', '/admin/v1/grants', { owner: 'user:alice', amount_microdollars: 1, idempotency_key: 'x' }],
      ['GET', '/admin/v1/usage-log'], ['POST', '/admin/v1/recompute', {}],
    ]) {
      await adminError(401, method, p, body, { token: null });
      await adminError(401, method, p, body, { token: 'wrong-token' });
      await adminError(401, method, p, body, { token: `${h.tollgate.adminToken}x` });
    }
    await adminError(401, 'GET', '/admin/v1/accounts/user:alice', undefined, { token: null, headers: { authorization: `Basic ${h.tollgate.adminToken}` } });
    // The proxy's API keys are not admin tokens.
    await h.admin.createUser('keyholder');
    const { key } = await h.admin.createKey('keyholder');
    await adminError(401, 'GET', '/admin/v1/accounts/user:alice', undefined, { token: key });
    for (const url of [`${h.tollgate.adminUrl}/healthz`, `${h.tollgate.proxyUrl}/healthz`]) {
      assert.equal((await request(url, { method: 'GET' })).status, 200, url);
    }
    await adminError(404, 'GET', '/admin/v1/users/mallory/usage?month=2025-10');
  });

  it('ids: 1-128 characters of A-Z a-z 0-9 . _ : @ -, anything else 400', async () => {
    const longest = `a.b_c:d@e-F9${'x'.repeat(116)}`;
    assert.equal(longest.length, 128);
    assert.equal((await h.admin.createUser(longest)).id, longest);
    for (const id of ['', 'x'.repeat(129), 'bad id', 'bad/id', 'bäd', 'a+b', 'a%2Fb', 'a\nb', 'a"b']) {
      await adminError(400, 'POST', '/admin/v1/users', { id });
      await adminError(400, 'POST', '/admin/v1/organizations', { id });
    }
    for (const id of [123, true, ['a'], { id: 'a' }]) await adminError(400, 'POST', '/admin/v1/users', { id });
    await adminError(400, 'POST', '/admin/v1/users', '{"id":');
    await adminError(400, 'POST', '/admin/v1/users', '[]');
    await adminError(400, 'PATCH', '/admin/v1/users/alice', { tier: 42 });
    await adminError(400, 'PATCH', '/admin/v1/users/alice', { blocked: 'yes' });
    await adminError(404, 'PATCH', '/admin/v1/users/nobody', { tier: 'small' });
    await adminError(404, 'PUT', '/admin/v1/organizations/acme/members/nobody');
    await adminError(404, 'PUT', '/admin/v1/organizations/nowhere/members/alice');
    await adminError(404, 'POST', '/admin/v1/users/nobody/api-keys');
    await adminError(404, 'GET', '/admin/v1/no-such-route');
  });

  it('a repeated id is refused and changes nothing', async () => {
    const res = await h.admin.call('POST', '/admin/v1/users', { id: 'alice' });
    assert.ok(res.status === 409 || res.status === 400, `duplicate user -> ${res.status} ${res.text}`);
    assert.equal(typeof res.json?.error, 'string');
  });

  it('grants: bad owners, amounts and timestamps are 400, unknown owners 404; nothing changes', async () => {
    const ok = { owner: 'user:alice', amount_microdollars: 1000, idempotency_key: 'g-bad' };
    const bad = [
      { ...ok, amount_microdollars: -1 },
      { ...ok, amount_microdollars: 1.5 },
      { ...ok, amount_microdollars: '1000' },
      { ...ok, amount_microdollars: null },
      { owner: 'user:alice', idempotency_key: 'g-bad' },
      { owner: 'user:alice', amount_microdollars: 1000 },
      { ...ok, owner: 'alice' },
      { ...ok, owner: 'team:alice' },
      { ...ok, owner: 'user:bad id' },
      { ...ok, owner: 'user:' },
      { ...ok, effective_at: 'yesterday' },
      { ...ok, effective_at: '2025-13-01T00:00:00Z' },
      { ...ok, expires_at: '2025-10-15' },
      { ...ok, effective_at: 1760486400 },
      { ...ok, idempotency_key: '' },
    ];
    for (const body of bad) await adminError(400, 'POST', '/admin/v1/grants', body);
    // Overflowing int64 µ$, written as raw JSON number text.
    for (const amount of ['9223372036854775808', '1e30', '-9223372036854775809']) {
      await adminError(400, 'POST', '/admin/v1/grants', `{"owner":"user:alice","amount_microdollars":${amount},"idempotency_key":"g-of"}`);
    }
    await adminError(404, 'POST', '/admin/v1/grants', { ...ok, owner: 'user:ghost' });
    await adminError(404, 'POST', '/admin/v1/grants', { ...ok, owner: 'org:ghost' });
    await adminError(404, 'GET', '/admin/v1/accounts/user:ghost');
    await adminError(400, 'GET', '/admin/v1/accounts/ghost');
    await adminError(400, 'GET', '/admin/v1/users/alice/usage?month=2025-13');
    await adminError(400, 'GET', '/admin/v1/users/alice/usage?month=October');

    const acc = await h.admin.account('user:alice');
    assert.deepEqual({ balance: acc.balance_microdollars, held: acc.held_microdollars, grants: acc.grants }, { balance: 0, held: 0, grants: [] });
  });

  it('idempotency: the same body replays 200 with the original, a different body is 409', async () => {
    const body = { owner: 'org:acme', amount_microdollars: 250_000, effective_at: '2025-10-01T00:00:00Z', idempotency_key: 'buy-1' };
    const created = await h.admin.call('POST', '/admin/v1/grants', body);
    assert.equal(created.status, 201, created.text);
    const g = created.json;
    assert.deepEqual(g, {
      id: g.id,
      owner: 'org:acme',
      amount_microdollars: 250_000,
      remaining_microdollars: 250_000,
      expired_microdollars: 0,
      effective_at: '2025-10-01T00:00:00.000Z',
      expires_at: null,
      idempotency_key: 'buy-1',
    });
    const replay = await h.admin.call('POST', '/admin/v1/grants', body);
    assert.equal(replay.status, 200, replay.text);
    assert.deepEqual(replay.json, g);
    await adminError(409, 'POST', '/admin/v1/grants', { ...body, amount_microdollars: 250_001 });
    await adminError(409, 'POST', '/admin/v1/grants', { ...body, effective_at: '2025-10-02T00:00:00Z' });
    await adminError(409, 'POST', '/admin/v1/grants', { ...body, owner: 'user:alice' });
    const acc = await h.expectAccount('org:acme', { balance: 250_000, held: 0 });
    assert.equal(acc.grants.length, 1);

    // Idempotency keys are unique per endpoint: the same key on /usage is a new operation.
    const usage = await h.admin.call('POST', '/admin/v1/usage', { owner: 'org:acme', amount_microdollars: 1000, idempotency_key: 'buy-1' });
    assert.equal(usage.status, 201, usage.text);
    await h.expectAccount('org:acme', { balance: 249_000 });
  });

  it('timestamps: any RFC 3339 offset in, UTC with milliseconds out', async () => {
    const g = await h.admin.grant('user:alice', 5000, {
      effective_at: '2025-10-15T02:00:00+02:00',
      expires_at: '2026-01-01T00:00:00.123456Z',
      idempotency_key: 'ts-1',
    });
    assert.equal(g.effective_at, '2025-10-15T00:00:00.000Z');
    assert.equal(g.expires_at, '2026-01-01T00:00:00.123Z');
    const g2 = await h.admin.grant('user:alice', 5000, { effective_at: '2025-10-14T19:30:00-04:30', idempotency_key: 'ts-2' });
    assert.equal(g2.effective_at, '2025-10-15T00:00:00.000Z');
    assert.equal(g2.expires_at, null);
    const acc = await h.admin.account('user:alice');
    const listed = acc.grants.find((x) => x.id === g.id);
    assert.equal(listed.effective_at, '2025-10-15T00:00:00.000Z');
    assert.equal(listed.expires_at, '2026-01-01T00:00:00.123Z');
    for (const x of acc.grants) assert.match(x.effective_at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  it('recompute finds no drift after all of this', async () => { await h.expectNoDrift(); });
});

describe('admin API without TOLLGATE_ADMIN_TOKEN refuses every call', () => {
  const h = useHarness({ config: CONFIG, clock: CLOCK, adminToken: null });

  it('401 for any token, and the server said so at start-up', async () => {
    for (const token of [null, '', 'anything', 'null', 'undefined']) {
      const res = await h.admin.call('GET', '/admin/v1/accounts/user:alice', undefined, { token });
      assert.equal(res.status, 401, `token ${JSON.stringify(token)}: ${res.status} ${res.text}`);
    }
    const res = await h.admin.call('POST', '/admin/v1/users', { id: 'u1' }, { token: '' });
    assert.equal(res.status, 401);
    assert.match(h.tollgate.proc.tail(500), /TOLLGATE_ADMIN_TOKEN/);
  });
});

describe('start-up refusals', () => {
  let dir;
  let runs = 0;
  before(async () => { dir = await makeTempDir(); });
  after(async () => { await fsp.rm(dir, { recursive: true, force: true }); });

  async function expectRefusedStart(options, pattern) {
    const tg = new Tollgate({ dir: path.join(dir, `run${runs++}`), clock: null, ...options });
    await fsp.mkdir(tg.dir, { recursive: true });
    try {
      await assert.rejects(() => tg.start(), /exited/, 'tollgate serve should refuse to start');
      assert.notEqual(tg.proc.exitCode, 0, 'exit code');
      assert.match(tg.proc.tail(500), pattern);
    } finally {
      await tg.kill();
    }
  }

  it('[holds] timeout_ms not above [upstream] timeout_ms is refused', async () => {
    await expectRefusedStart({
      upstreamUrl: 'http://127.0.0.1:9',
      config: { holds: { timeout_ms: 5000 }, upstream: { timeout_ms: 5000 } },
    }, /timeout/i);
  });

  it('no EXA_API_KEY with the upstream at Exa\'s own URL is refused', async () => {
    await expectRefusedStart({ upstreamUrl: 'https://api.exa.ai', upstreamKey: null, config: {} }, /EXA_API_KEY/);
  });

  it('an unknown admission policy is refused', async () => {
    await expectRefusedStart({ upstreamUrl: 'http://127.0.0.1:9', config: { admission: { policy: 'yolo' } } }, /policy|admission/i);
  });
});
