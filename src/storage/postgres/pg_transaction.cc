// The PostgreSQL Transaction: one parameterized statement per method, with
// the row locks described in pg_transaction.h.
#include "storage/postgres/pg_transaction.h"

#include <fmt/format.h>

#include <deque>

namespace tollgate::storage::pg {
namespace {

const std::string kGrantCols =
    "id, owner, amount_microdollars, remaining_microdollars, expired_microdollars, effective_at_us, expires_at_us, "
    "idempotency_key, request_fingerprint, created_at_us, activated, expiry_recorded_at_us";
const std::string kUsageCols = "id, owner, amount_microdollars, at_us, idempotency_key, request_fingerprint, created_at_us";
const std::string kAllowanceCols =
    "user_id, month, allowance_microdollars, free_used_microdollars, free_held_microdollars, locked_at_us";
const std::string kCounterCols =
    "user_id, context, month, request_count, total_cost_microdollars, total_free_microdollars, "
    "total_charged_microdollars";
const std::string kHoldCols =
    "request_id, user_id, context, owner, path, month, arrived_at_us, expires_at_us, estimate_microdollars, "
    "free_held_microdollars, credit_held_microdollars";
const std::string kAuditCols =
    "request_id, user_id, context, owner, path, month, arrived_at_us, settled_at_us, upstream_status, "
    "cost_microdollars, free_microdollars, charged_microdollars, cost_source";

GrantRow grant_from(const PgResult& r, int i) {
  return GrantRow{r.text(i, 0),   r.text(i, 1), r.money(i, 2),   r.money(i, 3),      r.money(i, 4),
                  r.ts(i, 5),     r.opt_ts(i, 6), r.text(i, 7), r.text(i, 8),       r.ts(i, 9),
                  r.boolean(i, 10), r.opt_ts(i, 11)};
}
ExternalUsageRow usage_from(const PgResult& r, int i) {
  return ExternalUsageRow{r.text(i, 0), r.text(i, 1), r.money(i, 2), r.ts(i, 3),
                          r.text(i, 4), r.text(i, 5), r.ts(i, 6)};
}
AllowanceRow allowance_from(const PgResult& r, int i) {
  return AllowanceRow{r.text(i, 0), r.text(i, 1), r.money(i, 2), r.money(i, 3), r.money(i, 4), r.ts(i, 5)};
}
CounterRow counter_from(const PgResult& r, int i) {
  return CounterRow{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.i64(i, 3), r.money(i, 4), r.money(i, 5),
                    r.money(i, 6)};
}
HoldRow hold_from(const PgResult& r, int i) {
  return HoldRow{r.text(i, 0), r.text(i, 1), r.text(i, 2), r.text(i, 3),  r.text(i, 4),  r.text(i, 5),
                 r.ts(i, 6),   r.ts(i, 7),   r.money(i, 8), r.money(i, 9), r.money(i, 10)};
}
AuditRow audit_from(const PgResult& r, int i) {
  return AuditRow{r.text(i, 0), r.text(i, 1), r.text(i, 2),  r.text(i, 3),  r.text(i, 4),
                  r.text(i, 5), r.ts(i, 6),   r.ts(i, 7),    static_cast<int>(r.i64(i, 8)),
                  r.money(i, 9), r.money(i, 10), r.money(i, 11), r.text(i, 12)};
}

template <typename Row, typename F>
std::vector<Row> rows_of(const PgResult& r, F from) {
  std::vector<Row> out;
  out.reserve(static_cast<size_t>(r.rows()));
  for (int i = 0; i < r.rows(); ++i) out.push_back(from(r, i));
  return out;
}

// Arrival bounds of a "YYYY-MM" month: the audit log is partitioned on
// arrival, and month = UTC month of arrival, so these prune to one partition.
std::optional<std::pair<int64_t, int64_t>> month_bounds(const std::string& month) {
  auto m = Month::parse(month);
  if (!m) return std::nullopt;
  return std::make_pair(m->start().micros, m->next().start().micros);
}

// A server-side cursor (DECLARE ... FETCH) so that several can be open in one
// transaction and memory stays bounded. It dies with its transaction; it is
// closed early only while the operation that opened it is still healthy (a
// CLOSE in an aborted transaction would fail the whole batch).
template <typename Row>
class PgCursor final : public Cursor<Row> {
 public:
  using Extract = Row (*)(const PgResult&, int);
  static constexpr int kFetchRows = 1000;

