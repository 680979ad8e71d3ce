// Store throughput: admitted-and-settled requests per second (one admit and
// one settle operation each, the proxy's two durable writes) against any
// store URL, with group commit on or off (batch_max), a number of requests in
// flight, and several stores on one database (as several tollgate instances).
//
//   store_bench --database URL [--fresh] [--batch-max N] [--pool-size N]
//               [--stores K] [--inflight C] [--requests R] [--users U] [--power]
//
// --fresh: URL names a PostgreSQL server; a new database is made for the run
// and dropped afterwards. U users share the load: U = 1 is the worst case of
// contention (every operation locks the same allowance and account rows).
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/ids.h"
#include "config/config.h"
#include "ledger/operations.h"
#include "storage/postgres/pg_store.h"
#include "storage/store.h"

namespace tollgate {
namespace {

struct Options {
  std::string database;
  bool fresh = false;
  int64_t batch_max = 256;
  int64_t pool_size = 4;
  int stores = 1;
  int inflight = 64;
  int requests = 20000;
  int users = 100;
  bool power = false;
};

// One request in flight: its inputs and outcomes live here while the store
// runs its operations.
struct Chain {
  ledger::AdmitInput in;
  ledger::AdmitOutcome admitted;
  ledger::SettleInput settle;
  ledger::SettleOutcome settled;
  std::chrono::steady_clock::time_point started;
};

class Bench {
 public:
  Bench(const Options& o, std::vector<std::unique_ptr<storage::Store>>& stores) : o_(o), stores_(stores) {
    config_.hold_timeout_ms = 120'000;
  }

  void run() {
    chains_.resize(static_cast<size_t>(o_.inflight));
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t c = 0; c < chains_.size(); ++c) next(c);
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return running_ == 0; });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::sort(latencies_us_.begin(), latencies_us_.end());
    auto pct = [&](double p) {
      return latencies_us_.empty() ? 0.0
                                   : latencies_us_[static_cast<size_t>(p * static_cast<double>(latencies_us_.size() - 1))] / 1000.0;
    };
    fmt::print("{} requests ({} admitted, {} failed) in {:.2f} s: {:.0f} requests/s; "
               "admit+settle latency p50 {:.1f} ms, p99 {:.1f} ms\n",
               done_.load(), admitted_.load(), failed_.load(), s, static_cast<double>(done_.load()) / s, pct(0.5),
               pct(0.99));
  }

 private:
  void next(size_t c) {
    const int i = issued_.fetch_add(1);
    if (i >= o_.requests) {
      std::lock_guard lk(mu_);
      if (--running_ == 0) cv_.notify_all();
      return;
    }
    Chain& ch = chains_[c];
    const std::string user = fmt::format("u{}", i % o_.users);
    const Timestamp now = SystemClock().now();
    ch.in = ledger::AdmitInput{};
    ch.in.key_id = "key_" + user;
    ch.in.secret_sha256 = sha256_hex("secret-" + user);
    ch.in.request_id = new_request_id(now);
    ch.in.path = "search";
    ch.in.arrived_at = now;
    ch.in.estimate = Microdollars(7000);
    ch.started = std::chrono::steady_clock::now();
    storage::Store& store = *stores_[static_cast<size_t>(i) % stores_.size()];
    store.submit(ledger::admit(config_, ch.in, ch.admitted), [this, c, &store](Status s) {
      Chain& ch = chains_[c];
      if (!s.ok() || ch.admitted.result != ledger::AdmitResult::kAdmitted) {
        if (!s.ok()) fmt::print(stderr, "admit: {}\n", s.message());
        finish(c, false);
        return;
      }
      ch.settle = ledger::SettleInput{ch.in.request_id, Microdollars(7000), "upstream", 200, SystemClock().now()};
      store.submit(ledger::settle(ch.settle, ch.settled), [this, c](Status s2) {
        if (!s2.ok()) fmt::print(stderr, "settle: {}\n", s2.message());
        finish(c, s2.ok());
      });
    });
  }

  void finish(size_t c, bool ok) {
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - chains_[c].started).count();
    {
      std::lock_guard lk(mu_);
      latencies_us_.push_back(us);
    }
    done_++;
    (ok ? admitted_ : failed_)++;
    next(c);
  }

  const Options& o_;
  std::vector<std::unique_ptr<storage::Store>>& stores_;
  Config config_;
  std::vector<Chain> chains_;
  std::atomic<int> issued_{0}, done_{0}, admitted_{0}, failed_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  int running_ = 0;
  std::vector<double> latencies_us_;

 public:
  void set_running(int n) { running_ = n; }
};

