// Case 07 — dollar amounts converted or summed with binary floating point
// (shared/cases/case-07-exact-decimal-money.md).

import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import {
  useHarness, searchBody, assertReceipt, assertStatus, rowMoney,
} from './lib/harness.mjs';

const CONFIG = { allowance: { default_microdollars: 10_000_000 }, admission: { policy: 'any_remaining' } };

async function setup(h) {
  const keys = await h.usersWithKeys(['u1', 'u2']);
  await h.admin.grant('user:u1', 100_000, { effective_at: '2025-06-01T00:00:00Z' });
  return keys;
}

const sum = (rows, field) => rows.reduce((s, r) => s + r[field], 0);

describe('case 07 part A: many small costs, then across the allowance (u1, June 2025)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-06-02T10:00:00Z' });
  let keys;
  before(async () => {
    keys = await setup(h);
    await h.setClock('2025-06-02T10:00:00Z');
  });

  it('step 1: 1,000 requests at cost 0.001001 -> each row 1,001 free; remaining 8,999,000', async () => {
    let last;
    for (let i = 0; i < 1000; i++) {
      last = await h.search(keys.u1, '0.001001');
      assertStatus(last, 200);
      assertReceipt(last, { cost: 1001, free: 1001, charged: 0, remaining: 10_000_000 - 1001 * (i + 1) });
    }
    assertReceipt(last, { remaining: 8_999_000, balance: 100_000 });
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-06', limit: 100 });
    assert.equal(rows.length, 1000);
    for (const row of rows) {
      assert.deepEqual(rowMoney(row), { cost: 1001, free: 1001, charged: 0, source: 'upstream', status: 200 });
    }
    await h.expectUsage('u1', '2025-06', { free_used: 1_001_000 });
  });

  it('step 2: cost 0.002018 -> row 2,018', async () => {
    const res = await h.search(keys.u1, '0.002018');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 2018, free: 2018, charged: 0, remaining: 10_000_000 - 1_003_018 });
    await h.expectUsage('u1', '2025-06', { free_used: 1_003_018 });
  });

  it('step 3: cost 0.0123456 -> row 12,346', async () => {
    const res = await h.search(keys.u1, '0.0123456');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 12_346, free: 12_346, charged: 0, remaining: 10_000_000 - 1_015_364 });
    await h.expectUsage('u1', '2025-06', { free_used: 1_015_364 });
  });

  it('step 4: cost 8.984636 -> free 8,984,636, charged 0; allowance used exactly', async () => {
    const res = await h.search(keys.u1, '8.984636');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 8_984_636, free: 8_984_636, charged: 0, remaining: 0, balance: 100_000 });
    await h.expectUsage('u1', '2025-06', { free_used: 10_000_000 });
    await h.expectAccount('user:u1', { balance: 100_000, held: 0 });
  });

  it('step 5: cost 0.001001 -> free 0, charged 1,001; balance 98,999', async () => {
    const res = await h.search(keys.u1, '0.001001');
    assertStatus(res, 200);
    assertReceipt(res, { cost: 1001, free: 0, charged: 1001, remaining: 0, balance: 98_999 });
    await h.expectAccount('user:u1', { balance: 98_999, held: 0 });
  });

  it('step 6: usage equals the sums over the 1,004 audit rows, and so does tollgate report', async () => {
    const rows = await h.admin.usageLog({ user: 'u1', month: '2025-06', limit: 100 });
    assert.equal(rows.length, 1004);
    assert.equal(new Set(rows.map((r) => r.request_id)).size, 1004, 'paging returned no row twice');
    const totals = {
      request_count: rows.length,
      total_cost: sum(rows, 'cost_microdollars'),
      total_free: sum(rows, 'free_microdollars'),
      total_charged: sum(rows, 'charged_microdollars'),
    };
    assert.deepEqual(totals, { request_count: 1004, total_cost: 10_001_001, total_free: 10_000_000, total_charged: 1001 });
    await h.expectUsage('u1', '2025-06', { free_allowance: 10_000_000, free_used: 10_000_000, contexts: { personal: totals } });

    const report = await h.tollgate.report('2025-06', 'json');
    assert.equal(report.code, 0, `tollgate report failed: ${report.stderr}`);
    assert.deepEqual(report.json, {
      month: '2025-06',
      rows: [{
        user: 'u1',
        context: 'personal',
        request_count: 1004,
        total_cost_microdollars: 10_001_001,
        total_free_microdollars: 10_000_000,
        total_charged_microdollars: 1001,
      }],
    });
  });

  it('recompute reports no drift', async () => { await h.expectNoDrift(); });
});

describe('case 07 part B: rounding edges and other number forms (u2, June 2025)', () => {
  const h = useHarness({ config: CONFIG, clock: '2025-06-03T10:00:00Z' });
  let keys;
  let freeUsed = 0;
  before(async () => {
    keys = await setup(h);
    await h.setClock('2025-06-03T10:00:00Z');
  });

  const TABLE = [
    ['0.0070000000000000001', 7000, 'digits beyond a µ$ rounded away'],
    ['7E-3', 7000, 'exponent form'],
    ['1.2345675e-2', 12_346, 'exponent form, fraction of a µ$ rounded up'],
    ['0.0000005', 1, 'tie, away from zero'],
    ['0.0000025', 3, 'tie; half-to-even would give 2'],
    ['0.0001245', 125, 'tie; a double gives 124.4999…'],
    ['0.0000004999', 0, 'below half a µ$: a real zero'],
  ];
  for (const [costText, micro, note] of TABLE) {
    it(`cost ${costText} -> row ${micro} (${note})`, async () => {
      const res = await h.search(keys.u2, costText);
      assertStatus(res, 200);
      freeUsed += micro;
      assertReceipt(res, { cost: micro, free: micro, charged: 0, remaining: 10_000_000 - freeUsed, balance: 0 });
      const row = await h.auditRow(res.requestId, { user: 'u2' });
      assert.deepEqual(rowMoney(row), { cost: micro, free: micro, charged: 0, source: 'upstream', status: 200 });
    });
  }

  it('/context with costDollars as a JSON-encoded string -> row 1,001 from upstream', async () => {
    const upstreamBody = '{"response":"…","costDollars":"{\\"total\\":0.001001}"}';
    const res = await h.proxy('context', { key: keys.u2, body: searchBody({ body: upstreamBody }) });
    assertStatus(res, 200);
    assert.equal(res.text, upstreamBody);
    freeUsed += 1001;
    assertReceipt(res, { cost: 1001, free: 1001, charged: 0, remaining: 10_000_000 - freeUsed, balance: 0 });
    const row = await h.auditRow(res.requestId, { user: 'u2' });
    assert.deepEqual(rowMoney(row), { cost: 1001, free: 1001, charged: 0, source: 'upstream', status: 200 });
    assert.equal(row.path, 'context');
  });

  it('June usage for u2: 8 rows, 27,476 µ$, all free', async () => {
    await h.expectUsage('u2', '2025-06', {
      free_allowance: 10_000_000,
      free_used: 27_476,
      contexts: { personal: { request_count: 8, total_cost: 27_476, total_free: 27_476, total_charged: 0 } },
    });
    const rows = await h.admin.usageLog({ user: 'u2', month: '2025-06' });
    assert.equal(rows.length, 8);
    for (const row of rows) assert.equal(row.free_microdollars, row.cost_microdollars);
    await h.expectAccount('user:u2', { balance: 0, held: 0 });
  });

  it('recompute reports no drift', async () => { await h.expectNoDrift(); });
});
