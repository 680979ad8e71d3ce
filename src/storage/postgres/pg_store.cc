// The PostgreSQL store: migrations, the connection pool and group commit
// (see pg_store.h).
//
// One transaction per batch, a savepoint per operation:
// - an operation that fails is rolled back to its savepoint and gets its
//   error; the others go on;
// - a unique violation means a concurrent transaction inserted the same key
//   (the first request of a month, an idempotency key): the operation is run
//   again from its savepoint and now finds, and locks, that row;
// - the first operation of a transaction waits for row locks up to 5 s; the
//   later ones 1 ms (lock_timeout), because they already hold their
//   predecessors' locks: instead of risking a deadlock with another batch,
//   the batch commits what it has and the waiting operation starts the next
//   transaction. Deadlocks that still happen (40P01) are retried the same way.
//   A worker whose transactions get cut short takes smaller batches (halved,
//   doubled back when uncontended): with a few hot users, batching them only
//   makes transactions collide;
// - if the connection breaks before COMMIT nothing was written, and the
//   batch is retried once on a new connection; if it breaks during COMMIT,
//   pg_xact_status() on a new connection tells whether it committed, so an
//   operation is never reported failed when it was written (or the reverse).
#include "storage/postgres/pg_store.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "common/log.h"
#include "storage/postgres/pg_conn.h"
#include "storage/postgres/pg_transaction.h"
#include "storage/postgres/schema.h"

namespace tollgate::storage {
namespace {

using pg::Connection;
using pg::Fault;
using pg::PgTransaction;

constexpr int64_t kFirstOperationLockTimeoutMs = 5000;
// Later operations of a transaction hold their predecessors' locks: they do
// not wait for another transaction (1 ms is the smallest lock_timeout), the
// batch commits and the waiting operation starts the next one. 25 ms ran ten
// hot users at a quarter of the rate.
constexpr int64_t kLaterOperationLockTimeoutMs = 1;
// A transaction whose operations keep coming back to rows it has locked
// (a hot user or org) commits after this many returns: each update of such a
// row lengthens the version chain that every later lookup walks.
constexpr int64_t kRelocksPerTransactionMax = 4;
constexpr int kUniqueViolationRetries = 3;
constexpr int kDeadlockRetries = 5;
// After a failed connection attempt, fail fast for this long before trying again.
constexpr auto kReconnectBackoff = std::chrono::milliseconds(200);
constexpr int kPoolSizeMax = 64;
// Operations per transaction, whatever [database] batch_max says. Each
// operation that writes is a subtransaction (past 64 the backend's cache
// overflows and every concurrent snapshot looks them up in pg_subtrans), and
// a row updated by every operation of a transaction grows a version chain
// that each later lookup walks. Measured with bench/store_bench
// (docs/BENCHMARKS.md): 100 users gained nothing past 16, and with
// synchronous commit 8-16 was best.
constexpr int64_t kOperationsPerTransactionMax = 16;

struct Pending {
  Operation op;
  std::function<void(Status)> done;
};

Status guarded(const Operation& op, Transaction& tx) {
  try {
    return op(tx);
  } catch (const std::exception& e) {
    return Internal(std::string("operation failed: ") + e.what());
  }
}

enum class TxEnd {
  kCommitted,      // ops [start, stop) are written (those that succeeded)
  kLost,           // the connection broke before COMMIT: nothing was written
  kUnknown,        // the connection broke during COMMIT
  kCommitRefused,  // the server refused the COMMIT: nothing was written
};

struct TxRun {
  TxEnd end = TxEnd::kLost;
  size_t stop = 0;
  bool contended = false;  // cut short by another transaction's locks, or by hot rows
  Status error;
  std::string xid;
};

class PgStore final : public Store {
 public:
  PgStore(std::string url, StoreOptions options) : url_(std::move(url)), options_(options) {
    settings_.synchronous_commit = options_.durable_power;
    settings_.lock_timeout_ms = kFirstOperationLockTimeoutMs;
  }
  ~PgStore() override { shutdown(); }

