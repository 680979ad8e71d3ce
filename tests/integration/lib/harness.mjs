// Process-level test harness: starts `tollgate fake-exa` and `tollgate serve` on free
// loopback ports with a private temp directory and SQLite file, moves the tollgate
// process's wall clock with libfaketime, and offers small clients for the proxy,
// the admin API, the fake upstream's controls and `tollgate report`.
//
// Every process started here is killed when its harness closes, and again (SIGKILL)
// when the test process exits, so a failing or interrupted test leaves nothing behind.
// On a failing test the tail of every process's output is printed and the temp
// directory is kept.

import { spawn, execFile } from 'node:child_process';
import http from 'node:http';
import net from 'node:net';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import crypto from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';

export const TOLLGATE_BIN = process.env.TOLLGATE_BIN || '/work/main/build/tollgate';
// The MT build: tollgate reads the clock from its io and store threads at once.
export const FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1';

const START_TIMEOUT_MS = 30_000;
const STOP_TIMEOUT_MS = 15_000;
const REQUEST_TIMEOUT_MS = 60_000;
const LOG_TAIL_LINES = 80;

// Search estimate the cases assume; it is also the product's default.
export const SEARCH_ESTIMATE = 7000;
export const DEFAULT_CONFIG = { prices: { search_microdollars: SEARCH_ESTIMATE } };

// ---------------------------------------------------------------------------
// Child processes

const liveChildren = new Set();

function killAllChildren() {
  for (const child of liveChildren) {
    try { child.kill('SIGKILL'); } catch { /* already gone */ }
  }
  liveChildren.clear();
}
process.on('exit', killAllChildren);
for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) {
  process.once(signal, () => { killAllChildren(); process.exit(128 + os.constants.signals[signal]); });
}

// One started process: its output goes to a log file and a bounded in-memory tail.
export class Proc {
  constructor(name, bin, args, { env, logPath }) {
    this.name = name;
    this.args = args;
    this.logPath = logPath;
    this.lines = [];
    this.lineCount = 0; // lines ever written
    this.linesShown = 0; // lines already printed by a failure report
    this.exitCode = undefined;
    this.exitSignal = undefined;
    const log = fs.createWriteStream(logPath, { flags: 'a' });
    log.on('error', () => {}); // a log write must never fail a test
    log.write(`# ${new Date().toISOString()} ${bin} ${args.join(' ')}\n`);
    this.child = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
    liveChildren.add(this.child);
    const onData = (stream) => (chunk) => {
      log.write(chunk);
      for (const line of chunk.toString().split('\n')) {
        if (line === '') continue;
        this.lineCount++;
        this.lines.push(`[${stream}] ${line}`);
        if (this.lines.length > 2000) this.lines.splice(0, 1000);
      }
    };
    this.child.stdout.on('data', onData('out'));
    this.child.stderr.on('data', onData('err'));
    this.exited = new Promise((resolve) => {
      this.child.on('error', (err) => {
        this.lines.push(`[spawn] ${err.message}`);
        liveChildren.delete(this.child);
        this.exitCode = -1;
        resolve({ code: -1, signal: null });
      });
      this.child.on('exit', (code, signal) => {
        liveChildren.delete(this.child);
        this.exitCode = code;
        this.exitSignal = signal;
        resolve({ code, signal });
      });
      this.child.on('close', () => log.end(`# exited code=${this.exitCode} signal=${this.exitSignal}\n`));
    });
  }

  get running() { return this.exitCode === undefined; }

  tail(n = LOG_TAIL_LINES) { return this.lines.slice(-n).join('\n'); }

  // The output not yet shown by a previous failure report (its last LOG_TAIL_LINES lines).
  unshownTail() {
    const fresh = Math.min(this.lineCount - this.linesShown, LOG_TAIL_LINES, this.lines.length);
    this.linesShown = this.lineCount;
    return fresh > 0 ? this.lines.slice(-fresh).join('\n') : '(no new output)';
  }

  // SIGTERM (graceful) and wait; SIGKILL if it does not exit in time.
  async stop() {
    if (!this.running) return this.exited;
    this.child.kill('SIGTERM');
    // An unref'd timer: it must not keep the test process alive once the child has exited.
    const result = await Promise.race([this.exited, sleep(STOP_TIMEOUT_MS, null, { ref: false })]);
    if (result) return result;
    this.lines.push('[harness] did not exit after SIGTERM; sending SIGKILL');
    return this.kill();
  }

  async kill() {
    if (this.running) this.child.kill('SIGKILL');
    return this.exited;
  }
}

// ---------------------------------------------------------------------------
// Ports, directories, clocks, config

export async function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
}

export async function makeTempDir(prefix = 'tollgate-it-') {
  return fsp.mkdtemp(path.join(os.tmpdir(), prefix));
}