  PgCursor(PgTransaction& tx, std::string name, Extract extract)
      : tx_(tx), name_(std::move(name)), extract_(extract), generation_(tx.generation()) {}
  ~PgCursor() override { close(); }

  Result<bool> next(Row& row) override {
    if (pos_ >= buffer_.rows()) {
      if (done_) return false;
      auto r = tx_.run(fmt::format("FETCH {} FROM {}", kFetchRows, name_), Params(), /*prepare=*/false);
      if (!r.ok()) return r.status();
      buffer_ = std::move(r.value());
      pos_ = 0;
      if (buffer_.rows() < kFetchRows) {
        done_ = true;
        close();
      }
      if (buffer_.rows() == 0) return false;
    }
    row = extract_(buffer_, pos_++);
    return true;
  }

 private:
  void close() {
    if (closed_) return;
    closed_ = true;
    if (!tx_.failed() && tx_.generation() == generation_) {
      (void)tx_.run("CLOSE " + name_, Params(), /*prepare=*/false);
    }
  }

  PgTransaction& tx_;
  std::string name_;
  Extract extract_;
  uint64_t generation_;
  PgResult buffer_;
  int pos_ = 0;
  bool done_ = false;
  bool closed_ = false;
};

}  // namespace

Result<PgResult> PgTransaction::run(const std::string& sql, const Params& params, bool prepare) {
  auto r = prepare ? conn_.query(sql, params) : conn_.query_once(sql, params);
  // The first failure is the one that explains the operation's outcome;
  // later statements only report that the transaction is aborted.
  if (!r.ok()) note_failure(r.status(), conn_.last_fault());
  return r;
}

// ---- users, orgs, keys ---------------------------------------------------------

Result<std::optional<UserRow>> PgTransaction::get_user(const std::string& id) {
  TG_ASSIGN(auto r, run("SELECT id, tier, blocked, created_at_us FROM users WHERE id = $1", Params().text(id)));
  if (r.rows() == 0) return std::optional<UserRow>();
  return std::optional<UserRow>(UserRow{r.text(0, 0), r.opt_text(0, 1), r.boolean(0, 2), r.ts(0, 3)});
}
Status PgTransaction::insert_user(const UserRow& u) {
  return exec_write("INSERT INTO users (id, tier, blocked, created_at_us) VALUES ($1, $2, $3, $4)",
                    Params().text(u.id).opt_text(u.tier).boolean(u.blocked).ts(u.created_at));
}
Status PgTransaction::update_user(const UserRow& u) {
  return exec_write("UPDATE users SET tier = $1, blocked = $2 WHERE id = $3",
                    Params().opt_text(u.tier).boolean(u.blocked).text(u.id));
}

Result<std::optional<OrgRow>> PgTransaction::get_org(const std::string& id) {
  TG_ASSIGN(auto r, run("SELECT id, name, created_at_us FROM organizations WHERE id = $1", Params().text(id)));
  if (r.rows() == 0) return std::optional<OrgRow>();
  return std::optional<OrgRow>(OrgRow{r.text(0, 0), r.text(0, 1), r.ts(0, 2)});
}
Status PgTransaction::insert_org(const OrgRow& o) {
  return exec_write("INSERT INTO organizations (id, name, created_at_us) VALUES ($1, $2, $3)",
                    Params().text(o.id).text(o.name).ts(o.created_at));
}
Result<bool> PgTransaction::is_member(const std::string& org_id, const std::string& user_id) {
  TG_ASSIGN(auto r, run("SELECT 1 FROM org_members WHERE org_id = $1 AND user_id = $2",
                        Params().text(org_id).text(user_id)));
  return r.rows() > 0;
}
Status PgTransaction::add_member(const std::string& org_id, const std::string& user_id, Timestamp at) {
  return exec_write(
      "INSERT INTO org_members (org_id, user_id, added_at_us) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
      Params().text(org_id).text(user_id).ts(at));
}
Status PgTransaction::remove_member(const std::string& org_id, const std::string& user_id) {
  return exec_write("DELETE FROM org_members WHERE org_id = $1 AND user_id = $2", Params().text(org_id).text(user_id));
}

Result<std::optional<ApiKeyRow>> PgTransaction::get_api_key(const std::string& id) {
  TG_ASSIGN(auto r, run("SELECT id, user_id, secret_sha256, created_at_us, revoked_at_us FROM api_keys WHERE id = $1",
                        Params().text(id)));
  if (r.rows() == 0) return std::optional<ApiKeyRow>();
  return std::optional<ApiKeyRow>(ApiKeyRow{r.text(0, 0), r.text(0, 1), r.text(0, 2), r.ts(0, 3), r.opt_ts(0, 4)});
}
Status PgTransaction::insert_api_key(const ApiKeyRow& k) {
  return exec_write(
      "INSERT INTO api_keys (id, user_id, secret_sha256, created_at_us, revoked_at_us) VALUES ($1, $2, $3, $4, $5)",
      Params().text(k.id).text(k.user_id).text(k.secret_sha256).ts(k.created_at).opt_ts(k.revoked_at));
}
Status PgTransaction::revoke_api_key(const std::string& id, Timestamp at) {
  return exec_write("UPDATE api_keys SET revoked_at_us = COALESCE(revoked_at_us, $1) WHERE id = $2",
                    Params().ts(at).text(id));
}

// ---- accounts and grants ---------------------------------------------------------

Result<std::optional<AccountRow>> PgTransaction::get_account(const std::string& owner) {
  TG_ASSIGN(auto r, run(locked("SELECT owner, debt_microdollars, held_microdollars, created_at_us, latest_event_at_us "
                               "FROM accounts WHERE owner = $1",
                               "FOR NO KEY UPDATE", "o:" + owner),
                        Params().text(owner)));
  if (r.rows() == 0) return std::optional<AccountRow>();
  return std::optional<AccountRow>(AccountRow{r.text(0, 0), r.money(0, 1), r.money(0, 2), r.ts(0, 3), r.ts(0, 4)});
}
Status PgTransaction::insert_account(const AccountRow& a) {
  return exec_write(
      "INSERT INTO accounts (owner, debt_microdollars, held_microdollars, created_at_us, latest_event_at_us) "
      "VALUES ($1, $2, $3, $4, $5)",
      Params().text(a.owner).money(a.debt).money(a.held).ts(a.created_at).ts(a.latest_event_at));
}
Status PgTransaction::update_account(const AccountRow& a) {
  return exec_write(
      "UPDATE accounts SET debt_microdollars = $1, held_microdollars = $2, latest_event_at_us = $3 WHERE owner = $4",
      Params().money(a.debt).money(a.held).ts(a.latest_event_at).text(a.owner));
}

Result<std::vector<GrantRow>> PgTransaction::list_grants(const std::string& owner) {
  TG_ASSIGN(auto r, run(locked("SELECT " + kGrantCols + " FROM grants WHERE owner = $1 ORDER BY effective_at_us, id",
                               "FOR NO KEY UPDATE", "g:" + owner),
                        Params().text(owner)));
  return rows_of<GrantRow>(r, grant_from);
}
Result<std::optional<GrantRow>> PgTransaction::get_grant_by_idempotency_key(const std::string& key) {
  TG_ASSIGN(auto r, run("SELECT " + kGrantCols + " FROM grants WHERE idempotency_key = $1", Params().text(key)));
  if (r.rows() == 0) return std::optional<GrantRow>();
  return std::optional<GrantRow>(grant_from(r, 0));
}
Status PgTransaction::insert_grant(const GrantRow& g) {
  return exec_write("INSERT INTO grants (" + kGrantCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                    Params()
                        .text(g.id)
                        .text(g.owner)
                        .money(g.amount)
                        .money(g.remaining)
                        .money(g.expired)
                        .ts(g.effective_at)
                        .opt_ts(g.expires_at)
                        .text(g.idempotency_key)
                        .text(g.request_fingerprint)
                        .ts(g.created_at)
                        .boolean(g.activated)
                        .opt_ts(g.expiry_recorded_at));
}
Status PgTransaction::update_grant(const GrantRow& g) {
  return exec_write(
      "UPDATE grants SET remaining_microdollars = $1, expired_microdollars = $2, activated = $3, "
      "expiry_recorded_at_us = $4 WHERE id = $5",
      Params().money(g.remaining).money(g.expired).boolean(g.activated).opt_ts(g.expiry_recorded_at).text(g.id));
}

Status PgTransaction::upsert_expiry(const ExpiryRow& e) {
  return exec_write(
      "INSERT INTO grant_expiries (grant_id, owner, amount_microdollars, expired_at_us, recorded_at_us) "
      "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (grant_id) DO UPDATE SET "
      "amount_microdollars = excluded.amount_microdollars, recorded_at_us = excluded.recorded_at_us",
      Params().text(e.grant_id).text(e.owner).money(e.amount).ts(e.expired_at).ts(e.recorded_at));
}
Result<std::vector<ExpiryRow>> PgTransaction::list_expiries_for_owner(const std::string& owner) {
  TG_ASSIGN(auto r, run("SELECT grant_id, owner, amount_microdollars, expired_at_us, recorded_at_us FROM grant_expiries "
                        "WHERE owner = $1 ORDER BY expired_at_us, grant_id",
                        Params().text(owner)));
  return rows_of<ExpiryRow>(r, [](const PgResult& x, int i) {
    return ExpiryRow{x.text(i, 0), x.text(i, 1), x.money(i, 2), x.ts(i, 3), x.ts(i, 4)};
  });
}
Status PgTransaction::insert_adjustment(const AdjustmentRow& a) {
  return exec_write(
      "INSERT INTO ledger_adjustments (id, subject, field, stored_microdollars, recomputed_microdollars, at_us, reason) "
      "VALUES ($1, $2, $3, $4, $5, $6, $7)",
      Params().text(a.id).text(a.subject).text(a.field).money(a.stored).money(a.recomputed).ts(a.at).text(a.reason));
}
Result<std::vector<AdjustmentRow>> PgTransaction::list_adjustments(const std::string& subject) {
  TG_ASSIGN(auto r, run("SELECT id, subject, field, stored_microdollars, recomputed_microdollars, at_us, reason "
                        "FROM ledger_adjustments WHERE subject = $1 ORDER BY at_us, id",
                        Params().text(subject)));
  return rows_of<AdjustmentRow>(r, [](const PgResult& x, int i) {
    return AdjustmentRow{x.text(i, 0), x.text(i, 1), x.text(i, 2), x.money(i, 3),
                         x.money(i, 4), x.ts(i, 5),  x.text(i, 6)};
  });
}
Result<std::vector<std::string>> PgTransaction::list_owners_with_due_grants(Timestamp now, int64_t limit) {
  TG_ASSIGN(auto r, run("SELECT owner FROM grants WHERE NOT activated AND effective_at_us <= $1 "
                        "UNION SELECT owner FROM grants WHERE expires_at_us IS NOT NULL "
                        "AND expiry_recorded_at_us IS NULL AND expires_at_us <= $1 ORDER BY 1 LIMIT $2",
                        Params().ts(now).i64(limit)));
  return rows_of<std::string>(r, [](const PgResult& x, int i) { return x.text(i, 0); });
}

Result<std::optional<ExternalUsageRow>> PgTransaction::get_external_usage_by_idempotency_key(const std::string& key) {
  TG_ASSIGN(auto r, run("SELECT " + kUsageCols + " FROM external_usage WHERE idempotency_key = $1", Params().text(key)));
  if (r.rows() == 0) return std::optional<ExternalUsageRow>();
  return std::optional<ExternalUsageRow>(usage_from(r, 0));
}
Status PgTransaction::insert_external_usage(const ExternalUsageRow& u) {
  return exec_write("INSERT INTO external_usage (" + kUsageCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    Params()
                        .text(u.id)
                        .text(u.owner)
                        .money(u.amount)
                        .ts(u.at)
                        .text(u.idempotency_key)
                        .text(u.request_fingerprint)
                        .ts(u.created_at));
}
Result<std::vector<ExternalUsageRow>> PgTransaction::list_external_usage_for_owner(const std::string& owner) {
  TG_ASSIGN(auto r, run("SELECT " + kUsageCols + " FROM external_usage WHERE owner = $1 ORDER BY at_us, id",
                        Params().text(owner)));
  return rows_of<ExternalUsageRow>(r, usage_from);
}

// ---- allowance, counters -----------------------------------------------------------

Result<std::optional<AllowanceRow>> PgTransaction::get_allowance(const std::string& user_id, const std::string& month) {
  TG_ASSIGN(auto r, run(locked("SELECT " + kAllowanceCols + " FROM allowance_locks WHERE user_id = $1 AND month = $2",
                               "FOR NO KEY UPDATE", "a:" + user_id + "/" + month),
                        Params().text(user_id).text(month)));
  if (r.rows() == 0) return std::optional<AllowanceRow>();
  return std::optional<AllowanceRow>(allowance_from(r, 0));
}
Status PgTransaction::insert_allowance(const AllowanceRow& a) {
  return exec_write("INSERT INTO allowance_locks (" + kAllowanceCols + ") VALUES ($1, $2, $3, $4, $5, $6)",
                    Params()
                        .text(a.user_id)
                        .text(a.month)
                        .money(a.allowance)
                        .money(a.free_used)
                        .money(a.free_held)
                        .ts(a.locked_at));
}
Status PgTransaction::update_allowance(const AllowanceRow& a) {
  return exec_write(
      "UPDATE allowance_locks SET free_used_microdollars = $1, free_held_microdollars = $2 "
      "WHERE user_id = $3 AND month = $4",
      Params().money(a.free_used).money(a.free_held).text(a.user_id).text(a.month));
}

Status PgTransaction::add_to_counter(const CounterRow& d) {
  return exec_write(
      "INSERT INTO monthly_usage AS m (" + kCounterCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7) "
      "ON CONFLICT (user_id, month, context) DO UPDATE SET "
      "request_count = m.request_count + excluded.request_count, "
      "total_cost_microdollars = m.total_cost_microdollars + excluded.total_cost_microdollars, "
      "total_free_microdollars = m.total_free_microdollars + excluded.total_free_microdollars, "
      "total_charged_microdollars = m.total_charged_microdollars + excluded.total_charged_microdollars",
      Params()
          .text(d.user_id)
          .text(d.context)
          .text(d.month)
          .i64(d.request_count)
          .money(d.total_cost)
          .money(d.total_free)
          .money(d.total_charged));
}
Result<std::vector<CounterRow>> PgTransaction::list_counters(const std::string& user_id, const std::string& month) {
  TG_ASSIGN(auto r, run("SELECT " + kCounterCols + " FROM monthly_usage WHERE user_id = $1 AND month = $2 "
                        "ORDER BY context",
                        Params().text(user_id).text(month)));
  return rows_of<CounterRow>(r, counter_from);
}
Result<std::vector<CounterRow>> PgTransaction::list_counters_for_month(const std::string& month) {
  TG_ASSIGN(auto r, run("SELECT " + kCounterCols + " FROM monthly_usage WHERE month = $1 ORDER BY user_id, context",
                        Params().text(month)));
  return rows_of<CounterRow>(r, counter_from);
}

