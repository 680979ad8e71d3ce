// Recompute throughput: replays one owner's history of N audit rows (plus
// external usage and expiring grants) from a SQLite file, through the same
// streaming cursors the product uses, and reports events per second.
// Also measures the pure ledger arithmetic of one settlement.
#include <benchmark/benchmark.h>

#include <filesystem>
#include <sqlite3.h>

#include "common/ids.h"
#include "ledger/ledger.h"
#include "ledger/operations.h"
#include "ledger/recompute.h"
#include "storage/store.h"

namespace tollgate {
namespace {

Timestamp at(const char* t) { return parse_rfc3339(t).value(); }

// A database with one owner, `rows` audit rows spread over a year and a few
// expiring grants; built once per size with raw SQL (fast), then reused.
std::string build_db(int64_t rows) {
  auto path = std::filesystem::temp_directory_path() / ("tollgate-bench-" + std::to_string(rows) + ".db");
  if (std::filesystem::exists(path)) return path.string();
  {
    auto store = storage::open_store("sqlite:" + path.string(), {});
    if (!store.ok()) std::abort();
    if (!store.value()->run(ledger::create_user({"u1", {}, false, at("2025-01-01T00:00:00Z")})).ok()) std::abort();
    for (int g = 0; g < 12; ++g) {
      ledger::GrantInput in;
      in.owner = "user:u1";
      in.amount_microdollars = 1'000'000'000;
      in.effective_at = Timestamp{at("2025-01-01T00:00:00Z").micros + g * 30LL * 86'400'000'000};
      in.expires_at = Timestamp{in.effective_at->micros + 45LL * 86'400'000'000};
      in.idempotency_key = "g" + std::to_string(g);
      in.request_fingerprint = in.idempotency_key;
      in.now = at("2025-01-01T00:00:00Z");
      ledger::GrantOutcome out;
      if (!store.value()->run(ledger::create_grant(in, out)).ok()) std::abort();
    }
  }
  sqlite3* db = nullptr;
  sqlite3_open(path.c_str(), &db);
  sqlite3_exec(db, "PRAGMA synchronous=OFF; BEGIN", nullptr, nullptr, nullptr);
  sqlite3_stmt* st = nullptr;
  sqlite3_prepare_v2(db,
                     "INSERT INTO audit_log (request_id, user_id, context, owner, path, month, arrived_at_us, "
                     "settled_at_us, upstream_status, cost_microdollars, free_microdollars, charged_microdollars, "
                     "cost_source) VALUES (?, 'u1', 'personal', 'user:u1', 'search', ?, ?, ?, 200, 7000, 0, 7000, "
                     "'upstream')",
                     -1, &st, nullptr);
  const int64_t start = at("2025-01-01T00:00:00Z").micros;
  const int64_t step = 365LL * 86'400'000'000 / rows;
  for (int64_t i = 0; i < rows; ++i) {
    Timestamp t{start + i * step};
    std::string id = std::to_string(1'000'000'000 + i);
    std::string month = month_of(t).to_string();
    sqlite3_bind_text(st, 1, id.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, month.c_str(), -1, SQLITE_TRANSIENT);
    sqlite3_bind_int64(st, 3, t.micros);
    sqlite3_bind_int64(st, 4, t.micros);
    sqlite3_step(st);
    sqlite3_reset(st);
  }
  sqlite3_finalize(st);
  sqlite3_exec(db, "COMMIT", nullptr, nullptr, nullptr);
  sqlite3_close(db);
  return path.string();
}

void BM_RecomputeOwner(benchmark::State& state) {
  const int64_t rows = state.range(0);
  auto path = build_db(rows);
  storage::StoreOptions ro;
  ro.read_only = true;
  auto store = storage::open_store("sqlite:" + path, ro);
  if (!store.ok()) {
    state.SkipWithError(store.status().message().c_str());
    return;
  }
  int64_t events = 0;
  for (auto _ : state) {
    ledger::OwnerReplay replay;
    Status s = store.value()->run([&](storage::Transaction& tx) {
      return ledger::replay_owner(tx, "user:u1", at("2026-06-01T00:00:00Z"), replay);
    });
    if (!s.ok()) state.SkipWithError(s.message().c_str());
    events += replay.events;
    benchmark::DoNotOptimize(replay.debt);
  }
  state.counters["events_per_s"] = benchmark::Counter(static_cast<double>(events), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_RecomputeOwner)->Arg(100'000)->Arg(1'000'000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The arithmetic of one admission and settlement (figures, hold, split, draw).
void BM_LedgerCoreSettlement(benchmark::State& state) {
  std::vector<storage::GrantRow> grants(3);
  for (int i = 0; i < 3; ++i) {
    grants[i].id = "g" + std::to_string(i);
    grants[i].amount = grants[i].remaining = Microdollars(INT64_MAX / 8);
    grants[i].effective_at = at("2025-01-01T00:00:00Z");
    if (i < 2) grants[i].expires_at = Timestamp{at("2030-01-01T00:00:00Z").micros + i};
    grants[i].activated = true;
  }
  storage::AllowanceRow allowance{"u1", "2025-06", Microdollars(10'000'000), kZero, kZero, {}};
  const Timestamp now = at("2025-06-02T00:00:00Z");
  std::vector<size_t> touched;
  for (auto _ : state) {
    auto fig = ledger::admission_figures(ledger::unheld_free(allowance), ledger::balance_at(grants, kZero, now), kZero);
    auto hold = ledger::hold_for(Microdollars(7000), fig);
    allowance.free_held += hold.free;
    auto split = ledger::split_cost(Microdollars(7000), hold.free, ledger::unheld_free(allowance));
    allowance.free_held -= hold.free;
    allowance.free_used += split.free;
    if (allowance.free_used >= allowance.allowance) allowance.free_used = kZero;  // a new month
    touched.clear();
    benchmark::DoNotOptimize(ledger::draw(grants, split.charged, now, touched));
  }
  state.counters["settlements_per_s"] = benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_LedgerCoreSettlement);

}  // namespace
}  // namespace tollgate

BENCHMARK_MAIN();