// libfaketime reads an absolute "YYYY-MM-DD hh:mm:ss[.fff]" from the timestamp file as
// local time of the faked process (it parses with mktime under the process's TZ), so
// the intended UTC instant is written as wall time in that TZ. Fractions are supported.
export function faketimeText(isoUtc, tz = 'UTC') {
  const date = new Date(isoUtc);
  assert.ok(!Number.isNaN(date.getTime()), `bad clock value ${isoUtc}`);
  const parts = Object.fromEntries(new Intl.DateTimeFormat('en-US', {
    timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
    hour: '2-digit', minute: '2-digit', second: '2-digit',
  }).formatToParts(date).map((p) => [p.type, p.value]));
  const ms = date.getUTCMilliseconds();
  const fraction = ms ? `.${String(ms).padStart(3, '0')}` : '';
  return `${parts.year}-${parts.month}-${parts.day} ${parts.hour}:${parts.minute}:${parts.second}${fraction}`;
}

function isPlainObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

export function deepMerge(base, over) {
  const out = { ...base };
  for (const [k, v] of Object.entries(over ?? {})) {
    out[k] = isPlainObject(v) && isPlainObject(out[k]) ? deepMerge(out[k], v) : v;
  }
  return out;
}

function tomlValue(v) {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (Array.isArray(v)) return `[${v.map(tomlValue).join(', ')}]`;
  throw new Error(`cannot write ${typeof v} as TOML`);
}

// Writes {a: {b: 1, c: {d: 2}}} as "[a]\nb = 1\n\n[a.c]\nd = 2".
export function toToml(obj) {
  const blocks = [];
  const emit = (prefix, table) => {
    const lines = [];
    if (prefix) lines.push(`[${prefix}]`);
    for (const [k, v] of Object.entries(table)) {
      if (!isPlainObject(v)) lines.push(`${k} = ${tomlValue(v)}`);
    }
    if (lines.length) blocks.push(lines.join('\n'));
    for (const [k, v] of Object.entries(table)) {
      if (isPlainObject(v)) emit(prefix ? `${prefix}.${k}` : k, v);
    }
  };
  emit('', obj);
  return blocks.join('\n\n') + '\n';
}

// ---------------------------------------------------------------------------
// HTTP

export class Response {
  constructor(status, headers, text) {
    this.status = status;
    this.headers = headers;
    this.text = text;
    try { this.json = text ? JSON.parse(text) : undefined; } catch { this.json = undefined; }
  }

  header(name) { return this.headers[name.toLowerCase()]; }

  get requestId() { return this.headers['x-tollgate-request-id']; }
}

// One request on its own connection (no keep-alive pool). The headers are sent at
// once; the body only on release(), so a burst can hold many requests at a barrier.
export function openRequest(url, { method = 'POST', headers = {}, body, timeoutMs = REQUEST_TIMEOUT_MS } = {}) {
  const u = new URL(url);
  const payload = body === undefined ? undefined
    : Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
  const allHeaders = { ...headers };
  if (payload !== undefined && !Object.keys(allHeaders).some((h) => /^(content-length|transfer-encoding)$/i.test(h))) {
    allHeaders['content-length'] = payload.length;
  }
  if (payload !== undefined && !Object.keys(allHeaders).some((h) => /^content-type$/i.test(h))) {
    allHeaders['content-type'] = 'application/json';
  }
  if (payload === undefined && !/^(GET|HEAD)$/.test(method)) allHeaders['content-length'] = 0;
  const req = http.request({
    host: u.hostname, port: u.port, path: u.pathname + u.search, method, agent: false, headers: allHeaders,
  });
  let aborted = false;
  const connected = new Promise((resolve, reject) => {
    req.on('socket', (socket) => {
      if (!socket.connecting) resolve();
      else socket.once('connect', resolve);
    });
    req.on('error', reject);
  });
  connected.catch(() => {});
  const response = new Promise((resolve, reject) => {
    req.on('response', (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => resolve(new Response(res.statusCode, res.headers, Buffer.concat(chunks).toString())));
      res.on('error', reject);
      res.on('aborted', () => reject(new Error(`${method} ${u.pathname}: response aborted`)));
    });
    req.on('error', (err) => {
      if (aborted) resolve({ aborted: true });
      else reject(new Error(`${method} ${url}: ${err.message}`));
    });
    req.on('close', () => { if (aborted) resolve({ aborted: true }); });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)));
  });
  response.catch(() => {});
  req.flushHeaders();
  return {
    connected,
    response,
    release() { if (payload !== undefined) req.end(payload); else req.end(); },
    abort() { aborted = true; req.destroy(); },
  };
}

export async function request(url, options = {}) {
  const r = openRequest(url, options);
  r.release();
  return r.response;
}

// n requests, each on its own connection, released together once all are connected.
// makeRequest(i) returns {url, method?, headers?, body?}. Resolves to the n responses.
export async function burst(n, makeRequest) {
  const reqs = Array.from({ length: n }, (_, i) => {
    const { url, ...options } = makeRequest(i);
    return openRequest(url, options);
  });
  await Promise.all(reqs.map((r) => r.connected));
  // Let the server read every request's headers before any body arrives.
  await sleep(50);
  for (const r of reqs) r.release();
  return Promise.all(reqs.map((r) => r.response));
}