// ---- holds -------------------------------------------------------------------------

Status PgTransaction::insert_hold(const HoldRow& h) {
  return exec_write("INSERT INTO holds (" + kHoldCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                    Params()
                        .text(h.request_id)
                        .text(h.user_id)
                        .text(h.context)
                        .text(h.owner)
                        .text(h.path)
                        .text(h.month)
                        .ts(h.arrived_at)
                        .ts(h.expires_at)
                        .money(h.estimate)
                        .money(h.free_held)
                        .money(h.credit_held));
}
Result<std::optional<HoldRow>> PgTransaction::get_hold(const std::string& request_id) {
  TG_ASSIGN(auto r, run(locked("SELECT " + kHoldCols + " FROM holds WHERE request_id = $1", "FOR UPDATE", "h:" + request_id),
                        Params().text(request_id)));
  if (r.rows() == 0) return std::optional<HoldRow>();
  return std::optional<HoldRow>(hold_from(r, 0));
}
Status PgTransaction::delete_hold(const std::string& request_id) {
  return exec_write("DELETE FROM holds WHERE request_id = $1", Params().text(request_id));
}
Result<std::vector<HoldRow>> PgTransaction::list_holds_arrived_before(Timestamp t, int64_t limit) {
  // Holds another transaction is settling are skipped, so the recovery loops
  // of several instances share the work instead of queueing on each other.
  const std::string sql = "SELECT " + kHoldCols + " FROM holds WHERE arrived_at_us <= $1 "
                          "ORDER BY arrived_at_us, request_id LIMIT $2";
  TG_ASSIGN(auto r, run(locking_ ? sql + " FOR UPDATE SKIP LOCKED" : sql, Params().ts(t).i64(limit)));
  auto holds = rows_of<HoldRow>(r, hold_from);
  if (locking_) {
    for (const auto& h : holds) (void)locked("", "", "h:" + h.request_id);  // now held
  }
  return holds;
}

