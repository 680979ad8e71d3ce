// `tollgate admin ...`: every sub-command against a running server, its JSON
// on stdout, and the exit codes (0 on 2xx, 1 when the API refuses with the
// error on stderr, 2 when the server cannot be reached).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useHarness, runTollgate, freePort } from './lib/harness.mjs';

describe('tollgate admin', () => {
  const h = useHarness({ clock: null });
  const admin = (...args) => runTollgate(['admin', '--admin-url', h.tollgate.adminUrl, ...args],
    { env: { TOLLGATE_ADMIN_TOKEN: h.tollgate.adminToken } });
  const ok = async (...args) => {
    const r = await admin(...args);
    assert.equal(r.code, 0, `tollgate admin ${args.join(' ')}: ${r.stderr}`);
    return r.stdout.trim() ? JSON.parse(r.stdout) : null;
  };

  it('creates users, orgs, members, keys and grants, and reads them back', async () => {
    assert.deepEqual(await ok('users', 'create', '--id', 'alice', '--tier', 'pro'), { id: 'alice' });
    assert.deepEqual(await ok('users', 'update', 'alice', '--blocked', 'false'), { id: 'alice' });
    assert.deepEqual(await ok('orgs', 'create', '--id', 'acme', '--name', 'Acme'), { id: 'acme' });
    assert.equal(await ok('orgs', 'add-member', 'acme', 'alice'), null);
    const key = await ok('keys', 'create', 'alice');
    assert.match(key.key, /^tg_key_[0-9a-f]{16}_[0-9a-f]{64}$/);
    const grant = await ok('grants', 'create', '--owner', 'org:acme', '--amount-microdollars', '50000',
      '--idempotency-key', 'buy-1', '--expires-at', '2999-01-01T00:00:00Z');
    assert.equal(grant.amount_microdollars, 50000);
    assert.equal(grant.remaining_microdollars, 50000);
    assert.equal(grant.expires_at, '2999-01-01T00:00:00.000Z');
    const used = await ok('record-usage', '--owner', 'org:acme', '--amount-microdollars', '1500', '--idempotency-key', 'llm-1');
    assert.equal(used.balance_microdollars, 48500);
    const account = await ok('account', 'org:acme');
    assert.equal(account.balance_microdollars, 48500);
    assert.equal(account.grants.length, 1);
    const res = await h.proxy('search', { key: key.key, org: 'acme', body: '{"query":"q","fake_exa":{"cost":"0.004"}}' });
    assert.equal(res.status, 200);
    const month = new Date().toISOString().slice(0, 7);
    const usage = await ok('usage', 'alice', '--month', month);
    assert.equal(usage.free_used_microdollars, 4000);
    assert.deepEqual(usage.contexts.map((c) => [c.context, c.request_count, c.total_cost_microdollars]), [['org:acme', 1, 4000]]);
    const log = await ok('usage-log', '--org', 'acme', '--limit', '10');
    assert.equal(log.rows.length, 1);
    assert.equal(log.rows[0].cost_microdollars, 4000);
    assert.deepEqual((await ok('recompute')).drift, []);
    assert.equal((await ok('recompute', '--owner', 'org:acme', '--fix')).fixed, true);
    const sc = await ok('self-check');
    assert.equal(typeof sc.runs, 'number');
    assert.equal(await ok('keys', 'revoke', key.id), null);
    assert.equal((await h.proxy('search', { key: key.key })).status, 401);
    assert.equal(await ok('orgs', 'remove-member', 'acme', 'alice'), null);
  });

  it('exits 1 with the API error on stderr when the server refuses', async () => {
    const dup = await admin('users', 'create', '--id', 'alice');
    assert.equal(dup.code, 1);
    assert.match(dup.stderr, /already exists/);
    assert.match(dup.stderr, /answered 409/);
    const bad = await admin('grants', 'create', '--owner', 'user:alice', '--amount-microdollars', '-5', '--idempotency-key', 'k');
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /amount_microdollars/);
    const unknown = await admin('account', 'user:nobody');
    assert.equal(unknown.code, 1);
    const noToken = await runTollgate(['admin', '--admin-url', h.tollgate.adminUrl, 'account', 'org:acme']);
    assert.equal(noToken.code, 1);
    assert.match(noToken.stderr, /401/);
  });

  it('exits 2 when the admin API cannot be reached', async () => {
    const port = await freePort();
    const r = await runTollgate(['admin', '--admin-url', `http://127.0.0.1:${port}`, 'self-check']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /cannot connect/);
  });
});