  Status start() {
    TG_ASSIGN(auto conn, Connection::open(url_, settings_));
    if (!options_.read_only) {
      TG_TRY(migrate(*conn));
      const int n = static_cast<int>(std::clamp<int64_t>(options_.pool_size, 1, kPoolSizeMax));
      for (int i = 0; i < n; ++i) {
        std::unique_ptr<Connection> first = i == 0 ? std::move(conn) : nullptr;
        workers_.emplace_back([this, c = std::move(first)]() mutable { worker_loop(std::move(c)); });
      }
    } else {
      read_conn_ = std::move(conn);
    }
    return Status::Ok();
  }

  void submit(Operation op, std::function<void(Status)> done) override {
    if (options_.read_only) {
      done(run_read_only(op));
      return;
    }
    {
      std::lock_guard lk(mu_);
      if (!stopping_) {
        queue_.push_back({std::move(op), std::move(done)});
        cv_.notify_one();
        return;
      }
    }
    done(Unavailable("store is shutting down"));
  }

  // Long reads (recompute, self-check) run on their own connection and thread,
  // each on a REPEATABLE READ snapshot: consistent, and no writer waits.
  void submit_read(Operation op, std::function<void(Status)> done) override {
    if (options_.read_only) {
      done(run_read_only(op));
      return;
    }
    {
      std::lock_guard lk(mu_);
      if (!stopping_) {
        if (!reader_.joinable()) reader_ = std::thread([this] { reader_loop(); });
        read_queue_.push_back({std::move(op), std::move(done)});
        cv_read_.notify_one();
        return;
      }
    }
    done(Unavailable("store is shutting down"));
  }

  Status run(Operation op) override {
    std::promise<Status> p;
    auto f = p.get_future();
    submit(std::move(op), [&p](Status s) { p.set_value(std::move(s)); });
    return f.get();
  }

  void shutdown() override {
    {
      std::lock_guard lk(mu_);
      if (stopping_) return;
      stopping_ = true;
      cv_.notify_all();
      cv_read_.notify_all();
    }
    // Workers finish what is queued first.
    for (auto& w : workers_) {
      if (w.joinable()) w.join();
    }
    if (reader_.joinable()) reader_.join();
    if (!options_.read_only) {
      log::Event("pg_store_stats")
          .num("transactions", stats_.transactions.load())
          .num("operations", stats_.operations.load())
          .num("unique_violation_reruns", stats_.unique_reruns.load())
          .num("lock_waits_deferred", stats_.deferred.load())
          .num("deadlock_retries", stats_.deadlock_retries.load())
          .num("connection_retries", stats_.connection_retries.load())
          .emit(log::Level::kInfo);
    }
  }

 private:
  // ---- connections ----------------------------------------------------------

  Result<std::unique_ptr<Connection>> connect() {
    const int64_t now_ns = std::chrono::steady_clock::now().time_since_epoch().count();
    if (now_ns < down_until_ns_.load()) {
      std::lock_guard lk(error_mu_);
      return Unavailable(last_connect_error_);
    }
    auto c = Connection::open(url_, settings_);
    if (!c.ok()) {
      down_until_ns_.store(now_ns + std::chrono::nanoseconds(kReconnectBackoff).count());
      std::lock_guard lk(error_mu_);
      last_connect_error_ = c.status().message();
    }
    return c;
  }

  // ---- migrations -------------------------------------------------------------

  Status migrate(Connection& c) {
    for (const auto& m : pg_schema::kMigrations) {
      // One transaction per migration; the advisory lock makes instances
      // that start together apply each migration once, one after the other.
      TG_TRY(c.exec(fmt::format("BEGIN; SELECT pg_advisory_xact_lock({}); "
                                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                                "name TEXT NOT NULL, applied_at_us BIGINT NOT NULL)",
                                pg_schema::kMigrationLockKey)));
      auto applied = c.query_once("SELECT COALESCE(MAX(version), 0) FROM schema_migrations", pg::Params());
      if (!applied.ok()) {
        (void)c.exec("ROLLBACK");
        return applied.status();
      }
      const int64_t current = applied->i64(0, 0);
      const int latest = pg_schema::kMigrations.back().version;
      if (current > latest) {
        (void)c.exec("ROLLBACK");
        return Internal(fmt::format("the database schema is at version {}, newer than this tollgate knows ({}); "
                                    "use a newer tollgate",
                                    current, latest));
      }
      if (m.version <= current) {
        TG_TRY(c.exec("COMMIT"));
        continue;
      }
      Status s = c.exec(m.sql);
      if (s.ok()) {
        s = c.query_once("INSERT INTO schema_migrations (version, name, applied_at_us) VALUES ($1, $2, $3)",
                         pg::Params().i64(m.version).text(std::string(m.name)).ts(SystemClock().now()))
                .status();
      }
      if (s.ok()) s = c.exec("COMMIT");
      if (!s.ok()) {
        (void)c.exec("ROLLBACK");
        return Internal(fmt::format("migration {} ({}) failed: {}", m.version, m.name, s.message()));
      }
      log::Event("migration_applied").num("version", m.version).str("name", m.name).emit(log::Level::kInfo);
    }
    return Status::Ok();
  }

