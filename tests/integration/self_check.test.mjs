// The server's running self-check (SPEC guarantee 3): it recomputes a sample of
// owners from the records on a snapshot, exports the drift as a metric and on
// GET /admin/v1/self-check, and the drift is 0 while the books are consistent.
// A stored balance changed behind tollgate's back shows up as drift, and
// recompute {"fix": true} writes adjustment entries that bring it back to 0.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { useHarness, metricValue, waitFor } from './lib/harness.mjs';

const CONFIG = {
  allowance: { default_microdollars: 10_000 },
  ledger: { self_check_interval_ms: 200, self_check_owners: 50 },
};

describe('background self-check', () => {
  const h = useHarness({ config: CONFIG, clock: null });
  let keys;

  it('runs, checks every owner and finds no drift after real traffic', async () => {
    keys = await h.usersWithKeys(['u1', 'u2']);
    await h.admin.grant('user:u1', 100_000);
    for (const cost of ['0.007', '0.007', '0.02']) {
      const res = await h.search(keys.u1, cost);
      assert.equal(res.status, 200);
    }
    assert.equal((await h.search(keys.u2, '0.004')).status, 200);
    const first = await h.admin.expect(200, 'GET', '/admin/v1/self-check');
    await waitFor('two self-check runs after the traffic', async () => {
      const s = await h.admin.expect(200, 'GET', '/admin/v1/self-check');
      return s.runs >= first.runs + 2;
    });
    const s = await h.admin.expect(200, 'GET', '/admin/v1/self-check');
    assert.equal(s.owners_checked, 2);
    assert.equal(s.drift_microdollars, 0);
    assert.deepEqual(s.drift, []);
    assert.equal(metricValue(await h.admin.metrics(), 'tollgate_ledger_drift_microdollars'), 0);
  });

  it('reports a balance changed behind its back, and recompute --fix corrects it with an adjustment', async () => {
    execFileSync('sqlite3', [h.tollgate.dbPath, "UPDATE accounts SET debt_microdollars = 1234 WHERE owner = 'user:u1'"]);
    await waitFor('the self-check to see the drift', async () => {
      const s = await h.admin.expect(200, 'GET', '/admin/v1/self-check');
      return s.drift_microdollars > 0;
    });
    const s = await h.admin.expect(200, 'GET', '/admin/v1/self-check');
    const debt = s.drift.find((d) => d.owner === 'user:u1' && d.field === 'debt_microdollars');
    assert.deepEqual(debt, { owner: 'user:u1', field: 'debt_microdollars', stored_microdollars: 1234, recomputed_microdollars: 0 });
    const balance = s.drift.find((d) => d.owner === 'user:u1' && d.field === 'balance_microdollars');
    assert.equal(balance.stored_microdollars - balance.recomputed_microdollars, -1234);
    assert.equal(s.drift_microdollars, 2 * 1234);
    assert.equal(metricValue(await h.admin.metrics(), 'tollgate_ledger_drift_microdollars'), 2 * 1234);

    const fixed = await h.admin.expect(200, 'POST', '/admin/v1/recompute', { fix: true });
    assert.equal(fixed.fixed, true);
    assert.equal(fixed.drift.length, 2);
    const adjustments = execFileSync('sqlite3', [h.tollgate.dbPath,
      "SELECT subject || ' ' || field || ' ' || stored_microdollars || ' ' || recomputed_microdollars FROM ledger_adjustments ORDER BY field"])
      .toString().trim().split('\n');
    assert.deepEqual(adjustments, [
      `user:u1 balance_microdollars ${balance.stored_microdollars} ${balance.recomputed_microdollars}`,
      'user:u1 debt_microdollars 1234 0',
    ]);
    assert.deepEqual((await h.admin.expect(200, 'POST', '/admin/v1/recompute', {})).drift, []);
    await waitFor('the self-check to see the books balance again', async () => {
      const after = await h.admin.expect(200, 'GET', '/admin/v1/self-check');
      return after.runs > s.runs && after.drift_microdollars === 0;
    });
    assert.equal(metricValue(await h.admin.metrics(), 'tollgate_ledger_drift_microdollars'), 0);
  });
});