// ---------------------------------------------------------------------------
// Request bodies for the fake upstream

// Body of the upstream answer "200 {"results":[],"costDollars":{"total":X}}", X verbatim.
export function costAnswer(costText) {
  return `{"results":[],"costDollars":{"total":${costText}}}`;
}

// A search request body whose upstream answer is given by the fake_exa controls.
export function searchBody(fakeExa = {}, extra = {}) {
  return JSON.stringify({ query: 'q', ...extra, fake_exa: fakeExa });
}

// "Cost X" for a {"query":"q"} search, with optional further controls (delay_ms, ...).
export function costBody(costText, controls = {}) {
  return searchBody({ body: costAnswer(costText), ...controls });
}

// ---------------------------------------------------------------------------
// The fake upstream

export class FakeExa {
  constructor(dir, port) {
    this.dir = dir;
    this.port = port;
    this.url = `http://127.0.0.1:${port}`;
    this.proc = null;
    this.incarnations = [];
    this.callsBeforeRestarts = 0;
  }

  async start() {
    const firstStart = this.incarnations.length === 0;
    for (let attempt = 0; ; attempt++) {
      this.proc = new Proc('fake-exa', TOLLGATE_BIN, ['fake-exa', '--listen', `127.0.0.1:${this.port}`], {
        env: cleanEnv({}),
        logPath: path.join(this.dir, `fake-exa.${this.incarnations.length}.log`),
      });
      this.incarnations.push(this.proc);
      try {
        await waitHealthy(this.proc, [`${this.url}/_fake/calls`]);
        return this;
      } catch (err) {
        // Another test file may have taken the port between freePort() and the bind.
        const portTaken = /in use|bind/i.test(this.proc.tail());
        await this.proc.kill();
        if (!(firstStart && portTaken && attempt < 3)) throw err;
        this.port = await freePort();
        this.url = `http://127.0.0.1:${this.port}`;
      }
    }
  }

  // "The test upstream is stopped": its call count so far is kept for totalCalls().
  async stop() {
    if (this.proc?.running) {
      try { this.callsBeforeRestarts += await this.calls(); } catch { /* dead already */ }
      await this.proc.kill();
    }
  }

  async restart() {
    await this.stop();
    return this.start();
  }

  async calls() {
    const res = await request(`${this.url}/_fake/calls`, { method: 'GET' });
    assert.equal(res.status, 200, `fake-exa /_fake/calls: ${res.text}`);
    return res.json.calls;
  }

  // Calls received by every incarnation of the fake upstream in this harness.
  async totalCalls() {
    return this.callsBeforeRestarts + (this.proc?.running ? await this.calls() : 0);
  }

  async requests() {
    const res = await request(`${this.url}/_fake/requests`, { method: 'GET' });
    assert.equal(res.status, 200, `fake-exa /_fake/requests: ${res.text}`);
    return res.json.requests;
  }

  async reset() {
    const res = await request(`${this.url}/_fake/reset`, { method: 'POST', body: '{}' });
    assert.ok(res.status < 300, `fake-exa /_fake/reset: ${res.status} ${res.text}`);
  }
}

function cleanEnv(extra) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) {
    if (/^(TOLLGATE_|EXA_|FAKETIME|LD_PRELOAD)/.test(k)) delete env[k];
  }
  return { ...env, ...extra };
}

async function waitHealthy(proc, urls) {
  const deadline = Date.now() + START_TIMEOUT_MS;
  const pending = new Set(urls);
  while (pending.size) {
    if (!proc.running) {
      throw new Error(`${proc.name} exited (code ${proc.exitCode}, signal ${proc.exitSignal}) before it was ready:\n${proc.tail()}`);
    }
    if (Date.now() > deadline) {
      throw new Error(`${proc.name} not ready after ${START_TIMEOUT_MS} ms (${[...pending].join(', ')}):\n${proc.tail()}`);
    }
    for (const url of [...pending]) {
      try {
        const res = await request(url, { method: 'GET', timeoutMs: 2000 });
        if (res.status === 200) pending.delete(url);
      } catch { /* not listening yet */ }
    }
    if (pending.size) await sleep(50);
  }
}

// ---------------------------------------------------------------------------
// tollgate serve

export class Tollgate {
  // options: {dir, upstreamUrl, config (TOML text or object), clock (ISO UTC or null for
  // the real clock), tz, env}
  constructor(options) {
    this.dir = options.dir;
    this.dbPath = path.join(this.dir, 't.db');
    // options.databaseUrl: e.g. a PostgreSQL database shared by several processes.
    this.databaseUrl = options.databaseUrl ?? `sqlite:${this.dbPath}`;
    this.upstreamUrl = options.upstreamUrl;
    this.tz = options.tz ?? 'UTC';
    this.extraEnv = options.env ?? {};
    // null: the variable is not set at all.
    this.adminToken = options.adminToken !== undefined ? options.adminToken : `admin-${crypto.randomBytes(12).toString('hex')}`;
    this.upstreamKey = options.upstreamKey !== undefined ? options.upstreamKey : `exa-operator-${crypto.randomBytes(8).toString('hex')}`;
    this.clockFile = path.join(this.dir, 'faketime');
    this.useFakeClock = options.clock !== null && options.clock !== undefined;
    this.clock = options.clock ?? null;
    this.incarnations = [];
    this.proc = null;
    this.setConfig(options.config);
  }

