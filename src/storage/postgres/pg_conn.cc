// libpq connection, results and error classification (see pg_conn.h).
#include "storage/postgres/pg_conn.h"

#include <fmt/format.h>

#include <charconv>
#include <cstring>

namespace tollgate::storage::pg {
namespace {

void ignore_notice(void*, const char*) {}

bool starts_with(const char* s, const char* prefix) { return s && std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

}  // namespace

int64_t PgResult::i64(int row, int col) const {
  const char* p = PQgetvalue(r_.get(), row, col);
  int64_t v = 0;
  std::from_chars(p, p + PQgetlength(r_.get(), row, col), v);
  return v;
}

Status error_status(PGconn* conn, const PGresult* r, std::string_view what, Fault& fault) {
  const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
  std::string msg = r ? PQresultErrorMessage(r) : "";
  if (msg.empty() && conn) msg = PQerrorMessage(conn);
  while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
  std::string text = fmt::format("postgresql {}: {}{}", what, msg, state ? fmt::format(" ({})", state) : "");
  const bool dead = conn == nullptr || PQstatus(conn) == CONNECTION_BAD;
  // Class 08: connection exceptions; 57P01-57P03: administrator shutdown,
  // crash shutdown, cannot connect now (starting or stopping).
  if (dead || state == nullptr || starts_with(state, "08") || starts_with(state, "57P")) {
    fault = Fault::kConnection;
    return Unavailable(text);
  }
  if (std::strcmp(state, "23505") == 0) {
    fault = Fault::kUniqueViolation;
    return Conflict(text);
  }
  if (std::strcmp(state, "55P03") == 0) {
    fault = Fault::kLockNotAvailable;
    return Unavailable(text);
  }
  if (std::strcmp(state, "40P01") == 0) {
    fault = Fault::kDeadlock;
    return Unavailable(text);
  }
  if (std::strcmp(state, "40001") == 0) {
    fault = Fault::kSerialization;
    return Unavailable(text);
  }
  fault = Fault::kOther;
  // Integrity constraints (class 23) are conflicts, as with SQLite; running
  // out of resources (53) or a cancelled statement (57014) is transient.
  if (starts_with(state, "23")) return Conflict(text);
  if (starts_with(state, "53") || std::strcmp(state, "57014") == 0) return Unavailable(text);
  return Internal(text);
}

std::string quote_ident(std::string_view name) {
  std::string out = "\"";
  for (char c : name) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

Result<std::unique_ptr<Connection>> Connection::open(const std::string& url, const SessionSettings& settings,
                                                     const std::optional<std::string>& dbname_override) {
  // Entries before "dbname" are defaults the URL may override; entries after
  // it override the URL.
  std::vector<const char*> keys = {"connect_timeout", "application_name", "keepalives", "keepalives_idle",
                                   "keepalives_interval", "keepalives_count", "client_encoding", "dbname"};
  std::vector<const char*> values = {"2", "tollgate", "1", "10", "5", "3", "UTF8", url.c_str()};
  if (dbname_override) {
    keys.push_back("dbname");
    values.push_back(dbname_override->c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  PGconn* conn = PQconnectdbParams(keys.data(), values.data(), /*expand_dbname=*/1);
  if (conn == nullptr) return Unavailable("postgresql: out of memory while connecting");
  if (PQstatus(conn) != CONNECTION_OK) {
    std::string msg = PQerrorMessage(conn);
    PQfinish(conn);
    while (!msg.empty() && (msg.back() == '\n' || msg.back() == ' ')) msg.pop_back();
    return Unavailable("postgresql: cannot connect: " + msg);
  }
  PQsetNoticeProcessor(conn, ignore_notice, nullptr);
  std::unique_ptr<Connection> c(new Connection(conn));
  // Times are written by tollgate (never the server's now()), so the session
  // time zone only matters to operators' ad-hoc queries; UTC keeps them plain.
  // A session left idle inside a transaction (a frozen process) loses its
  // locks after a minute instead of blocking other instances forever.
  TG_TRY(c->exec(fmt::format("SET synchronous_commit = {}; SET TIME ZONE 'UTC'; SET lock_timeout = {}; "
                             "SET idle_in_transaction_session_timeout = 60000; SET client_min_messages = warning",
                             settings.synchronous_commit ? "on" : "off", settings.lock_timeout_ms)));
  return c;
}

Connection::~Connection() { PQfinish(conn_); }

bool Connection::broken() const { return PQstatus(conn_) == CONNECTION_BAD; }

Result<PgResult> Connection::check(PGresult* r, std::string_view what) {
  ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
    last_fault_ = Fault::kNone;
    return PgResult(r);
  }
  Status s = error_status(conn_, r, what, last_fault_);
  PQclear(r);
  return s;
}

Status Connection::exec(std::string_view sql) {
  auto all = exec_all(sql);
  return all.status();
}

Result<std::vector<PgResult>> Connection::exec_all(std::string_view sql) {
  std::string text(sql);
  if (!PQsendQuery(conn_, text.c_str())) {
    Status s = error_status(conn_, nullptr, "send", last_fault_);
    return s;
  }
  std::vector<PgResult> out;
  std::optional<Status> first_error;
  Fault first_fault = Fault::kNone;
  // Every result must be read before the connection can be used again.
  while (PGresult* r = PQgetResult(conn_)) {
    auto checked = check(r, text.size() > 60 ? std::string_view(text).substr(0, 60) : std::string_view(text));
    if (!checked.ok()) {
      if (!first_error) {
        first_error = checked.status();
        first_fault = last_fault_;
      }
      continue;
    }
    out.push_back(std::move(checked.value()));
  }
  if (first_error) {
    last_fault_ = first_fault;
    return *first_error;
  }
  if (PQstatus(conn_) == CONNECTION_BAD) {
    return error_status(conn_, nullptr, "exec", last_fault_);
  }
  return out;
}

Result<PgResult> Connection::query(const std::string& sql, const Params& params) {
  if (pipeline_) {
    TG_TRY(send(sql, params, /*prepare=*/true, /*keep=*/true));
    return collect();
  }
  auto it = prepared_.find(sql);
  if (it == prepared_.end()) {
    std::string name = fmt::format("tg{}", statements_named_++);
    auto prep = check(PQprepare(conn_, name.c_str(), sql.c_str(), params.size(), nullptr), "prepare");
    if (!prep.ok()) return prep.status();
    it = prepared_.emplace(sql, std::move(name)).first;
  }
  auto ptrs = params.pointers();
  return check(PQexecPrepared(conn_, it->second.c_str(), params.size(), ptrs.data(), nullptr, nullptr, 0),
               sql.size() > 60 ? std::string_view(sql).substr(0, 60) : std::string_view(sql));
}

Result<PgResult> Connection::query_once(const std::string& sql, const Params& params) {
  if (pipeline_) {
    TG_TRY(send(sql, params, /*prepare=*/false, /*keep=*/true));
    return collect();
  }
  auto ptrs = params.pointers();
  return check(PQexecParams(conn_, sql.c_str(), params.size(), nullptr, ptrs.data(), nullptr, nullptr, 0),
               sql.size() > 60 ? std::string_view(sql).substr(0, 60) : std::string_view(sql));
}

void Connection::begin_pipeline() {
  // Only from an idle connection; a broken one fails at its first statement.
  pipeline_ = PQenterPipelineMode(conn_) == 1;
  expected_.clear();
  pipeline_error_.reset();
  pipeline_fault_ = Fault::kNone;
}

Status Connection::send(const std::string& sql, const Params& params, bool prepare, bool keep) {
  auto ptrs = params.pointers();
  int sent = 0;
  if (prepare) {
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      std::string name = fmt::format("tg{}", statements_named_++);
      if (!PQsendPrepare(conn_, name.c_str(), sql.c_str(), params.size(), nullptr)) {
        return error_status(conn_, nullptr, "send", last_fault_);
      }
      expected_.push_back(Expected{true, false, sql});
      it = prepared_.emplace(sql, std::move(name)).first;
    }
    sent = PQsendQueryPrepared(conn_, it->second.c_str(), params.size(), ptrs.data(), nullptr, nullptr, 0);
  } else {
    sent = PQsendQueryParams(conn_, sql.c_str(), params.size(), nullptr, ptrs.data(), nullptr, nullptr, 0);
  }
  if (!sent) return error_status(conn_, nullptr, "send", last_fault_);
  expected_.push_back(Expected{false, keep, sql});
  return Status::Ok();
}

Status Connection::write(const std::string& sql, const Params& params, bool prepare) {
  if (!pipeline_) return prepare ? query(sql, params).status() : query_once(sql, params).status();
  return send(sql, params, prepare, /*keep=*/false);
}

Result<PgResult> Connection::collect() {
  // Ask the server to send what it has; the answers come in the order sent.
  if (!PQsendFlushRequest(conn_) || PQflush(conn_) != 0) {
    expected_.clear();
    return error_status(conn_, nullptr, "flush", last_fault_);
  }
  PgResult kept;
  for (const Expected& e : expected_) {
    PGresult* r = PQgetResult(conn_);
    const ExecStatusType st = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (st == PGRES_PIPELINE_ABORTED) {
      // Skipped after an earlier failure, which is the one reported; a
      // skipped PREPARE did not happen, so it is sent again next time.
      PQclear(r);
      if (e.prepare) prepared_.erase(e.sql);
    } else {
      auto checked = check(r, std::string_view(e.sql).substr(0, 60));
      if (!checked.ok()) {
        if (e.prepare) prepared_.erase(e.sql);
        if (!pipeline_error_) {
          pipeline_error_ = checked.status();
          pipeline_fault_ = last_fault_;
        }
      } else if (e.keep) {
        kept = std::move(checked.value());
      }
    }
    if (r == nullptr) break;  // the connection is gone
    PQgetResult(conn_);       // the NULL that ends each statement's answers
  }
  expected_.clear();
  if (pipeline_error_) {
    last_fault_ = pipeline_fault_;
    return *pipeline_error_;
  }
  return kept;
}

Status Connection::end_pipeline() {
  if (!pipeline_) return Status::Ok();
  Status s;
  if (!PQpipelineSync(conn_)) {
    s = error_status(conn_, nullptr, "sync", last_fault_);
  } else {
    if (PQflush(conn_) != 0) s = error_status(conn_, nullptr, "flush", last_fault_);
    auto c = s.ok() ? collect() : Result<PgResult>(s);
    if (!c.ok()) s = c.status();
    if (PQstatus(conn_) != CONNECTION_BAD) {
      // The answer to the Sync itself.
      while (PGresult* r = PQgetResult(conn_)) {
        const bool sync = PQresultStatus(r) == PGRES_PIPELINE_SYNC;
        PQclear(r);
        if (sync) break;
      }
    }
  }
  if (s.ok() && pipeline_error_) s = *pipeline_error_;
  const Fault fault = pipeline_error_ ? pipeline_fault_ : last_fault_;
  PQexitPipelineMode(conn_);
  pipeline_ = false;
  expected_.clear();
  pipeline_error_.reset();
  if (!s.ok()) last_fault_ = fault;
  return s;
}

}  // namespace tollgate::storage::pg
