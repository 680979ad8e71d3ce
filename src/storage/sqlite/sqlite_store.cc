#include "storage/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sqlite3.h>
#include <sys/file.h>
#include <unistd.h>

#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <unordered_map>

#include "storage/sqlite/schema.h"

namespace tollgate::storage {
namespace {

Status sqlite_error(sqlite3* db, const char* what) {
  int code = sqlite3_errcode(db);
  std::string msg = fmt::format("sqlite {}: {} ({})", what, sqlite3_errmsg(db), code);
  if (code == SQLITE_BUSY || code == SQLITE_LOCKED || code == SQLITE_IOERR || code == SQLITE_FULL ||
      code == SQLITE_CANTOPEN) {
    return Unavailable(msg);
  }
  if (code == SQLITE_CONSTRAINT) return Conflict(msg);
  return Internal(msg);
}

// A prepared statement, reset on destruction of the binding scope.
class Stmt {
 public:
  Stmt(sqlite3* db, sqlite3_stmt* s) : db_(db), s_(s) {}
  ~Stmt() {
    sqlite3_reset(s_);
    sqlite3_clear_bindings(s_);
  }
  Stmt& text(int i, const std::string& v) {
    sqlite3_bind_text(s_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Stmt& opt_text(int i, const std::optional<std::string>& v) {
    if (v) return text(i, *v);
    sqlite3_bind_null(s_, i);
    return *this;
  }
  Stmt& i64(int i, int64_t v) {
    sqlite3_bind_int64(s_, i, v);
    return *this;
  }
  Stmt& opt_ts(int i, const std::optional<Timestamp>& v) {
    if (v) return i64(i, v->micros);
    sqlite3_bind_null(s_, i);
    return *this;
  }
  // SQLITE_ROW -> true, SQLITE_DONE -> false.
  Result<bool> step() {
    int rc = sqlite3_step(s_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return sqlite_error(db_, "step");
  }
  Status exec() {
    auto r = step();
    if (!r.ok()) return r.status();
    return Status::Ok();
  }
  std::string col_text(int i) {
    auto p = sqlite3_column_text(s_, i);
    return p ? std::string(reinterpret_cast<const char*>(p), sqlite3_column_bytes(s_, i)) : std::string();
  }
  std::optional<std::string> col_opt_text(int i) {
    if (sqlite3_column_type(s_, i) == SQLITE_NULL) return std::nullopt;
    return col_text(i);
  }
  int64_t col_i64(int i) { return sqlite3_column_int64(s_, i); }
  Microdollars col_money(int i) { return Microdollars(col_i64(i)); }
  Timestamp col_ts(int i) { return Timestamp{col_i64(i)}; }
  std::optional<Timestamp> col_opt_ts(int i) {
    if (sqlite3_column_type(s_, i) == SQLITE_NULL) return std::nullopt;
    return col_ts(i);
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* s_;
};

// A cursor owns its statement (not the shared cache), so two can be open at
// once, as recompute's merge of audit rows and external usage needs.
template <typename Row>
class SqliteCursor final : public Cursor<Row> {
 public:
  using Extract = Row (*)(Stmt&);
  SqliteCursor(sqlite3* db, sqlite3_stmt* st, Extract extract)
      : owned_(st, &sqlite3_finalize), stmt_(db, st), extract_(extract) {}
  Result<bool> next(Row& row) override {
    auto r = stmt_.step();
    if (!r.ok()) return r.status();
    if (*r) row = extract_(stmt_);
    return *r;
  }
  Stmt& stmt() { return stmt_; }

 private:
  // Declared before stmt_: finalized after stmt_'s destructor resets it.
  std::unique_ptr<sqlite3_stmt, int (*)(sqlite3_stmt*)> owned_;
  Stmt stmt_;
  Extract extract_;
};

// Every row a statement yields, extracted by `row_of`.
template <typename Row, typename F>
Result<std::vector<Row>> collect(Stmt& s, F row_of) {
  std::vector<Row> out;
  while (true) {
    auto r = s.step();
    if (!r.ok()) return r.status();
    if (!*r) break;
    out.push_back(row_of(s));
  }
  return out;
}

// The first row a statement yields, if any.
template <typename Row, typename F>
Result<std::optional<Row>> first(Stmt& s, F row_of) {
  auto r = s.step();
  if (!r.ok()) return r.status();
  if (!*r) return std::optional<Row>();
  return std::optional<Row>(row_of(s));
}

class SqliteTransaction final : public Transaction {
 public:
  explicit SqliteTransaction(sqlite3* db) : db_(db) {}
  ~SqliteTransaction() override {
    for (auto& [_, s] : cache_) sqlite3_finalize(s);
  }

  // Transaction control (BEGIN, SAVEPOINT, ...) from the statement cache:
  // parsed once, not on every operation of every batch.
  Status control(const char* sql) {
    auto s = prep(sql);
    if (!s.ok()) return s.status();
    return s->exec();
  }

  Status exec_sql(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      Status s = sqlite_error(db_, sql);
      sqlite3_free(err);
      return s;
    }
    return Status::Ok();
  }

  Result<std::optional<UserRow>> get_user(const std::string& id) override {
    auto s = prep("SELECT id, tier, blocked, created_at_us FROM users WHERE id = ?");
    if (!s.ok()) return s.status();
    auto& st = *s;
    st.text(1, id);
    auto r = st.step();
    if (!r.ok()) return r.status();
    if (!*r) return std::optional<UserRow>();
    return std::optional<UserRow>(UserRow{st.col_text(0), st.col_opt_text(1), st.col_i64(2) != 0, st.col_ts(3)});
  }
  Status insert_user(const UserRow& u) override {
    auto s = prep("INSERT INTO users (id, tier, blocked, created_at_us) VALUES (?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, u.id).opt_text(2, u.tier).i64(3, u.blocked).i64(4, u.created_at.micros).exec();
  }
  Status update_user(const UserRow& u) override {
    auto s = prep("UPDATE users SET tier = ?, blocked = ? WHERE id = ?");
    if (!s.ok()) return s.status();
    return s->opt_text(1, u.tier).i64(2, u.blocked).text(3, u.id).exec();
  }

  Result<std::optional<OrgRow>> get_org(const std::string& id) override {
    auto s = prep("SELECT id, name, created_at_us FROM organizations WHERE id = ?");
    if (!s.ok()) return s.status();
    s->text(1, id);
    return first<OrgRow>(*s, [](Stmt& st) { return OrgRow{st.col_text(0), st.col_text(1), st.col_ts(2)}; });
  }
  Status insert_org(const OrgRow& o) override {
    auto s = prep("INSERT INTO organizations (id, name, created_at_us) VALUES (?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, o.id).text(2, o.name).i64(3, o.created_at.micros).exec();
  }
  Result<bool> is_member(const std::string& org_id, const std::string& user_id) override {
    auto s = prep("SELECT 1 FROM org_members WHERE org_id = ? AND user_id = ?");
    if (!s.ok()) return s.status();
    s->text(1, org_id).text(2, user_id);
    return s->step();
  }
  Status add_member(const std::string& org_id, const std::string& user_id, Timestamp at) override {
    auto s = prep("INSERT OR IGNORE INTO org_members (org_id, user_id, added_at_us) VALUES (?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, org_id).text(2, user_id).i64(3, at.micros).exec();
  }
  Status remove_member(const std::string& org_id, const std::string& user_id) override {
    auto s = prep("DELETE FROM org_members WHERE org_id = ? AND user_id = ?");
    if (!s.ok()) return s.status();
    return s->text(1, org_id).text(2, user_id).exec();
  }

  Result<std::optional<ApiKeyRow>> get_api_key(const std::string& id) override {
    auto s = prep("SELECT id, user_id, secret_sha256, created_at_us, revoked_at_us FROM api_keys WHERE id = ?");
    if (!s.ok()) return s.status();
    s->text(1, id);
    return first<ApiKeyRow>(*s, [](Stmt& st) {
      return ApiKeyRow{st.col_text(0), st.col_text(1), st.col_text(2), st.col_ts(3), st.col_opt_ts(4)};
    });
  }
  Status insert_api_key(const ApiKeyRow& k) override {
    auto s =
        prep("INSERT INTO api_keys (id, user_id, secret_sha256, created_at_us, revoked_at_us) VALUES (?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, k.id)
        .text(2, k.user_id)
        .text(3, k.secret_sha256)
        .i64(4, k.created_at.micros)
        .opt_ts(5, k.revoked_at)
        .exec();
  }
  Status revoke_api_key(const std::string& id, Timestamp at) override {
    auto s = prep("UPDATE api_keys SET revoked_at_us = COALESCE(revoked_at_us, ?) WHERE id = ?");
    if (!s.ok()) return s.status();
    return s->i64(1, at.micros).text(2, id).exec();
  }

  Result<std::optional<AccountRow>> get_account(const std::string& owner) override {
    auto s = prep(
        "SELECT owner, debt_microdollars, held_microdollars, created_at_us, latest_event_at_us "
        "FROM accounts WHERE owner = ?");
    if (!s.ok()) return s.status();
    s->text(1, owner);
    return first<AccountRow>(*s, [](Stmt& st) {
      return AccountRow{st.col_text(0), st.col_money(1), st.col_money(2), st.col_ts(3), st.col_ts(4)};
    });
  }
  Status insert_account(const AccountRow& a) override {
    auto s = prep(
        "INSERT INTO accounts (owner, debt_microdollars, held_microdollars, created_at_us, "
        "latest_event_at_us) VALUES (?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, a.owner)
        .i64(2, a.debt.value())
        .i64(3, a.held.value())
        .i64(4, a.created_at.micros)
        .i64(5, a.latest_event_at.micros)
        .exec();
  }
  Status update_account(const AccountRow& a) override {
    auto s = prep(
        "UPDATE accounts SET debt_microdollars = ?, held_microdollars = ?, latest_event_at_us = ? "
        "WHERE owner = ?");
    if (!s.ok()) return s.status();
    return s->i64(1, a.debt.value()).i64(2, a.held.value()).i64(3, a.latest_event_at.micros).text(4, a.owner).exec();
  }

  static GrantRow grant_from(Stmt& s) {
    return GrantRow{s.col_text(0),  s.col_text(1), s.col_money(2),     s.col_money(3),
                    s.col_money(4), s.col_ts(5),   s.col_opt_ts(6),    s.col_text(7),
                    s.col_text(8),  s.col_ts(9),   s.col_i64(10) != 0, s.col_opt_ts(11)};
  }
#define TG_GRANT_COLS                                                                                \
  "id, owner, amount_microdollars, remaining_microdollars, expired_microdollars, "                   \
  "effective_at_us, expires_at_us, idempotency_key, request_fingerprint, created_at_us, activated, " \
  "expiry_recorded_at_us"
  Result<std::vector<GrantRow>> list_grants(const std::string& owner) override {
    auto s = prep("SELECT " TG_GRANT_COLS " FROM grants WHERE owner = ? ORDER BY effective_at_us, id");
    if (!s.ok()) return s.status();
    s->text(1, owner);
    return collect<GrantRow>(*s, [](Stmt& st) { return grant_from(st); });
  }
  Result<std::optional<GrantRow>> get_grant_by_idempotency_key(const std::string& key) override {
    auto s = prep("SELECT " TG_GRANT_COLS " FROM grants WHERE idempotency_key = ?");
    if (!s.ok()) return s.status();
    s->text(1, key);
    return first<GrantRow>(*s, [](Stmt& st) { return grant_from(st); });
  }
  Status insert_grant(const GrantRow& g) override {
    auto s = prep("INSERT INTO grants (" TG_GRANT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, g.id)
        .text(2, g.owner)
        .i64(3, g.amount.value())
        .i64(4, g.remaining.value())
        .i64(5, g.expired.value())
        .i64(6, g.effective_at.micros)
        .opt_ts(7, g.expires_at)
        .text(8, g.idempotency_key)
        .text(9, g.request_fingerprint)
        .i64(10, g.created_at.micros)
        .i64(11, g.activated)
        .opt_ts(12, g.expiry_recorded_at)
        .exec();
  }
  Status update_grant(const GrantRow& g) override {
    auto s = prep(
        "UPDATE grants SET remaining_microdollars = ?, expired_microdollars = ?, activated = ?, "
        "expiry_recorded_at_us = ? WHERE id = ?");
    if (!s.ok()) return s.status();
    return s->i64(1, g.remaining.value())
        .i64(2, g.expired.value())
        .i64(3, g.activated)
        .opt_ts(4, g.expiry_recorded_at)
        .text(5, g.id)
        .exec();
  }
  Status upsert_expiry(const ExpiryRow& e) override {
    auto s = prep(
        "INSERT INTO grant_expiries (grant_id, owner, amount_microdollars, expired_at_us, recorded_at_us) "
        "VALUES (?, ?, ?, ?, ?) ON CONFLICT (grant_id) DO UPDATE SET "
        "amount_microdollars = excluded.amount_microdollars, recorded_at_us = excluded.recorded_at_us");
    if (!s.ok()) return s.status();
    return s->text(1, e.grant_id)
        .text(2, e.owner)
        .i64(3, e.amount.value())
        .i64(4, e.expired_at.micros)
        .i64(5, e.recorded_at.micros)
        .exec();
  }
  Result<std::vector<ExpiryRow>> list_expiries_for_owner(const std::string& owner) override {
    auto s = prep(
        "SELECT grant_id, owner, amount_microdollars, expired_at_us, recorded_at_us FROM grant_expiries "
        "WHERE owner = ? ORDER BY expired_at_us, grant_id");
    if (!s.ok()) return s.status();
    s->text(1, owner);
    return collect<ExpiryRow>(*s, [](Stmt& st) {
      return ExpiryRow{st.col_text(0), st.col_text(1), st.col_money(2), st.col_ts(3), st.col_ts(4)};
    });
  }
  Status insert_adjustment(const AdjustmentRow& a) override {
    auto s = prep(
        "INSERT INTO ledger_adjustments (id, subject, field, stored_microdollars, recomputed_microdollars, "
        "at_us, reason) VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, a.id)
        .text(2, a.subject)
        .text(3, a.field)
        .i64(4, a.stored.value())
        .i64(5, a.recomputed.value())
        .i64(6, a.at.micros)
        .text(7, a.reason)
        .exec();
  }
  Result<std::vector<AdjustmentRow>> list_adjustments(const std::string& subject) override {
    auto s = prep(
        "SELECT id, subject, field, stored_microdollars, recomputed_microdollars, at_us, reason "
        "FROM ledger_adjustments WHERE subject = ? ORDER BY at_us, id");
    if (!s.ok()) return s.status();
    s->text(1, subject);
    return collect<AdjustmentRow>(*s, [](Stmt& st) {
      return AdjustmentRow{st.col_text(0),  st.col_text(1), st.col_text(2), st.col_money(3),
                           st.col_money(4), st.col_ts(5),   st.col_text(6)};
    });
  }
  Result<std::vector<std::string>> list_owners_with_due_grants(Timestamp now, int64_t limit) override {
    auto s = prep(
        "SELECT owner FROM grants WHERE activated = 0 AND effective_at_us <= ?1 "
        "UNION SELECT owner FROM grants WHERE expires_at_us IS NOT NULL AND expiry_recorded_at_us IS NULL "
        "AND expires_at_us <= ?1 LIMIT ?2");
    if (!s.ok()) return s.status();
    s->i64(1, now.micros).i64(2, limit);
    std::vector<std::string> out;
    while (true) {
      auto r = s->step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      out.push_back(s->col_text(0));
    }
    return out;
  }
#undef TG_GRANT_COLS

#define TG_USAGE_COLS "id, owner, amount_microdollars, at_us, idempotency_key, request_fingerprint, created_at_us"
  static ExternalUsageRow usage_from(Stmt& s) {
    return ExternalUsageRow{s.col_text(0), s.col_text(1), s.col_money(2), s.col_ts(3),
                            s.col_text(4), s.col_text(5), s.col_ts(6)};
  }
  Result<std::optional<ExternalUsageRow>> get_external_usage_by_idempotency_key(const std::string& key) override {
    auto s = prep("SELECT " TG_USAGE_COLS " FROM external_usage WHERE idempotency_key = ?");
    if (!s.ok()) return s.status();
    s->text(1, key);
    return first<ExternalUsageRow>(*s, [](Stmt& st) { return usage_from(st); });
  }
  Status insert_external_usage(const ExternalUsageRow& u) override {
    auto s = prep("INSERT INTO external_usage (" TG_USAGE_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, u.id)
        .text(2, u.owner)
        .i64(3, u.amount.value())
        .i64(4, u.at.micros)
        .text(5, u.idempotency_key)
        .text(6, u.request_fingerprint)
        .i64(7, u.created_at.micros)
        .exec();
  }
  Result<std::vector<ExternalUsageRow>> list_external_usage_for_owner(const std::string& owner) override {
    auto s = prep("SELECT " TG_USAGE_COLS " FROM external_usage WHERE owner = ? ORDER BY at_us, id");
    if (!s.ok()) return s.status();
    s->text(1, owner);
    return collect<ExternalUsageRow>(*s, [](Stmt& st) { return usage_from(st); });
  }
#undef TG_USAGE_COLS

  Result<std::optional<AllowanceRow>> get_allowance(const std::string& user_id, const std::string& month) override {
    auto s = prep(
        "SELECT user_id, month, allowance_microdollars, free_used_microdollars, free_held_microdollars, "
        "locked_at_us FROM allowance_locks WHERE user_id = ? AND month = ?");
    if (!s.ok()) return s.status();
    s->text(1, user_id).text(2, month);
    return first<AllowanceRow>(*s, [](Stmt& st) {
      return AllowanceRow{st.col_text(0),  st.col_text(1),  st.col_money(2),
                          st.col_money(3), st.col_money(4), st.col_ts(5)};
    });
  }
  Status insert_allowance(const AllowanceRow& a) override {
    auto s = prep(
        "INSERT INTO allowance_locks (user_id, month, allowance_microdollars, free_used_microdollars, "
        "free_held_microdollars, locked_at_us) VALUES (?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, a.user_id)
        .text(2, a.month)
        .i64(3, a.allowance.value())
        .i64(4, a.free_used.value())
        .i64(5, a.free_held.value())
        .i64(6, a.locked_at.micros)
        .exec();
  }
  Status update_allowance(const AllowanceRow& a) override {
    auto s = prep(
        "UPDATE allowance_locks SET free_used_microdollars = ?, free_held_microdollars = ? "
        "WHERE user_id = ? AND month = ?");
    if (!s.ok()) return s.status();
    return s->i64(1, a.free_used.value()).i64(2, a.free_held.value()).text(3, a.user_id).text(4, a.month).exec();
  }

  Status add_to_counter(const CounterRow& d) override {
    auto s = prep(
        "INSERT INTO monthly_usage (user_id, context, month, request_count, total_cost_microdollars, "
        "total_free_microdollars, total_charged_microdollars) VALUES (?, ?, ?, ?, ?, ?, ?) "
        "ON CONFLICT (user_id, month, context) DO UPDATE SET "
        "request_count = request_count + excluded.request_count, "
        "total_cost_microdollars = total_cost_microdollars + excluded.total_cost_microdollars, "
        "total_free_microdollars = total_free_microdollars + excluded.total_free_microdollars, "
        "total_charged_microdollars = total_charged_microdollars + excluded.total_charged_microdollars");
    if (!s.ok()) return s.status();
    return s->text(1, d.user_id)
        .text(2, d.context)
        .text(3, d.month)
        .i64(4, d.request_count)
        .i64(5, d.total_cost.value())
        .i64(6, d.total_free.value())
        .i64(7, d.total_charged.value())
        .exec();
  }
  Result<std::vector<CounterRow>> read_counters(Stmt& s) {
    std::vector<CounterRow> out;
    while (true) {
      auto r = s.step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      out.push_back(CounterRow{s.col_text(0), s.col_text(1), s.col_text(2), s.col_i64(3), s.col_money(4),
                               s.col_money(5), s.col_money(6)});
    }
    return out;
  }
  Result<std::vector<CounterRow>> list_counters(const std::string& user_id, const std::string& month) override {
    auto s = prep(
        "SELECT user_id, context, month, request_count, total_cost_microdollars, total_free_microdollars, "
        "total_charged_microdollars FROM monthly_usage WHERE user_id = ? AND month = ? ORDER BY context");
    if (!s.ok()) return s.status();
    s->text(1, user_id).text(2, month);
    return read_counters(*s);
  }
  Result<std::vector<CounterRow>> list_counters_for_month(const std::string& month) override {
    auto s = prep(
        "SELECT user_id, context, month, request_count, total_cost_microdollars, total_free_microdollars, "
        "total_charged_microdollars FROM monthly_usage WHERE month = ? ORDER BY user_id, context");
    if (!s.ok()) return s.status();
    s->text(1, month);
    return read_counters(*s);
  }

#define TG_HOLD_COLS                                                                 \
  "request_id, user_id, context, owner, path, month, arrived_at_us, expires_at_us, " \
  "estimate_microdollars, free_held_microdollars, credit_held_microdollars"
  static HoldRow hold_from(Stmt& s) {
    return HoldRow{s.col_text(0), s.col_text(1), s.col_text(2),  s.col_text(3),  s.col_text(4),  s.col_text(5),
                   s.col_ts(6),   s.col_ts(7),   s.col_money(8), s.col_money(9), s.col_money(10)};
  }
  Status insert_hold(const HoldRow& h) override {
    auto s = prep("INSERT INTO holds (" TG_HOLD_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, h.request_id)
        .text(2, h.user_id)
        .text(3, h.context)
        .text(4, h.owner)
        .text(5, h.path)
        .text(6, h.month)
        .i64(7, h.arrived_at.micros)
        .i64(8, h.expires_at.micros)
        .i64(9, h.estimate.value())
        .i64(10, h.free_held.value())
        .i64(11, h.credit_held.value())
        .exec();
  }
  Result<std::optional<HoldRow>> get_hold(const std::string& request_id) override {
    auto s = prep("SELECT " TG_HOLD_COLS " FROM holds WHERE request_id = ?");
    if (!s.ok()) return s.status();
    s->text(1, request_id);
    return first<HoldRow>(*s, [](Stmt& st) { return hold_from(st); });
  }
  Status delete_hold(const std::string& request_id) override {
    auto s = prep("DELETE FROM holds WHERE request_id = ?");
    if (!s.ok()) return s.status();
    return s->text(1, request_id).exec();
  }
  Result<std::vector<HoldRow>> list_holds_arrived_before(Timestamp t, int64_t limit) override {
    auto s = prep("SELECT " TG_HOLD_COLS " FROM holds WHERE arrived_at_us <= ? ORDER BY arrived_at_us LIMIT ?");
    if (!s.ok()) return s.status();
    s->i64(1, t.micros).i64(2, limit);
    return collect<HoldRow>(*s, [](Stmt& st) { return hold_from(st); });
  }
#undef TG_HOLD_COLS

#define TG_AUDIT_COLS                                                                \
  "request_id, user_id, context, owner, path, month, arrived_at_us, settled_at_us, " \
  "upstream_status, cost_microdollars, free_microdollars, charged_microdollars, cost_source"
  static AuditRow audit_from(Stmt& s) {
    return AuditRow{s.col_text(0),  s.col_text(1),   s.col_text(2),
                    s.col_text(3),  s.col_text(4),   s.col_text(5),
                    s.col_ts(6),    s.col_ts(7),     static_cast<int>(s.col_i64(8)),
                    s.col_money(9), s.col_money(10), s.col_money(11),
                    s.col_text(12)};
  }
  Result<std::vector<std::string>> list_owners() override {
    auto s = prep("SELECT owner FROM accounts ORDER BY owner");
    if (!s.ok()) return s.status();
    std::vector<std::string> out;
    while (true) {
      auto r = s->step();
      if (!r.ok()) return r.status();
      if (!*r) break;
      out.push_back(s->col_text(0));
    }
    return out;
  }
  Result<std::vector<AuditRow>> list_audit_for_owner(const std::string& owner) override {
    auto s = prep("SELECT " TG_AUDIT_COLS " FROM audit_log WHERE owner = ? ORDER BY arrived_at_us, request_id");
    if (!s.ok()) return s.status();
    s->text(1, owner);
    return collect<AuditRow>(*s, [](Stmt& st) { return audit_from(st); });
  }
  Result<std::unique_ptr<Cursor<AuditRow>>> scan_audit_for_owner(const std::string& owner) override {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_,
                           "SELECT " TG_AUDIT_COLS " FROM audit_log WHERE owner = ? ORDER BY arrived_at_us, request_id",
                           -1, &st, nullptr) != SQLITE_OK) {
      return sqlite_error(db_, "prepare");
    }
    auto c = std::make_unique<SqliteCursor<AuditRow>>(db_, st, &audit_from);
    c->stmt().text(1, owner);
    return std::unique_ptr<Cursor<AuditRow>>(std::move(c));
  }
  Result<std::unique_ptr<Cursor<ExternalUsageRow>>> scan_external_usage_for_owner(const std::string& owner) override {
    sqlite3_stmt* st = nullptr;
    if (sqlite3_prepare_v2(db_,
                           "SELECT id, owner, amount_microdollars, at_us, idempotency_key, request_fingerprint, "
                           "created_at_us FROM external_usage WHERE owner = ? ORDER BY at_us, id",
                           -1, &st, nullptr) != SQLITE_OK) {
      return sqlite_error(db_, "prepare");
    }
    auto c = std::make_unique<SqliteCursor<ExternalUsageRow>>(db_, st, &usage_from);
    c->stmt().text(1, owner);
    return std::unique_ptr<Cursor<ExternalUsageRow>>(std::move(c));
  }
  Result<std::vector<HoldRow>> list_holds_for_owner(const std::string& owner) override {
    auto s = prep(
        "SELECT request_id, user_id, context, owner, path, month, arrived_at_us, expires_at_us, "
        "estimate_microdollars, free_held_microdollars, credit_held_microdollars FROM holds WHERE owner = ?");
    if (!s.ok()) return s.status();
    s->text(1, owner);
    return collect<HoldRow>(*s, [](Stmt& st) { return hold_from(st); });
  }
  Result<std::vector<AllowanceRow>> list_allowances(const std::optional<std::string>& user_id) override {
    auto s = prep(
        "SELECT user_id, month, allowance_microdollars, free_used_microdollars, free_held_microdollars, "
        "locked_at_us FROM allowance_locks WHERE (?1 IS NULL OR user_id = ?1) ORDER BY user_id, month");
    if (!s.ok()) return s.status();
    s->opt_text(1, user_id);
    return collect<AllowanceRow>(*s, [](Stmt& st) {
      return AllowanceRow{st.col_text(0),  st.col_text(1),  st.col_money(2),
                          st.col_money(3), st.col_money(4), st.col_ts(5)};
    });
  }
  Result<std::vector<CounterRow>> list_counters_for_user(const std::string& user_id) override {
    auto s = prep(
        "SELECT user_id, context, month, request_count, total_cost_microdollars, total_free_microdollars, "
        "total_charged_microdollars FROM monthly_usage WHERE user_id = ? ORDER BY month, context");
    if (!s.ok()) return s.status();
    s->text(1, user_id);
    return read_counters(*s);
  }
  Result<std::vector<CounterRow>> sum_audit(const std::string& user_id, const std::string& month) override {
    auto s = prep(
        "SELECT user_id, context, month, COUNT(*), SUM(cost_microdollars), SUM(free_microdollars), "
        "SUM(charged_microdollars) FROM audit_log WHERE user_id = ? AND month = ? GROUP BY context ORDER BY context");
    if (!s.ok()) return s.status();
    s->text(1, user_id).text(2, month);
    return read_counters(*s);
  }
  Result<Microdollars> sum_free_held(const std::string& user_id, const std::string& month) override {
    auto s = prep("SELECT COALESCE(SUM(free_held_microdollars), 0) FROM holds WHERE user_id = ? AND month = ?");
    if (!s.ok()) return s.status();
    s->text(1, user_id).text(2, month);
    auto r = s->step();
    if (!r.ok()) return r.status();
    return s->col_money(0);
  }

  Result<std::optional<AuditRow>> get_audit(const std::string& request_id) override {
    auto s = prep("SELECT " TG_AUDIT_COLS " FROM audit_log WHERE request_id = ?");
    if (!s.ok()) return s.status();
    s->text(1, request_id);
    return first<AuditRow>(*s, [](Stmt& st) { return audit_from(st); });
  }
  Status insert_audit(const AuditRow& a) override {
    auto s = prep("INSERT INTO audit_log (" TG_AUDIT_COLS ") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
    if (!s.ok()) return s.status();
    return s->text(1, a.request_id)
        .text(2, a.user_id)
        .text(3, a.context)
        .text(4, a.owner)
        .text(5, a.path)
        .text(6, a.month)
        .i64(7, a.arrived_at.micros)
        .i64(8, a.settled_at.micros)
        .i64(9, a.upstream_status)
        .i64(10, a.cost.value())
        .i64(11, a.free.value())
        .i64(12, a.charged.value())
        .text(13, a.cost_source)
        .exec();
  }
  Result<std::vector<AuditRow>> list_audit(const AuditFilter& f) override {
    // NULL parameters disable their condition; one statement serves all filters.
    auto s = prep("SELECT " TG_AUDIT_COLS
                  " FROM audit_log WHERE "
                  "(?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR context = ?2) AND "
                  "(?3 IS NULL OR month = ?3) AND "
                  "(?4 IS NULL OR arrived_at_us > ?4 OR (arrived_at_us = ?4 AND request_id > ?5)) "
                  "ORDER BY arrived_at_us, request_id LIMIT ?6");
    if (!s.ok()) return s.status();
    s->opt_text(1, f.user_id).opt_text(2, f.context).opt_text(3, f.month);
    if (f.after) s->i64(4, f.after->first.micros).text(5, f.after->second);
    s->i64(6, f.limit);
    return collect<AuditRow>(*s, [](Stmt& st) { return audit_from(st); });
  }
#undef TG_AUDIT_COLS

 private:
  Result<Stmt> prep(const char* sql) {
    auto it = cache_.find(sql);
    if (it == cache_.end()) {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &st, nullptr) != SQLITE_OK) {
        return sqlite_error(db_, "prepare");
      }
      it = cache_.emplace(sql, st).first;
    }
    return Stmt(db_, it->second);
  }

  sqlite3* db_;
  std::unordered_map<const char*, sqlite3_stmt*> cache_;  // keyed by the literal's address
};

struct Pending {
  Operation op;
  std::function<void(Status)> done;
};

class SqliteStore final : public Store {
 public:
  SqliteStore(sqlite3* db, int lock_fd, StoreOptions options) : db_(db), lock_fd_(lock_fd), options_(options), tx_(db) {
    if (!options_.read_only) writer_ = std::thread([this] { writer_loop(); });
  }
  ~SqliteStore() override {
    shutdown();
    if (reader_thread_.joinable()) reader_thread_.join();
    reader_.reset();
    // close_v2 defers the close until tx_ finalizes its statements.
    sqlite3_close_v2(db_);
    if (lock_fd_ >= 0) close(lock_fd_);
  }

  void submit(Operation op, std::function<void(Status)> done) override {
    {
      std::lock_guard lk(mu_);
      if (!stopping_ && !options_.read_only) {
        queue_.push_back({std::move(op), std::move(done)});
        cv_.notify_one();
        return;
      }
    }
    if (options_.read_only) {
      // Read-only stores run on the caller's thread; ops must not write.
      std::lock_guard lk(read_mu_);
      done(run_alone(op));
      return;
    }
    done(Unavailable("store is shutting down"));
  }

  // Long reads go to a read-only connection on its own thread: WAL gives
  // them a snapshot, and the writer keeps committing meanwhile.
  void attach_reader(std::unique_ptr<SqliteStore> reader) {
    reader_ = std::move(reader);
    reader_thread_ = std::thread([this] {
      while (true) {
        Pending p;
        {
          std::unique_lock lk(mu_);
          cv_read_.wait(lk, [&] { return stopping_ || !read_queue_.empty(); });
          if (read_queue_.empty()) return;
          p = std::move(read_queue_.front());
          read_queue_.pop_front();
        }
        p.done(reader_->run(std::move(p.op)));
      }
    });
  }

  void submit_read(Operation op, std::function<void(Status)> done) override {
    if (!reader_) {
      submit(std::move(op), std::move(done));
      return;
    }
    {
      std::lock_guard lk(mu_);
      if (!stopping_) {
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
    if (writer_.joinable()) writer_.join();
  }

  Status migrate() {
    TG_TRY(
        tx_.exec_sql("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                     "applied_at_us INTEGER NOT NULL)"));
    int current = 0;
    {
      sqlite3_stmt* st = nullptr;
      if (sqlite3_prepare_v2(db_, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations", -1, &st, nullptr) !=
              SQLITE_OK ||
          sqlite3_step(st) != SQLITE_ROW) {
        sqlite3_finalize(st);
        return sqlite_error(db_, "reading schema_migrations");
      }
      current = sqlite3_column_int(st, 0);
      sqlite3_finalize(st);
    }
    const int latest = sqlite_schema::kMigrations.back().version;
    if (current > latest) {
      return Internal(
          fmt::format("the database schema is at version {}, newer than this tollgate knows ({}); "
                      "use a newer tollgate",
                      current, latest));
    }
    for (const auto& m : sqlite_schema::kMigrations) {
      if (m.version <= current) continue;
      TG_TRY(tx_.exec_sql("BEGIN IMMEDIATE"));
      Status s = tx_.exec_sql(std::string(m.sql).c_str());
      if (s.ok()) {
        std::string rec =
            fmt::format("INSERT INTO schema_migrations (version, name, applied_at_us) VALUES ({}, '{}', {})", m.version,
                        m.name, SystemClock().now().micros);
        s = tx_.exec_sql(rec.c_str());
      }
      if (!s.ok()) {
        (void)tx_.exec_sql("ROLLBACK");
        return Internal(fmt::format("migration {} ({}) failed: {}", m.version, m.name, s.message()));
      }
      TG_TRY(tx_.exec_sql("COMMIT"));
    }
    return Status::Ok();
  }

 private:
  static Status guarded(const Operation& op, Transaction& tx) {
    try {
      return op(tx);
    } catch (const std::exception& e) {
      return Internal(std::string("operation failed: ") + e.what());
    }
  }

  Status run_alone(const Operation& op) {
    if (options_.read_only) {
      TG_TRY(tx_.control("BEGIN"));
      Status s = guarded(op, tx_);
      (void)tx_.control("ROLLBACK");
      return s;
    }
    TG_TRY(tx_.control("BEGIN IMMEDIATE"));
    Status s = guarded(op, tx_);
    if (!s.ok()) {
      if (!sqlite3_get_autocommit(db_)) (void)tx_.control("ROLLBACK");
      return s;
    }
    Status c = tx_.control("COMMIT");
    if (!c.ok() && !sqlite3_get_autocommit(db_)) (void)tx_.control("ROLLBACK");
    return c;
  }

  void writer_loop() {
    std::vector<Pending> batch;
    std::vector<Status> results;
    while (true) {
      {
        std::unique_lock lk(mu_);
        cv_.wait(lk, [&] { return stopping_ || !queue_.empty(); });
        if (queue_.empty() && stopping_) return;
        while (!queue_.empty() && static_cast<int64_t>(batch.size()) < options_.batch_max) {
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      run_batch(batch, results);
      for (size_t i = 0; i < batch.size(); ++i) batch[i].done(std::move(results[i]));
      batch.clear();
      results.clear();
    }
  }

  // One transaction for the whole batch, a savepoint per operation. If the
  // commit itself fails, every operation is retried alone so one bad write
  // cannot fail its neighbours.
  void run_batch(std::vector<Pending>& batch, std::vector<Status>& results) {
    results.assign(batch.size(), Status::Ok());
    if (batch.size() == 1) {
      results[0] = run_alone(batch[0].op);
      return;
    }
    Status b = tx_.control("BEGIN IMMEDIATE");
    if (!b.ok()) {
      for (auto& r : results) r = b;
      return;
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      Status sp = tx_.control("SAVEPOINT op");
      if (sp.ok()) {
        results[i] = guarded(batch[i].op, tx_);
        if (!results[i].ok()) (void)tx_.control("ROLLBACK TO op");
        (void)tx_.control("RELEASE op");
      }
      // Some errors (I/O, disk full) make SQLite roll back the whole
      // transaction: nothing of this batch is written, so run each alone.
      if (!sp.ok() || sqlite3_get_autocommit(db_)) {
        for (size_t j = 0; j < batch.size(); ++j) results[j] = run_alone(batch[j].op);
        return;
      }
    }
    Status c = tx_.control("COMMIT");
    if (c.ok()) return;
    if (!sqlite3_get_autocommit(db_)) (void)tx_.control("ROLLBACK");
    for (size_t i = 0; i < batch.size(); ++i) results[i] = run_alone(batch[i].op);
  }

  sqlite3* db_;
  int lock_fd_;
  StoreOptions options_;
  SqliteTransaction tx_;
  std::mutex mu_;
  std::mutex read_mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  std::condition_variable cv_read_;
  std::deque<Pending> read_queue_;
  std::unique_ptr<SqliteStore> reader_;
  std::thread reader_thread_;
  bool stopping_ = false;
  std::thread writer_;
};

}  // namespace

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, const StoreOptions& options) {
  int lock_fd = -1;
  if (!options.read_only) {
    // Only one writing process per file: a server, or an offline command.
    std::string lock_path = path + ".lock";
    lock_fd = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (lock_fd < 0) return Unavailable(fmt::format("cannot open lock file {}", lock_path));
    if (flock(lock_fd, LOCK_EX | LOCK_NB) != 0) {
      close(lock_fd);
      return Unavailable(
          fmt::format("database {} is in use by another tollgate process (a running `tollgate serve` is its only "
                      "writer); make changes through its admin API or stop it first",
                      path));
    }
  }
  sqlite3* db = nullptr;
  int flags = options.read_only ? SQLITE_OPEN_READONLY : (SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
  flags |= SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    std::string msg = fmt::format("cannot open sqlite database {}: {}", path, db ? sqlite3_errmsg(db) : "?");
    sqlite3_close_v2(db);
    if (lock_fd >= 0) close(lock_fd);
    return Unavailable(msg);
  }
  sqlite3_busy_timeout(db, 5000);
  auto pragma = [&](const std::string& sql) { sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr); };
  if (!options.read_only) {
    pragma("PRAGMA journal_mode=WAL");
    pragma(options.durable_power ? "PRAGMA synchronous=FULL" : "PRAGMA synchronous=NORMAL");
  }
  pragma("PRAGMA foreign_keys=ON");
  auto store = std::make_unique<SqliteStore>(db, lock_fd, options);
  if (!options.read_only) {
    Status s = store->migrate();
    if (!s.ok()) return s;
    StoreOptions ro = options;
    ro.read_only = true;
    auto reader = open_sqlite_store(path, ro);
    if (!reader.ok()) return reader.status();
    store->attach_reader(std::unique_ptr<SqliteStore>(static_cast<SqliteStore*>(reader.value().release())));
  }
  return std::unique_ptr<Store>(std::move(store));
}

}  // namespace tollgate::storage