  setConfig(config) {
    this.configText = typeof config === 'string' ? config : toToml(deepMerge(DEFAULT_CONFIG, config ?? {}));
  }

  get proxyUrl() { return `http://127.0.0.1:${this.port}`; }
  get adminUrl() { return `http://127.0.0.1:${this.adminPort}`; }

  // Moves the (frozen) wall clock of the tollgate process to this UTC instant.
  async setClock(isoUtc) {
    assert.ok(this.useFakeClock, 'this tollgate runs on the real clock');
    this.clock = isoUtc;
    const tmp = `${this.clockFile}.tmp`;
    await fsp.writeFile(tmp, `${faketimeText(isoUtc, this.tz)}\n`);
    await fsp.rename(tmp, this.clockFile); // atomic: never a half-written time
  }

  env() {
    const env = cleanEnv({
      TZ: this.tz,
      ...(this.adminToken === null ? {} : { TOLLGATE_ADMIN_TOKEN: this.adminToken }),
      ...(this.upstreamKey === null ? {} : { EXA_API_KEY: this.upstreamKey }),
      ASAN_OPTIONS: process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:verify_asan_link_order=0` : 'verify_asan_link_order=0',
      ...this.extraEnv,
    });
    if (this.useFakeClock) {
      Object.assign(env, {
        LD_PRELOAD: FAKETIME_LIB,
        FAKETIME_TIMESTAMP_FILE: this.clockFile,
        FAKETIME_NO_CACHE: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
      });
    }
    return env;
  }

  async start({ config } = {}) {
    if (config !== undefined) this.setConfig(config);
    if (this.useFakeClock) await this.setClock(this.clock);
    const firstStart = this.port === undefined;
    for (let attempt = 0; ; attempt++) {
      if (firstStart && attempt === 0) {
        this.port = await freePort();
        this.adminPort = await freePort();
      }
      const n = this.incarnations.length;
      const configPath = path.join(this.dir, `tollgate.${n}.toml`);
      await fsp.writeFile(configPath, this.configText);
      this.proc = new Proc(`tollgate#${n}`, TOLLGATE_BIN, [
        'serve', '--config', configPath,
        '--listen', `127.0.0.1:${this.port}`,
        '--admin-listen', `127.0.0.1:${this.adminPort}`,
        '--database', this.databaseUrl,
        '--upstream-url', this.upstreamUrl,
      ], { env: this.env(), logPath: path.join(this.dir, `tollgate.${n}.log`) });
      this.incarnations.push(this.proc);
      try {
        await waitHealthy(this.proc, [`${this.proxyUrl}/healthz`, `${this.adminUrl}/healthz`]);
        return this;
      } catch (err) {
        // Another test file may have taken a port between freePort() and the bind.
        const portTaken = /in use|bind/i.test(this.proc.tail());
        await this.proc.kill();
        if (!(firstStart && portTaken && attempt < 3)) throw err;
        this.port = await freePort();
        this.adminPort = await freePort();
      }
    }
  }

  // Both resolve to the process's {code, signal}.
  async stop() { return this.proc?.stop(); }

  async kill() { return this.proc?.kill(); }

  // Stop (SIGTERM) and start again on the same database, ports and clock.
  async restart(options = {}) {
    await this.stop();
    return this.start(options);
  }

  // Runs `tollgate recompute` on this database (read-only unless fix). By default under this
  // process's clock (the same libfaketime file) when it has a faked one; realClock: true runs
  // it on the real clock. json is the parsed report.
  async recompute({ owner, fix = false, realClock = false } = {}) {
    const args = ['recompute', '--database', this.databaseUrl];
    if (owner !== undefined) args.push('--owner', owner);
    if (fix) args.push('--fix');
    const env = { TZ: this.tz };
    if (this.useFakeClock && !realClock) {
      Object.assign(env, {
        LD_PRELOAD: FAKETIME_LIB,
        FAKETIME_TIMESTAMP_FILE: this.clockFile,
        FAKETIME_NO_CACHE: '1',
        FAKETIME_DONT_FAKE_MONOTONIC: '1',
        // libfaketime preloaded ahead of an ASan runtime: let ASan accept that.
        ASAN_OPTIONS: process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:verify_asan_link_order=0` : 'verify_asan_link_order=0',
      });
    }
    const { code, stdout, stderr } = await runTollgate(args, { env });
    let json;
    try { json = JSON.parse(stdout); } catch { /* asserted by the caller */ }
    return { code, stdout, stderr, json };
  }

  // Runs `tollgate report` on this database; json is parsed for --format json.
  async report(month, format = 'json') {
    const { code, stdout, stderr } = await runTollgate(['report', '--database', this.databaseUrl, '--month', month, '--format', format]);
    let json;
    if (format === 'json') {
      try { json = JSON.parse(stdout); } catch { /* asserted by the caller */ }
    }
    return { code, stdout, stderr, json };
  }
}

// Stand-alone starters, for tests that arrange processes themselves (most use Harness).
export async function startFakeExa({ dir, port } = {}) {
  return new FakeExa(dir ?? await makeTempDir(), port ?? await freePort()).start();
}

// options as for new Tollgate(); dir defaults to a new temp directory.
export async function startTollgate(options) {
  const tg = new Tollgate({ ...options, dir: options.dir ?? await makeTempDir() });
  return tg.start();
}

// Runs the tollgate binary to completion (sub-commands other than serve / fake-exa).
export function runTollgate(args, { env = {}, timeoutMs = 60_000 } = {}) {
  return new Promise((resolve) => {
    execFile(TOLLGATE_BIN, args, { env: cleanEnv(env), timeout: timeoutMs, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
      });
  });
}

// ---------------------------------------------------------------------------
// Admin API client

// Ids and owners go into paths as written (':' and '@' are legal in a path segment);
// anything else is percent-encoded.
const seg = (s) => encodeURIComponent(s).replace(/%3A/gi, ':').replace(/%40/gi, '@');

export class AdminClient {
  constructor(tollgate) { this.tg = tollgate; }

  // Raw call: {status, headers, text, json}. token: undefined = the configured one, null = none.
  async call(method, urlPath, body, { token, headers = {} } = {}) {
    const auth = token === null ? {} : { authorization: `Bearer ${token ?? this.tg.adminToken}` };
    return request(`${this.tg.adminUrl}${urlPath}`, {
      method,
      headers: { ...auth, ...headers },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
  }

  async expect(status, method, urlPath, body) {
    const res = await this.call(method, urlPath, body);
    assert.equal(res.status, status, `${method} ${urlPath} ${body ? JSON.stringify(body) : ''} -> ${res.status} ${res.text}`);
    return res.json;
  }

  createUser(id, tier) {
    return this.expect(201, 'POST', '/admin/v1/users', tier === undefined ? { id } : { id, tier });
  }

  patchUser(id, fields) { return this.expect(200, 'PATCH', `/admin/v1/users/${seg(id)}`, fields); }

  createOrg(id) { return this.expect(201, 'POST', '/admin/v1/organizations', { id }); }

  addMember(org, user) {
    return this.expect(204, 'PUT', `/admin/v1/organizations/${seg(org)}/members/${seg(user)}`);
  }

  removeMember(org, user) {
    return this.expect(204, 'DELETE', `/admin/v1/organizations/${seg(org)}/members/${seg(user)}`);
  }

  // -> {id, key}
  createKey(user) { return this.expect(201, 'POST', `/admin/v1/users/${seg(user)}/api-keys`); }

  revokeKey(id) { return this.expect(204, 'DELETE', `/admin/v1/api-keys/${seg(id)}`); }

  grant(owner, amount, { effective_at, expires_at, idempotency_key } = {}) {
    const body = { owner, amount_microdollars: amount, idempotency_key: idempotency_key ?? `grant-${crypto.randomUUID()}` };
    if (effective_at !== undefined) body.effective_at = effective_at;
    if (expires_at !== undefined) body.expires_at = expires_at;
    return this.expect(201, 'POST', '/admin/v1/grants', body);
  }

  // POST /admin/v1/usage: usage metered elsewhere, debited from the owner's ledger -> 201 body.
  externalUsage(owner, amount, { at, idempotency_key } = {}) {
    const body = { owner, amount_microdollars: amount, idempotency_key: idempotency_key ?? `usage-${crypto.randomUUID()}` };
    if (at !== undefined) body.at = at;
    return this.expect(201, 'POST', '/admin/v1/usage', body);
  }

  account(owner) { return this.expect(200, 'GET', `/admin/v1/accounts/${seg(owner)}`); }

  usage(user, month) {
    return this.expect(200, 'GET', `/admin/v1/users/${seg(user)}/usage?month=${month}`);
  }

  // Every row of the usage log for this filter, following next_after to the end.
  async usageLog({ user, org, month, limit = 1000 } = {}) {
    const rows = [];
    let after = null;
    for (let page = 0; page < 100_000; page++) {
      const q = new URLSearchParams();
      if (user !== undefined) q.set('user', user);
      if (org !== undefined) q.set('org', org);
      if (month !== undefined) q.set('month', month);
      q.set('limit', String(limit));
      if (after !== null) q.set('after', String(after));
      const pageBody = await this.expect(200, 'GET', `/admin/v1/usage-log?${q}`);
      assert.ok(Array.isArray(pageBody.rows), `usage-log rows: ${JSON.stringify(pageBody)}`);
      assert.ok(pageBody.rows.length <= limit, `usage-log page of ${pageBody.rows.length} rows with limit ${limit}`);
      rows.push(...pageBody.rows);
      if (pageBody.next_after === null || pageBody.next_after === undefined) return rows;
      assert.notEqual(pageBody.next_after, after, 'usage-log cursor did not move');
      after = pageBody.next_after;
    }
    throw new Error('usage-log paging did not end');
  }

  recompute(owner, { fix } = {}) {
    const body = owner ? { owner } : {};
    if (fix !== undefined) body.fix = fix;
    return this.expect(200, 'POST', '/admin/v1/recompute', body);
  }

  async metrics() {
    const res = await this.call('GET', '/metrics');
    assert.equal(res.status, 200, `GET /metrics -> ${res.status} ${res.text}`);
    return res.text;
  }
}

// Sum of the samples of a Prometheus metric whose labels include `labels`;
// undefined when there is no such sample.
export function metricValue(text, name, labels = {}) {
  let sum;
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const m = line.match(/^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m || m[1] !== name) continue;
    const sampleLabels = {};
    for (const lm of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) sampleLabels[lm[1]] = lm[2];
    if (Object.entries(labels).every(([k, v]) => sampleLabels[k] === v)) sum = (sum ?? 0) + Number(m[3]);
  }
  return sum;
}

// ---------------------------------------------------------------------------
// PostgreSQL: scripts/test.sh starts a private server and names it in
// TOLLGATE_TEST_PG_URL; each harness gets a database of its own on it.

export const PG_URL = process.env.TOLLGATE_TEST_PG_URL || '';
// For {skip: PG_SKIP} on tests that need PostgreSQL.
export const PG_SKIP = PG_URL ? false
  : 'needs PostgreSQL: set TOLLGATE_TEST_PG_URL to a server URL (scripts/test.sh starts a private one)';

// Runs SQL with psql on a database URL; resolves to its output (tuples only, '|' between columns).
export function psql(url, sql, { timeoutMs = 60_000 } = {}) {
  return new Promise((resolve, reject) => {
    execFile('psql', ['-XAtq', '-v', 'ON_ERROR_STOP=1', '-d', url, '-c', sql],
      { timeout: timeoutMs, env: { ...process.env, PGCONNECT_TIMEOUT: '5' }, maxBuffer: 64 << 20 },
      (err, stdout, stderr) => {
        if (err) reject(new Error(`psql: ${sql.slice(0, 200)}: ${stderr || err.message}`));
        else resolve(stdout.trim());
      });
  });
}

// A server URL (default: the test server) with its database replaced by `name`.
export function pgDatabaseUrl(name, server = PG_URL) {
  const u = new URL(server);
  u.pathname = `/${name}`;
  return u.toString();
}

// A fresh database on the test server (or on `server`): {name, url, server}.
export async function createPgDatabase(prefix = 'tollgate_it', server = PG_URL) {
  assert.ok(server, PG_SKIP || 'no PostgreSQL');
  const name = `${prefix}_${crypto.randomBytes(6).toString('hex')}`;
  await psql(server, `CREATE DATABASE ${name}`);
  return { name, url: pgDatabaseUrl(name, server), server };
}

export async function dropPgDatabase(name, server = PG_URL) {
  await psql(server, `DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
}

// ---------------------------------------------------------------------------
// The harness: one fake upstream, one tollgate (or several on one PostgreSQL
// database), one temp dir.

export class Harness {
  // options: {config, clock, tz, env, fakeExa: false to start none,
  //   postgres: true to run on a fresh PostgreSQL database instead of SQLite (on the test
  //   server, or on options.pgServer), instances: N tollgate processes sharing it (default 1)}
  constructor(options = {}) {
    this.options = options;
    this.dir = null;
    this.fake = null;
    this.tollgate = null;
    this.admin = null;
    this.tollgates = [];
    this.admins = [];
    this.pgdb = null;
  }

  async start() {
    assert.ok(fs.existsSync(TOLLGATE_BIN), `no tollgate binary at ${TOLLGATE_BIN} (build it, or set TOLLGATE_BIN)`);
    if (this.options.clock !== null && this.options.clock !== undefined) {
      assert.ok(fs.existsSync(FAKETIME_LIB), `no ${FAKETIME_LIB}: install the Debian package faketime`);
    }
    const instances = this.options.instances ?? 1;
    assert.ok(instances === 1 || this.options.postgres, 'several instances need a shared PostgreSQL database');
    this.dir = await makeTempDir();
    if (this.options.postgres) this.pgdb = await createPgDatabase('tollgate_it', this.options.pgServer ?? PG_URL);
    this.fake = await new FakeExa(this.dir, await freePort()).start();
    // One admin token for all instances; each instance has its own ports, clock file and logs.
    const adminToken = this.options.adminToken !== undefined ? this.options.adminToken
      : `admin-${crypto.randomBytes(12).toString('hex')}`;
    for (let i = 0; i < instances; i++) {
      const dir = i === 0 ? this.dir : path.join(this.dir, `instance${i}`);
      if (i > 0) await fsp.mkdir(dir);
      this.tollgates.push(new Tollgate({
        ...this.options, dir, adminToken, upstreamUrl: this.fake.url, databaseUrl: this.pgdb?.url,
      }));
    }
    this.tollgate = this.tollgates[0];
    this.admins = this.tollgates.map((t) => new AdminClient(t));
    this.admin = this.admins[0];
    // Started together: concurrent migrations must be safe.
    await Promise.all(this.tollgates.map((t) => t.start()));
    return this;
  }

  processes() {
    return [...(this.fake?.incarnations ?? []), ...this.tollgates.flatMap((t) => t.incarnations),
      ...(this.extraProcs ?? [])];
  }

  // SQL on this harness's PostgreSQL database (psql output, tuples only).
  pg(sql) {
    assert.ok(this.pgdb, 'this harness runs on SQLite');
    return psql(this.pgdb.url, sql);
  }

  dumpLogs(reason) {
    const out = [`\n===== ${reason}; logs in ${this.dir} =====`];
    for (const p of this.processes()) {
      out.push(`----- ${p.name} (${p.running ? 'running' : `exited ${p.exitCode ?? p.exitSignal}`}) ${p.args.join(' ')}`);
      out.push(p.unshownTail());
    }
    process.stderr.write(out.join('\n') + '\n');
  }

  async close({ keepDir = false } = {}) {
    for (const p of this.processes()) await p.kill();
    if (this.dir && !keepDir) await fsp.rm(this.dir, { recursive: true, force: true });
    if (this.pgdb && !keepDir) await dropPgDatabase(this.pgdb.name, this.pgdb.server).catch(() => {});
  }

  // Moves every instance's clock.
  async setClock(isoUtc) { await Promise.all(this.tollgates.map((t) => t.setClock(isoUtc))); }

  // --- proxy ---------------------------------------------------------------

  // POST /api/exa/{path} as the holder of `key`. opts: {body, org, orgHeader, headers,
  // method, keyHeader: 'authorization' | 'x-api-key', instance: which tollgate (default 0)}.
  proxyRequest(apiPath, { key, body = '{"query":"q"}', org, orgHeader = 'X-KiloCode-OrganizationId', headers = {}, method = 'POST', keyHeader = 'authorization', timeoutMs, instance = 0 } = {}) {
    const h = { ...headers };
    if (key !== undefined) {
      if (keyHeader === 'authorization') h.authorization = `Bearer ${key}`;
      else h['x-api-key'] = key;
    }
    if (org !== undefined) h[orgHeader] = org;
    return { url: `${this.tollgates[instance].proxyUrl}/api/exa/${apiPath}`, method, headers: h, body, timeoutMs };
  }

  proxy(apiPath, opts = {}) {
    const { url, ...options } = this.proxyRequest(apiPath, opts);
    return request(url, options);
  }

  // POST /api/exa/search whose upstream answer is "cost X" (optionally with delay_ms etc.).
  search(key, costText, { controls = {}, ...opts } = {}) {
    return this.proxy('search', { key, body: costBody(costText, controls), ...opts });
  }

  burst(n, makeRequest) { return burst(n, makeRequest); }

  // --- setup shortcuts -----------------------------------------------------

  // Creates the users (optionally {id: tier}) with one API key each; returns {id: key}.
  async usersWithKeys(ids) {
    const entries = Array.isArray(ids) ? ids.map((id) => [id, undefined]) : Object.entries(ids);
    const keys = {};
    for (const [id, tier] of entries) {
      await this.admin.createUser(id, tier);
      keys[id] = (await this.admin.createKey(id)).key;
      assert.equal(typeof keys[id], 'string');
    }
    return keys;
  }

  // --- reads and assertions --------------------------------------------------

  async expectAccount(owner, { balance, held }) {
    const acc = await this.admin.account(owner);
    if (balance !== undefined) assert.equal(acc.balance_microdollars, balance, `${owner} balance_microdollars`);
    if (held !== undefined) assert.equal(acc.held_microdollars, held, `${owner} held_microdollars`);
    return acc;
  }

  // expected: {free_allowance, free_used, contexts: {personal: {request_count, total_cost,
  // total_free, total_charged}, ...}}; contexts, when given, must be exactly these.
  async expectUsage(user, month, expected) {
    const u = await this.admin.usage(user, month);
    assert.equal(u.user, user, 'usage.user');
    assert.equal(u.month, month, 'usage.month');
    if (expected.free_allowance !== undefined) {
      assert.equal(u.free_allowance_microdollars, expected.free_allowance, `${user} ${month} free_allowance_microdollars`);
    }
    if (expected.free_used !== undefined) {
      assert.equal(u.free_used_microdollars, expected.free_used, `${user} ${month} free_used_microdollars`);
    }
    if (expected.contexts !== undefined) {
      const actual = {};
      for (const c of u.contexts) {
        actual[c.context] = {
          request_count: c.request_count,
          total_cost: c.total_cost_microdollars,
          total_free: c.total_free_microdollars,
          total_charged: c.total_charged_microdollars,
        };
      }
      const wanted = {};
      for (const [ctx, v] of Object.entries(expected.contexts)) {
        wanted[ctx] = { ...actual[ctx], ...v };
        if (!actual[ctx]) wanted[ctx] = v;
      }
      assert.deepEqual(actual, wanted, `${user} ${month} usage contexts`);
    }
    return u;
  }

  async auditRow(requestId, filter = {}) {
    assert.ok(requestId, 'response has no x-tollgate-request-id');
    const rows = await this.admin.usageLog(filter);
    const matches = rows.filter((r) => r.request_id === requestId);
    assert.equal(matches.length, 1, `audit rows for request ${requestId}`);
    return matches[0];
  }

  async expectNoDrift() {
    const report = await this.admin.recompute();
    assert.deepEqual(report.drift, [], `recompute drift: ${JSON.stringify(report)}`);
    assert.equal(typeof report.owners_checked, 'number');
    return report;
  }

  // Runs fn and asserts how many calls the fake upstream received meanwhile.
  async expectUpstreamCalls(n, fn) {
    const before = await this.fake.totalCalls();
    const result = await fn();
    assert.equal(await this.fake.totalCalls() - before, n, 'upstream calls');
    return result;
  }
}

// Registers a Harness with the enclosing describe(): started before its tests,
// logs printed after a failing test, processes killed (and temp dir removed unless
// something failed) after the last test.
export function useHarness(options = {}) {
  const h = new Harness(options);
  let failed = false;
  before(async () => { await h.start(); });
  afterEach((t) => {
    if (t.passed === false) {
      failed = true;
      h.dumpLogs(`test failed: ${t.name}`);
    }
  });
  after(async () => { await h.close({ keepDir: failed }); });
  return h;
}

// ---------------------------------------------------------------------------
// Assertions on proxy answers

export function assertReceipt(res, { cost, free, charged, remaining, balance }) {
  const pairs = [
    ['x-tollgate-cost-microdollars', cost],
    ['x-tollgate-free-microdollars', free],
    ['x-tollgate-charged-microdollars', charged],
    ['x-tollgate-allowance-remaining-microdollars', remaining],
    ['x-tollgate-balance-microdollars', balance],
  ];
  assert.ok(res.headers['x-tollgate-request-id'], `no x-tollgate-request-id (status ${res.status}: ${res.text})`);
  const actual = {};
  const expected = {};
  for (const [name, value] of pairs) {
    if (value === undefined) continue;
    actual[name] = res.headers[name];
    expected[name] = String(value);
  }
  assert.deepEqual(actual, expected, 'receipt headers');
}

export function assertStatus(res, status) {
  assert.equal(res.status, status, `status (body: ${res.text})`);
}

// "$10.00" for 10,000,000 µ$: nearest cent, ties up.
export function dollars(microdollars) {
  const cents = Math.floor((microdollars + 5000) / 10000);
  return `$${Math.floor(cents / 100)}.${String(cents % 100).padStart(2, '0')}`;
}

export const ERROR_402 = 'Exa free allowance exhausted and no credit balance available';

// A 402 with the body of SPEC section 3 (figures left undefined are not checked).
// message: exact error text, or a RegExp.
export function assert402(res, { allowance, used, balance, context, message = ERROR_402 }) {
  assertStatus(res, 402);
  assert.ok(res.json && typeof res.json === 'object', `402 body is not JSON: ${res.text}`);
  const b = res.json;
  if (message instanceof RegExp) assert.match(b.error, message, '402 error message');
  else assert.equal(b.error, message, '402 error message');
  const expected = {
    monthlyAllowance: dollars(allowance),
    used: dollars(used),
    monthly_allowance_microdollars: allowance,
    used_microdollars: used,
    balance_microdollars: balance,
    context,
  };
  const actual = {};
  for (const k of Object.keys(expected)) {
    if (expected[k] === undefined) delete expected[k];
    else actual[k] = b[k];
  }
  assert.deepEqual(actual, expected, '402 body');
  assert.equal(res.headers['x-tollgate-cost-microdollars'], undefined, 'a 402 carries no receipt');
}

// One grant of an account view, for deepEqual against
// {amount, remaining, expired, effective_at, expires_at}.
export function grantState(account, grantId) {
  const g = account.grants.find((x) => x.id === grantId);
  assert.ok(g, `grant ${grantId} listed in ${JSON.stringify(account)}`);
  return {
    amount: g.amount_microdollars,
    remaining: g.remaining_microdollars,
    expired: g.expired_microdollars,
    effective_at: g.effective_at,
    expires_at: g.expires_at,
  };
}

// An audit row's money fields, for deepEqual against {cost, free, charged, source, status}.
export function rowMoney(row) {
  return {
    cost: row.cost_microdollars,
    free: row.free_microdollars,
    charged: row.charged_microdollars,
    source: row.cost_source,
    status: row.upstream_status,
  };
}

export async function waitFor(what, fn, { timeoutMs = 20_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await sleep(intervalMs);
  }
}

export { sleep };