int main_(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto arg = [&](const char* name) { return std::strcmp(argv[i], name) == 0 && i + 1 < argc; };
    if (arg("--database")) o.database = argv[++i];
    else if (std::strcmp(argv[i], "--fresh") == 0) o.fresh = true;
    else if (std::strcmp(argv[i], "--power") == 0) o.power = true;
    else if (arg("--batch-max")) o.batch_max = std::atol(argv[++i]);
    else if (arg("--pool-size")) o.pool_size = std::atol(argv[++i]);
    else if (arg("--stores")) o.stores = std::atoi(argv[++i]);
    else if (arg("--inflight")) o.inflight = std::atoi(argv[++i]);
    else if (arg("--requests")) o.requests = std::atoi(argv[++i]);
    else if (arg("--users")) o.users = std::atoi(argv[++i]);
    else {
      fmt::print(stderr, "unknown argument {}\n", argv[i]);
      return 2;
    }
  }
  if (o.database.empty()) {
    fmt::print(stderr, "--database URL is required\n");
    return 2;
  }
  std::string url = o.database;
  std::string fresh_db;
  if (o.fresh) {
    fresh_db = "tollgate_bench_" + random_hex(4);
    if (Status s = storage::pg_admin::create_database(o.database, fresh_db); !s.ok()) {
      fmt::print(stderr, "{}\n", s.message());
      return 2;
    }
    url = storage::pg_admin::with_database(o.database, fresh_db);
  }
  storage::StoreOptions so;
  so.batch_max = o.batch_max;
  so.pool_size = o.pool_size;
  so.durable_power = o.power;
  std::vector<std::unique_ptr<storage::Store>> stores;
  for (int i = 0; i < o.stores; ++i) {
    auto s = storage::open_store(url, so);
    if (!s.ok()) {
      fmt::print(stderr, "{}\n", s.status().message());
      return 2;
    }
    stores.push_back(std::move(s.value()));
  }
  // Users with a key and credit for the whole run (the allowance runs out first).
  const Timestamp t0 = SystemClock().now();
  for (int u = 0; u < o.users; ++u) {
    const std::string id = fmt::format("u{}", u);
    Status s = stores[0]->run(ledger::create_user(storage::UserRow{id, {}, false, t0}));
    if (s.ok()) s = stores[0]->run(ledger::create_api_key({"key_" + id, id, sha256_hex("secret-" + id), t0, {}}));
    ledger::GrantInput g;
    g.owner = "user:" + id;
    g.amount_microdollars = 1'000'000'000'000;
    g.idempotency_key = "bench-" + id;
    g.request_fingerprint = g.idempotency_key;
    g.now = t0;
    ledger::GrantOutcome out;
    if (s.ok()) s = stores[0]->run(ledger::create_grant(g, out));
    if (!s.ok()) {
      fmt::print(stderr, "setup: {}\n", s.message());
      return 2;
    }
  }
  fmt::print("{}: batch_max {}, pool_size {}, stores {}, in flight {}, users {}, durability {}\n",
             storage::redacted_url(o.fresh ? o.database + " (fresh database)" : o.database), o.batch_max,
             o.pool_size, o.stores, o.inflight, o.users, o.power ? "power" : "process");
  Bench bench(o, stores);
  bench.set_running(o.inflight);
  bench.run();
  for (auto& s : stores) s->shutdown();
  stores.clear();
  if (!fresh_db.empty()) (void)storage::pg_admin::drop_database(o.database, fresh_db);
  return 0;
}

}  // namespace
}  // namespace tollgate

int main(int argc, char** argv) { return tollgate::main_(argc, argv); }