  // ---- read-only stores ---------------------------------------------------------

  // One snapshot per operation (REPEATABLE READ), so a report or a recompute
  // sees a consistent state beside running writers.
  Status run_read_only(const Operation& op) {
    std::lock_guard lk(read_mu_);
    for (int attempt = 0;; ++attempt) {
      if (!read_conn_ || read_conn_->broken()) {
        auto c = Connection::open(url_, settings_);
        if (!c.ok()) return c.status();
        read_conn_ = std::move(c.value());
      }
      Status b = read_conn_->exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      if (!b.ok()) {
        if (read_conn_->broken() && attempt == 0) continue;
        return b;
      }
      PgTransaction tx(*read_conn_, /*locking=*/false);
      tx.begin_operation();
      Status s = guarded(op, tx);
      if (s.ok() && tx.failed()) s = tx.first_error();
      (void)read_conn_->exec("ROLLBACK");
      if (!s.ok() && tx.fault() == Fault::kConnection && attempt == 0) {
        read_conn_.reset();
        continue;
      }
      return s;
    }
  }

  void reader_loop() {
    while (true) {
      Pending p;
      {
        std::unique_lock lk(mu_);
        cv_read_.wait(lk, [&] { return stopping_ || !read_queue_.empty(); });
        if (read_queue_.empty()) return;
        p = std::move(read_queue_.front());
        read_queue_.pop_front();
      }
      p.done(run_read_only(p.op));
    }
  }

  // ---- group commit ---------------------------------------------------------------

  void worker_loop(std::unique_ptr<Connection> conn) {
    if (!conn) {
      auto c = connect();  // warm up; a failure is retried on the first batch
      if (c.ok()) conn = std::move(c.value());
    }
    std::vector<Pending> batch;
    // Operations to take per batch: halved when a transaction is cut short by
    // contention (a few hot users: batches of their operations only collide),
    // doubled back after a batch that was not.
    int64_t take = batch_max_;
    while (true) {
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) return;
        while (!queue_.empty() && static_cast<int64_t>(batch.size()) < take) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      const bool contended = run_batch(conn, batch);
      take = contended ? std::max<int64_t>(1, take / 2) : std::min(batch_max_, take * 2);
      batch.clear();
    }
  }

  static void deliver(std::vector<Pending>& batch, std::vector<Status>& results, size_t from, size_t to) {
    for (size_t i = from; i < to; ++i) batch[i].done(std::move(results[i]));
  }

