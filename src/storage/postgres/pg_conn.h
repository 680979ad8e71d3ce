// One libpq connection: connecting with fail-fast defaults, typed text
// parameters, results, a per-connection prepared-statement cache, and the
// classification of PostgreSQL errors into Status codes plus a Fault that
// tells the store whether an operation may be retried.
//
// Only files in storage/postgres/ include libpq-fe.h. A Connection is used by
// one thread at a time; it owns its PGconn.
#pragma once

#include <libpq-fe.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"

namespace tollgate::storage::pg {

// Why a statement failed, as far as the store's retry logic cares.
enum class Fault {
  kNone,
  kUniqueViolation,   // 23505: a concurrent insert of the same key won; re-run the operation
  kLockNotAvailable,  // 55P03: lock_timeout inside a batch; run the operation in a later transaction
  kDeadlock,          // 40P01
  kSerialization,     // 40001
  kConnection,        // the connection is gone or the server is shutting down
  kOther,
};

// Positional text parameters ($1, $2, ...); nullopt is SQL NULL.
class Params {
 public:
  Params& text(std::string v) {
    values_.emplace_back(std::move(v));
    return *this;
  }
  Params& opt_text(const std::optional<std::string>& v) {
    values_.push_back(v);
    return *this;
  }
  Params& i64(int64_t v) { return text(std::to_string(v)); }
  Params& money(Microdollars v) { return i64(v.value()); }
  Params& ts(Timestamp t) { return i64(t.micros); }
  Params& opt_ts(const std::optional<Timestamp>& t) {
    if (t) return ts(*t);
    values_.emplace_back(std::nullopt);
    return *this;
  }
  Params& boolean(bool v) { return text(v ? "t" : "f"); }
  int size() const { return static_cast<int>(values_.size()); }
  std::vector<const char*> pointers() const {
    std::vector<const char*> out;
    out.reserve(values_.size());
    for (const auto& v : values_) out.push_back(v ? v->c_str() : nullptr);
    return out;
  }

 private:
  std::vector<std::optional<std::string>> values_;
};

// A query result (owned). Column accessors take (row, column).
class PgResult {
 public:
  PgResult() = default;
  explicit PgResult(PGresult* r) : r_(r, &PQclear) {}
  int rows() const { return r_ ? PQntuples(r_.get()) : 0; }
  // The command tag ("COMMIT", "ROLLBACK", "INSERT 0 1", ...).
  std::string command() const { return r_ ? PQcmdStatus(r_.get()) : ""; }
  bool null(int row, int col) const { return PQgetisnull(r_.get(), row, col) != 0; }
  std::string text(int row, int col) const {
    return std::string(PQgetvalue(r_.get(), row, col), static_cast<size_t>(PQgetlength(r_.get(), row, col)));
  }
  std::optional<std::string> opt_text(int row, int col) const {
    if (null(row, col)) return std::nullopt;
    return text(row, col);
  }
  int64_t i64(int row, int col) const;
  bool boolean(int row, int col) const { return PQgetvalue(r_.get(), row, col)[0] == 't'; }
  Microdollars money(int row, int col) const { return Microdollars(i64(row, col)); }
  Timestamp ts(int row, int col) const { return Timestamp{i64(row, col)}; }
  std::optional<Timestamp> opt_ts(int row, int col) const {
    if (null(row, col)) return std::nullopt;
    return ts(row, col);
  }

 private:
  std::shared_ptr<PGresult> r_;
};

struct SessionSettings {
  bool synchronous_commit = false;  // durability "power": on
  int64_t lock_timeout_ms = 5000;   // default for statements outside a batch's first operation
};

class Connection {
 public:
  // Connects to `url` (postgresql://...). `dbname_override`, if set, replaces
  // the URL's database. Unless the URL says otherwise, connecting gives up
  // after 2 s and TCP keepalives detect a dead peer, so an unreachable
  // server costs seconds, not minutes.
  static Result<std::unique_ptr<Connection>> open(const std::string& url, const SessionSettings& settings,
                                                  const std::optional<std::string>& dbname_override = {});
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One or more statements without parameters (simple query protocol).
  Status exec(std::string_view sql);
  // Like exec, returning every statement's result in order.
  Result<std::vector<PgResult>> exec_all(std::string_view sql);
  // A parameterized statement, prepared once per connection and cached by its text.
  Result<PgResult> query(const std::string& sql, const Params& params);
  // A parameterized statement run without preparing (for one-off statements).
  Result<PgResult> query_once(const std::string& sql, const Params& params);

  // Pipelining (libpq pipeline mode). Between begin_pipeline() and
  // end_pipeline(), write() sends a statement without waiting for its
  // answer; the next query() or end_pipeline() collects the answers in
  // order, so a run of writes costs no round trip of its own. A failed write
  // is reported by that next call (and every statement after it in the
  // pipeline fails as aborted); end_pipeline() returns the first failure.
  void begin_pipeline();
  Status write(const std::string& sql, const Params& params, bool prepare = true);
  Status end_pipeline();
  bool pipelining() const { return pipeline_; }

  // The Fault of the last failed call (kNone after a success).
  Fault last_fault() const { return last_fault_; }
  // True once the connection is unusable (dropped, or the server went away).
  bool broken() const;
  PGconn* raw() { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}
  Result<PgResult> check(PGresult* r, std::string_view what);

  // Pipeline mode: sends a statement (preparing it first if new), expecting its answer.
  Status send(const std::string& sql, const Params& params, bool prepare, bool keep);
  // Reads the answers of everything sent, in order; returns the kept one.
  Result<PgResult> collect();

  // One answer the pipeline owes us.
  struct Expected {
    bool prepare = false;     // the answer to a PQsendPrepare
    bool keep = false;        // the result a query() returns
    std::string sql;          // for messages, and to forget a failed prepare
  };

  PGconn* conn_;
  Fault last_fault_ = Fault::kNone;
  std::unordered_map<std::string, std::string> prepared_;  // SQL text -> statement name
  size_t statements_named_ = 0;
  bool pipeline_ = false;
  std::vector<Expected> expected_;
  std::optional<Status> pipeline_error_;  // the first failure since begin_pipeline()
  Fault pipeline_fault_ = Fault::kNone;
};

// The Status for a failed result (or a null result on a broken connection),
// and its Fault.
Status error_status(PGconn* conn, const PGresult* r, std::string_view what, Fault& fault);

// Double-quoted SQL identifier (for DDL on names tollgate makes itself).
std::string quote_ident(std::string_view name);

}  // namespace tollgate::storage::pg
