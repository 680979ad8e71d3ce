// Inputs found to hurt in review: usage-log cursors and limits that do not fit
// an int64 (once closed the connection without an answer and leaked it),
// malformed percent-encoding (once silently dropped the filter), and grants
// that would overflow an owner's balance. Each gets a clear 400 and changes
// nothing; the admin listener keeps answering afterwards.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { useHarness } from './lib/harness.mjs';

describe('admin API input hardening', () => {
  const h = useHarness({ clock: null });

  it('refuses bad cursors and limits with 400, hundreds of times, and keeps answering', async () => {
    await h.admin.createUser('bob');
    const bad = ['9999999999999999999_x', '-1_x', '12_', '_x', '12_bad id', 'x'.repeat(300)];
    for (let i = 0; i < 300; i++) {
      const after = bad[i % bad.length];
      const res = await h.admin.call('GET', `/admin/v1/usage-log?after=${encodeURIComponent(after)}`);
      assert.equal(res.status, 400, `after=${after}: ${res.text}`);
      assert.match(JSON.parse(res.text).error, /next_after cursor/);
    }
    for (const limit of ['0', '1001', '99999999999999999999', '1e3', '-5', 'ten']) {
      const res = await h.admin.call('GET', `/admin/v1/usage-log?limit=${limit}`);
      assert.equal(res.status, 400, `limit=${limit}`);
    }
    const ok = await h.admin.call('GET', '/admin/v1/usage-log?limit=1000');
    assert.equal(ok.status, 200);
    assert.deepEqual(JSON.parse(ok.text), { rows: [], next_after: null });
  });

  it('refuses malformed percent-encoding instead of ignoring the filter', async () => {
    for (const q of ['user=%zz', 'user=bob%', 'month=2025-1%', 'org=%4']) {
      const res = await h.admin.call('GET', `/admin/v1/usage-log?${q}`);
      assert.equal(res.status, 400, q);
      assert.match(JSON.parse(res.text).error, /percent-encoding/);
    }
    assert.equal((await h.admin.call('GET', '/admin/v1/users/bob/usage?month=2025-1%')).status, 400);
  });

  it('refuses a grant that would take an owner past the total it may hold', async () => {
    const max = 1_000_000_000_000_000; // per grant
    for (let i = 0; i < 1000; i++) {
      await h.admin.expect(201, 'POST', '/admin/v1/grants', { owner: 'user:bob', amount_microdollars: max, idempotency_key: `big-${i}` });
    }
    const res = await h.admin.call('POST', '/admin/v1/grants', { owner: 'user:bob', amount_microdollars: 1, idempotency_key: 'one-more' });
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.text).error, /remaining credit/);
    const account = await h.admin.account('user:bob');
    assert.equal(account.grants.length, 1000);
    assert.equal(account.balance_microdollars, 1000 * max);
  });

  it('refuses unknown fields in a user update', async () => {
    const res = await h.admin.call('PATCH', '/admin/v1/users/bob', { blockd: true });
    assert.equal(res.status, 400);
    assert.match(JSON.parse(res.text).error, /unknown field 'blockd'/);
    assert.equal((await h.admin.call('PATCH', '/admin/v1/users/bob', { blocked: false })).status, 200);
  });

  it('refuses conflicting organization headers instead of picking one, and forwards nothing', async () => {
    const keys = await h.usersWithKeys(['carol']);
    await h.admin.createOrg('o1');
    await h.admin.addMember('o1', 'carol');
    const before = await h.fake.calls();
    const res = await h.proxy('search', {
      key: keys.carol, org: 'o1', headers: { 'X-Organization-Id': 'o2' },
    });
    assert.equal(res.status, 400);
    assert.match(res.json.error, /conflicting organization headers/);
    assert.equal(await h.fake.calls(), before);
    // The same org in both headers is not a conflict.
    const same = await h.proxy('search', { key: keys.carol, org: 'o1', headers: { 'X-Organization-Id': 'o1' } });
    assert.equal(same.status, 200);
    assert.equal(same.headers['x-tollgate-charged-microdollars'], '0');
  });

  it('answers 405 to a write on /metrics', async () => {
    assert.equal((await h.admin.call('POST', '/metrics', {})).status, 405);
    assert.equal((await h.admin.call('GET', '/metrics')).status, 200);
  });
});