// ---- recompute -----------------------------------------------------------------------

Result<std::vector<std::string>> PgTransaction::list_owners() {
  TG_ASSIGN(auto r, run("SELECT owner FROM accounts ORDER BY owner", Params()));
  return rows_of<std::string>(r, [](const PgResult& x, int i) { return x.text(i, 0); });
}
Result<std::vector<AuditRow>> PgTransaction::list_audit_for_owner(const std::string& owner) {
  TG_ASSIGN(auto r, run("SELECT " + kAuditCols + " FROM audit_log WHERE owner = $1 ORDER BY arrived_at_us, request_id",
                        Params().text(owner)));
  return rows_of<AuditRow>(r, audit_from);
}
Result<std::unique_ptr<Cursor<AuditRow>>> PgTransaction::scan_audit_for_owner(const std::string& owner) {
  std::string name = fmt::format("tg_cursor_{}", ++cursors_opened_);
  TG_TRY(run("DECLARE " + name + " NO SCROLL CURSOR FOR SELECT " + kAuditCols +
                 " FROM audit_log WHERE owner = $1 ORDER BY arrived_at_us, request_id",
             Params().text(owner), /*prepare=*/false)
             .status());
  return std::unique_ptr<Cursor<AuditRow>>(std::make_unique<PgCursor<AuditRow>>(*this, name, &audit_from));
}
Result<std::unique_ptr<Cursor<ExternalUsageRow>>> PgTransaction::scan_external_usage_for_owner(
    const std::string& owner) {
  std::string name = fmt::format("tg_cursor_{}", ++cursors_opened_);
  TG_TRY(run("DECLARE " + name + " NO SCROLL CURSOR FOR SELECT " + kUsageCols +
                 " FROM external_usage WHERE owner = $1 ORDER BY at_us, id",
             Params().text(owner), /*prepare=*/false)
             .status());
  return std::unique_ptr<Cursor<ExternalUsageRow>>(
      std::make_unique<PgCursor<ExternalUsageRow>>(*this, name, &usage_from));
}
Result<std::vector<HoldRow>> PgTransaction::list_holds_for_owner(const std::string& owner) {
  TG_ASSIGN(auto r, run("SELECT " + kHoldCols + " FROM holds WHERE owner = $1 ORDER BY arrived_at_us, request_id",
                        Params().text(owner)));
  return rows_of<HoldRow>(r, hold_from);
}
Result<std::vector<AllowanceRow>> PgTransaction::list_allowances(const std::optional<std::string>& user_id) {
  // Two statements rather than "$1 IS NULL OR ...", which plans badly.
  if (user_id) {
    TG_ASSIGN(auto r, run("SELECT " + kAllowanceCols + " FROM allowance_locks WHERE user_id = $1 ORDER BY user_id, month",
                          Params().text(*user_id)));
    return rows_of<AllowanceRow>(r, allowance_from);
  }
  TG_ASSIGN(auto r, run("SELECT " + kAllowanceCols + " FROM allowance_locks ORDER BY user_id, month", Params()));
  return rows_of<AllowanceRow>(r, allowance_from);
}
Result<std::vector<CounterRow>> PgTransaction::list_counters_for_user(const std::string& user_id) {
  TG_ASSIGN(auto r, run("SELECT " + kCounterCols + " FROM monthly_usage WHERE user_id = $1 ORDER BY month, context",
                        Params().text(user_id)));
  return rows_of<CounterRow>(r, counter_from);
}
Result<std::vector<CounterRow>> PgTransaction::sum_audit(const std::string& user_id, const std::string& month) {
  auto bounds = month_bounds(month);
  if (!bounds) return std::vector<CounterRow>();
  TG_ASSIGN(auto r, run("SELECT user_id, context, month, COUNT(*), SUM(cost_microdollars), SUM(free_microdollars), "
                        "SUM(charged_microdollars) FROM audit_log WHERE user_id = $1 AND month = $2 "
                        "AND arrived_at_us >= $3 AND arrived_at_us < $4 "
                        "GROUP BY user_id, context, month ORDER BY context",
                        Params().text(user_id).text(month).i64(bounds->first).i64(bounds->second)));
  return rows_of<CounterRow>(r, counter_from);
}
Result<Microdollars> PgTransaction::sum_free_held(const std::string& user_id, const std::string& month) {
  TG_ASSIGN(auto r, run("SELECT COALESCE(SUM(free_held_microdollars), 0) FROM holds WHERE user_id = $1 AND month = $2",
                        Params().text(user_id).text(month)));
  return r.money(0, 0);
}

