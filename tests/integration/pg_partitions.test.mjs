// The audit log's monthly partitions on PostgreSQL (SPEC §5): made at start-up for the
// current and next 3 months; a request arriving in a month nobody provisioned is still
// recorded (the default partition takes it) and `tollgate partitions ensure` moves it into
// place, idempotently; old partitions are never dropped. With SQLite the command is a no-op.

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import {
  useHarness, assertStatus, runTollgate, makeTempDir, PG_SKIP, FAKETIME_LIB,
} from './lib/harness.mjs';

// `tollgate partitions ensure` at the tollgate process's (faked) clock.
function ensure(h, args = []) {
  return runTollgate(['partitions', 'ensure', '--database', h.tollgate.databaseUrl, ...args], {
    env: {
      // An ASan build would refuse to start behind a preloaded library.
      ASAN_OPTIONS: `${process.env.ASAN_OPTIONS ? `${process.env.ASAN_OPTIONS}:` : ''}verify_asan_link_order=0`,
      LD_PRELOAD: FAKETIME_LIB,
      FAKETIME_TIMESTAMP_FILE: h.tollgate.clockFile,
      FAKETIME_NO_CACHE: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    },
  });
}

async function partitions(h) {
  return (await h.pg("SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid " +
    "WHERE i.inhparent = 'audit_log'::regclass ORDER BY 1")).split('\n');
}

async function whereIs(h) {
  return h.pg("SELECT tableoid::regclass || ' ' || month || ' ' || count(*) FROM audit_log GROUP BY tableoid, month ORDER BY 1");
}

describe('audit-log partitions on PostgreSQL', { skip: PG_SKIP }, () => {
  const h = useHarness({ postgres: true, clock: '2025-03-05T10:00:00Z' });
  let key;
  before(async () => { ({ u1: key } = await h.usersWithKeys(['u1'])); });

  it('the server made this month and the next 3 at start-up', async () => {
    assert.deepEqual(await partitions(h), [
      'audit_log_2025_03', 'audit_log_2025_04', 'audit_log_2025_05', 'audit_log_2025_06', 'audit_log_default',
    ]);
    assertStatus(await h.search(key, '0.001'), 200);
    assert.equal(await whereIs(h), 'audit_log_2025_03 2025-03 1');
  });

  it('a request in a month without a partition is recorded in the default partition', async () => {
    await h.setClock('2025-09-15T00:00:00Z');
    const res = await h.search(key, '0.002');
    assertStatus(res, 200);
    assert.equal(res.header('x-tollgate-cost-microdollars'), '2000');
    await h.setClock('2024-12-31T23:59:59.999Z');  // and one long before
    assertStatus(await h.search(key, '0.003'), 200);
    assert.equal(await whereIs(h),
      ['audit_log_2025_03 2025-03 1', 'audit_log_default 2024-12 1', 'audit_log_default 2025-09 1'].join('\n'));
    const log = await h.admin.usageLog({ user: 'u1', month: '2025-09' });
    assert.equal(log.length, 1);
  });

  it('partitions ensure makes the months ahead and moves waiting rows into place; a rerun changes nothing', async () => {
    await h.setClock('2025-09-15T00:00:00Z');
    const first = await ensure(h, ['--months-ahead', '1']);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /created audit_log_2024_12\n/);
    assert.match(first.stdout, /created audit_log_2025_09\n/);
    assert.match(first.stdout, /created audit_log_2025_10\n/);
    assert.match(first.stdout, /2 rows moved out of audit_log_default/);
    assert.equal(await whereIs(h),
      ['audit_log_2024_12 2024-12 1', 'audit_log_2025_03 2025-03 1', 'audit_log_2025_09 2025-09 1'].join('\n'));
    const again = await ensure(h, ['--months-ahead', '1']);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /\(0 created, 2 already present\); 0 rows moved/);
    // Old partitions stay; the default one is empty again.
    assert.deepEqual(await partitions(h), [
      'audit_log_2024_12', 'audit_log_2025_03', 'audit_log_2025_04', 'audit_log_2025_05', 'audit_log_2025_06',
      'audit_log_2025_09', 'audit_log_2025_10', 'audit_log_default',
    ]);
    // The moved rows are read as before, and the books balance.
    const log = await h.admin.usageLog({ user: 'u1' });
    assert.deepEqual(log.map((r) => [r.arrived_at, r.cost_microdollars]), [
      ['2024-12-31T23:59:59.999Z', 3000], ['2025-03-05T10:00:00.000Z', 1000], ['2025-09-15T00:00:00.000Z', 2000],
    ]);
    await h.expectNoDrift();
  });

  it('a restart in a later month makes that month and the next 3', async () => {
    await h.setClock('2025-12-01T00:00:00Z');
    await h.tollgate.restart();
    const names = await partitions(h);
    for (const m of ['2025_12', '2026_01', '2026_02', '2026_03']) assert.ok(names.includes(`audit_log_${m}`), m);
    assert.ok(names.includes('audit_log_2024_12'), 'old partitions are never dropped');
  });
});

describe('partitions ensure on SQLite', () => {
  it('says there is nothing to do and exits 0', async () => {
    const dir = await makeTempDir();
    const res = await runTollgate(['partitions', 'ensure', '--database', `sqlite:${dir}/t.db`]);
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /SQLite.*no partitions/);
    await fsp.rm(dir, { recursive: true, force: true });
  });
});