  // Returns whether a transaction of it was cut short by contention.
  bool run_batch(std::unique_ptr<Connection>& conn, std::vector<Pending>& batch) {
    bool contended = false;
    std::vector<Status> results(batch.size());
    size_t start = 0;
    bool retried_connection = false;
    while (start < batch.size()) {
      if (!conn || conn->broken()) {
        conn.reset();
        auto c = connect();
        if (!c.ok()) {
          for (size_t i = start; i < batch.size(); ++i) results[i] = c.status();
          deliver(batch, results, start, batch.size());
          return contended;
        }
        conn = std::move(c.value());
      }
      TxRun r = run_transaction(*conn, batch, start, batch.size(), results);
      contended |= r.contended;
      switch (r.end) {
        case TxEnd::kCommitted:
          deliver(batch, results, start, r.stop);
          start = r.stop;
          break;
        case TxEnd::kLost:
          conn.reset();
          stats_.connection_retries++;
          if (!retried_connection) {
            retried_connection = true;  // e.g. the server restarted since this connection was opened
            break;
          }
          for (size_t i = start; i < batch.size(); ++i) results[i] = Unavailable(r.error.message());
          deliver(batch, results, start, batch.size());
          return contended;
        case TxEnd::kUnknown: {
          conn.reset();
          auto committed = resolve_commit(r.xid);
          if (committed.ok() && *committed) {
            deliver(batch, results, start, r.stop);
            start = r.stop;
          } else if (committed.ok() && !retried_connection) {
            retried_connection = true;  // it did not commit: run it again
          } else {
            for (size_t i = start; i < r.stop; ++i) {
              results[i] = Unavailable("the database connection broke during COMMIT and the outcome is unknown: " +
                                       r.error.message());
            }
            deliver(batch, results, start, r.stop);
            start = r.stop;
          }
          break;
        }
        case TxEnd::kCommitRefused:
          // Nothing of this transaction was written: each operation alone,
          // so one bad write cannot fail its neighbours.
          for (size_t i = start; i < r.stop; ++i) {
            if (!conn || conn->broken()) {
              results[i] = Unavailable(r.error.message());
            } else {
              TxRun alone = run_transaction(*conn, batch, i, i + 1, results);
              if (alone.end != TxEnd::kCommitted) results[i] = alone.error.ok() ? r.error : alone.error;
              if (alone.end == TxEnd::kLost || alone.end == TxEnd::kUnknown) conn.reset();
            }
            deliver(batch, results, i, i + 1);
          }
          start = r.stop;
          break;
      }
    }
    return contended;
  }

  // Runs batch[start, end) in one transaction, as far as it gets; fills
  // results for the operations it finished (ops [start, stop)).
  TxRun run_transaction(Connection& c, std::vector<Pending>& batch, size_t start, size_t end,
                        std::vector<Status>& results) {
    TxRun out;
    out.stop = start;
    auto begin = c.exec_all("BEGIN ISOLATION LEVEL READ COMMITTED; SELECT pg_current_xact_id()::text; SAVEPOINT op");
    if (!begin.ok()) {
      out.error = begin.status();
      return out;  // kLost: a fresh connection is tried
    }
    for (const auto& r : *begin) {
      if (r.rows() == 1) out.xid = r.text(0, 0);
    }
    PgTransaction tx(c, /*locking=*/true);
    size_t i = start;
    while (i < end) {
      Status s;
      bool stop_here = false;
      for (int attempt = 0;; ++attempt) {
        tx.begin_operation();
        // In a batch, writes go out pipelined (libpq pipeline mode): their
        // answers are read with the next read and at the operation's end.
        // Measured: +12% for a batch, +25% for a hot user's batches; a
        // transaction of one operation gains nothing (it waits at COMMIT).
        if (end - start > 1) c.begin_pipeline();
        s = guarded(batch[i].op, tx);
        if (Status p = c.end_pipeline(); !p.ok()) tx.note_failure(p, c.last_fault());
        if (s.ok() && !tx.failed()) break;
        if (s.ok()) s = tx.first_error();  // it ignored a failed statement
        const Fault f = tx.fault();
        if (f == Fault::kConnection || c.broken()) {
          out.error = s;
          return out;
        }
        Status rb = c.exec("ROLLBACK TO SAVEPOINT op");
        if (!rb.ok()) {
          out.error = rb;
          return out;
        }
        if (f == Fault::kUniqueViolation && attempt < kUniqueViolationRetries) {
          stats_.unique_reruns++;
          continue;
        }
        if (f == Fault::kLockNotAvailable || f == Fault::kDeadlock || f == Fault::kSerialization) {
          if (i > start) {
            stats_.deferred++;
            out.contended = true;
            stop_here = true;  // commit the others; this one starts the next transaction
            break;
          }
          if (f != Fault::kLockNotAvailable && attempt < kDeadlockRetries) {
            stats_.deadlock_retries++;
            std::this_thread::sleep_for(std::chrono::milliseconds(1 + jitter_ms(10)));
            continue;
          }
        }
        break;  // the operation's own outcome
      }
      if (stop_here) break;
      if (s.ok()) tx.operation_committed();
      results[i] = std::move(s);
      ++i;
      // Rows updated by operation after operation grow version chains that
      // every later lookup walks: with a hot user, commit early instead.
      if (tx.relocks() >= kRelocksPerTransactionMax) {
        out.contended = true;
        break;
      }
      if (i < end) {
        Status next = c.exec(i == start + 1 ? fmt::format("RELEASE SAVEPOINT op; SET LOCAL lock_timeout = {}; "
                                                          "SAVEPOINT op",
                                                          kLaterOperationLockTimeoutMs)
                                            : std::string("RELEASE SAVEPOINT op; SAVEPOINT op"));
        if (!next.ok()) {
          out.error = next;
          return out;
        }
      }
    }
    out.stop = i;
    auto commit = c.exec_all("COMMIT");
    stats_.transactions++;
    stats_.operations += i - start;
    if (commit.ok()) {
      // COMMIT of a transaction that the server had already aborted answers ROLLBACK.
      if (!commit->empty() && commit->back().command() == "ROLLBACK") {
        out.end = TxEnd::kCommitRefused;
        out.error = Unavailable("postgresql: the transaction was rolled back at COMMIT");
        return out;
      }
      out.end = TxEnd::kCommitted;
      return out;
    }
    out.error = commit.status();
    if (c.last_fault() == Fault::kConnection) {
      out.end = TxEnd::kUnknown;
    } else {
      out.end = TxEnd::kCommitRefused;
    }
    return out;
  }