// ---- audit log --------------------------------------------------------------------------

Result<std::optional<AuditRow>> PgTransaction::get_audit(const std::string& request_id) {
  // Settlement asks this first. Locking the request's hold (if it still has
  // one) makes a second settlement of the same request wait for the first and
  // then, in its next statement, see the first one's audit row. The hold's
  // arrival also names the one partition where that row would be.
  std::optional<int64_t> arrived_us;
  if (locking_) {
    TG_ASSIGN(auto h, run(locked("SELECT arrived_at_us FROM holds WHERE request_id = $1", "FOR UPDATE",
                                 "h:" + request_id),
                          Params().text(request_id)));
    if (h.rows() > 0) arrived_us = h.i64(0, 0);
  }
  if (arrived_us) {
    TG_ASSIGN(auto r, run("SELECT " + kAuditCols + " FROM audit_log WHERE request_id = $1 AND arrived_at_us = $2",
                          Params().text(request_id).i64(*arrived_us)));
    if (r.rows() == 0) return std::optional<AuditRow>();
    return std::optional<AuditRow>(audit_from(r, 0));
  }
  TG_ASSIGN(auto r, run("SELECT " + kAuditCols + " FROM audit_log WHERE request_id = $1", Params().text(request_id)));
  if (r.rows() == 0) return std::optional<AuditRow>();
  return std::optional<AuditRow>(audit_from(r, 0));
}
Status PgTransaction::insert_audit(const AuditRow& a) {
  return exec_write("INSERT INTO audit_log (" + kAuditCols + ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                    Params()
                        .text(a.request_id)
                        .text(a.user_id)
                        .text(a.context)
                        .text(a.owner)
                        .text(a.path)
                        .text(a.month)
                        .ts(a.arrived_at)
                        .ts(a.settled_at)
                        .i64(a.upstream_status)
                        .money(a.cost)
                        .money(a.free)
                        .money(a.charged)
                        .text(a.cost_source));
}
Result<std::vector<AuditRow>> PgTransaction::list_audit(const AuditFilter& f) {
  // Only the conditions given, so each combination gets its own plan; a
  // month also bounds the arrival, which prunes the scan to its partition.
  std::string sql = "SELECT " + kAuditCols + " FROM audit_log WHERE TRUE";
  Params p;
  int n = 0;
  if (f.user_id) {
    sql += fmt::format(" AND user_id = ${}", ++n);
    p.text(*f.user_id);
  }
  if (f.context) {
    sql += fmt::format(" AND context = ${}", ++n);
    p.text(*f.context);
  }
  if (f.month) {
    sql += fmt::format(" AND month = ${}", ++n);
    p.text(*f.month);
    if (auto b = month_bounds(*f.month)) {
      sql += fmt::format(" AND arrived_at_us >= ${} AND arrived_at_us < ${}", n + 1, n + 2);
      n += 2;
      p.i64(b->first).i64(b->second);
    }
  }
  if (f.after) {
    sql += fmt::format(" AND (arrived_at_us, request_id) > (${}, ${})", n + 1, n + 2);
    n += 2;
    p.ts(f.after->first).text(f.after->second);
  }
  sql += fmt::format(" ORDER BY arrived_at_us, request_id LIMIT ${}", ++n);
  p.i64(f.limit);
  TG_ASSIGN(auto r, run(sql, p));
  return rows_of<AuditRow>(r, audit_from);
}

}  // namespace tollgate::storage::pg