  // Whether transaction `xid` committed, asked on a new connection.
  Result<bool> resolve_commit(const std::string& xid) {
    if (xid.empty()) return Unavailable("no transaction id to check");
    auto c = connect();
    if (!c.ok()) return c.status();
    for (int i = 0; i < 50; ++i) {
      auto r = (*c)->query_once("SELECT pg_xact_status($1::xid8)", pg::Params().text(xid));
      if (!r.ok()) return r.status();
      const std::string st = r->null(0, 0) ? "" : r->text(0, 0);
      if (st == "committed") return true;
      if (st == "aborted") return false;
      if (st != "in progress") return Unavailable("transaction status unknown: " + st);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Unavailable("transaction still in progress");
  }

  int jitter_ms(int max) {
    std::lock_guard lk(error_mu_);
    return std::uniform_int_distribution<int>(0, max)(rng_);
  }

  const std::string url_;
  const StoreOptions options_;
  const int64_t batch_max_ = std::clamp<int64_t>(options_.batch_max, 1, kOperationsPerTransactionMax);
  pg::SessionSettings settings_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  std::mutex read_mu_;
  std::unique_ptr<Connection> read_conn_;
  std::condition_variable cv_read_;
  std::deque<Pending> read_queue_;  // guarded by mu_
  std::thread reader_;

  struct Stats {
    std::atomic<int64_t> transactions{0}, operations{0}, unique_reruns{0}, deferred{0}, deadlock_retries{0},
        connection_retries{0};
  } stats_;

  std::atomic<int64_t> down_until_ns_{0};
  std::mutex error_mu_;
  std::string last_connect_error_;
  std::minstd_rand rng_{std::random_device{}()};
};

}  // namespace

Result<std::unique_ptr<Store>> open_pg_store(const std::string& url, const StoreOptions& options) {
  auto store = std::make_unique<PgStore>(url, options);
  TG_TRY(store->start());
  return std::unique_ptr<Store>(std::move(store));
}

namespace pg_admin {

std::string with_database(const std::string& url, const std::string& dbname) {
  // postgresql://[userinfo@]host[:port][/dbname][?params]
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  const size_t authority = scheme_end + 3;
  const size_t query = url.find('?', authority);
  const size_t path = url.find('/', authority);
  const size_t host_end = path != std::string::npos && (query == std::string::npos || path < query) ? path
                          : query != std::string::npos                                             ? query
                                                                                                    : url.size();
  std::string out = url.substr(0, host_end) + "/" + dbname;
  if (query != std::string::npos) out += url.substr(query);
  return out;
}

Status create_database(const std::string& url, const std::string& dbname) {
  TG_ASSIGN(auto c, pg::Connection::open(url, pg::SessionSettings{}));
  // CREATE DATABASE takes no parameters; the name is quoted as an identifier.
  return c->exec("CREATE DATABASE " + pg::quote_ident(dbname));
}

Status drop_database(const std::string& url, const std::string& dbname) {
  TG_ASSIGN(auto c, pg::Connection::open(url, pg::SessionSettings{}));
  return c->exec("DROP DATABASE IF EXISTS " + pg::quote_ident(dbname) + " WITH (FORCE)");
}

}  // namespace pg_admin

}  // namespace tollgate::storage
