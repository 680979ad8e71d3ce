// storage::Transaction on a PostgreSQL connection, inside a transaction the
// store opened (READ COMMITTED for writers, REPEATABLE READ READ ONLY for
// read-only stores).
//
// Several tollgate processes write to one database, so a write transaction
// locks what it reads before deciding anything (SPEC §6 holds across
// instances): the allowance row (FOR NO KEY UPDATE) is the user-month's
// mutex, the account row the owner's, and the owner's grants are locked with
// it; a hold is locked by the settlement that resolves it. Each later
// statement of READ COMMITTED sees every commit that released those locks,
// so an operation behaves as if it ran alone, as with SQLite's single writer.
// Rows that do not exist yet cannot be locked: two first requests of a month
// both insert the allowance row, the loser gets a unique violation, and the
// store re-runs its operation, which then finds and locks the winner's row.
//
// Used by one thread at a time.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_set>

#include "storage/postgres/pg_conn.h"
#include "storage/store.h"

namespace tollgate::storage::pg {

class PgTransaction final : public Transaction {
 public:
  // locking: take row locks (writers); false in READ ONLY transactions.
  PgTransaction(Connection& conn, bool locking) : conn_(conn), locking_(locking) {}

  // Called by the store before each run of an operation.
  void begin_operation() {
    fault_ = Fault::kNone;
    first_error_ = Status::Ok();
    op_locked_.clear();
    ++generation_;
  }
  // Called when the current operation succeeded (its savepoint is released):
  // the row locks it took now belong to the transaction.
  void operation_committed() {
    tx_locked_.insert(op_locked_.begin(), op_locked_.end());
    op_locked_.clear();
  }
  // The first failure of the current operation, if any: its kind, and its
  // Status (for an operation that ignored a failed statement: PostgreSQL
  // aborted its writes from there on, so it must not count as done).
  Fault fault() const { return fault_; }
  const Status& first_error() const { return first_error_; }
  bool failed() const { return fault_ != Fault::kNone; }
  // Reads, in this transaction, of rows an earlier operation of it had locked:
  // a hot user or owner whose rows the transaction keeps updating.
  int64_t relocks() const { return relocks_; }
  uint64_t generation() const { return generation_; }
  Connection& connection() { return conn_; }

  Result<std::optional<UserRow>> get_user(const std::string& id) override;
  Status insert_user(const UserRow& row) override;
  Status update_user(const UserRow& row) override;

  Result<std::optional<OrgRow>> get_org(const std::string& id) override;
  Status insert_org(const OrgRow& row) override;
  Result<bool> is_member(const std::string& org_id, const std::string& user_id) override;
  Status add_member(const std::string& org_id, const std::string& user_id, Timestamp at) override;
  Status remove_member(const std::string& org_id, const std::string& user_id) override;

  Result<std::optional<ApiKeyRow>> get_api_key(const std::string& id) override;
  Status insert_api_key(const ApiKeyRow& row) override;
  Status revoke_api_key(const std::string& id, Timestamp at) override;

  Result<std::optional<AccountRow>> get_account(const std::string& owner) override;
  Status insert_account(const AccountRow& row) override;
  Status update_account(const AccountRow& row) override;

  Result<std::vector<GrantRow>> list_grants(const std::string& owner) override;
  Result<std::optional<GrantRow>> get_grant_by_idempotency_key(const std::string& key) override;
  Status insert_grant(const GrantRow& row) override;
  Status update_grant(const GrantRow& row) override;

  Status upsert_expiry(const ExpiryRow& row) override;
  Result<std::vector<ExpiryRow>> list_expiries_for_owner(const std::string& owner) override;
  Status insert_adjustment(const AdjustmentRow& row) override;
  Result<std::vector<AdjustmentRow>> list_adjustments(const std::string& subject) override;
  Result<std::vector<std::string>> list_owners_with_due_grants(Timestamp now, int64_t limit) override;

  Result<std::optional<ExternalUsageRow>> get_external_usage_by_idempotency_key(const std::string& key) override;
  Status insert_external_usage(const ExternalUsageRow& row) override;
  Result<std::vector<ExternalUsageRow>> list_external_usage_for_owner(const std::string& owner) override;

  Result<std::optional<AllowanceRow>> get_allowance(const std::string& user_id, const std::string& month) override;
  Status insert_allowance(const AllowanceRow& row) override;
  Status update_allowance(const AllowanceRow& row) override;

  Status add_to_counter(const CounterRow& delta) override;
  Result<std::vector<CounterRow>> list_counters(const std::string& user_id, const std::string& month) override;
  Result<std::vector<CounterRow>> list_counters_for_month(const std::string& month) override;

  Status insert_hold(const HoldRow& row) override;
  Result<std::optional<HoldRow>> get_hold(const std::string& request_id) override;
  Status delete_hold(const std::string& request_id) override;
  Result<std::vector<HoldRow>> list_holds_arrived_before(Timestamp t, int64_t limit) override;

  Result<std::vector<std::string>> list_owners() override;
  Result<std::vector<AuditRow>> list_audit_for_owner(const std::string& owner) override;
  Result<std::unique_ptr<Cursor<AuditRow>>> scan_audit_for_owner(const std::string& owner) override;
  Result<std::unique_ptr<Cursor<ExternalUsageRow>>> scan_external_usage_for_owner(const std::string& owner) override;
  Result<std::vector<HoldRow>> list_holds_for_owner(const std::string& owner) override;
  Result<std::vector<AllowanceRow>> list_allowances(const std::optional<std::string>& user_id) override;
  Result<std::vector<CounterRow>> list_counters_for_user(const std::string& user_id) override;
  Result<std::vector<CounterRow>> sum_audit(const std::string& user_id, const std::string& month) override;
  Result<Microdollars> sum_free_held(const std::string& user_id, const std::string& month) override;

  Result<std::optional<AuditRow>> get_audit(const std::string& request_id) override;
  Status insert_audit(const AuditRow& row) override;
  Result<std::vector<AuditRow>> list_audit(const AuditFilter& filter) override;

  // For cursors: runs a statement, recording a failure as the operation's.
  Result<PgResult> run(const std::string& sql, const Params& params, bool prepare = true);
  // Records a failure found outside a statement (the end of a pipeline).
  void note_failure(const Status& s, Fault f) {
    if (fault_ != Fault::kNone) return;
    fault_ = f == Fault::kNone ? Fault::kOther : f;
    first_error_ = s;
  }

 private:
  // Writes are pipelined while the store has the connection in pipeline
  // mode: their outcome is known at the next read or at the operation's end.
  Status exec_write(const std::string& sql, const Params& params) {
    Status s = conn_.write(sql, params);
    if (!s.ok()) note_failure(s, conn_.last_fault());
    return s;
  }
  // sql + " " + clause when this transaction takes row locks and does not
  // hold the lock of `key` already. Each row is locked once per transaction:
  // locking it again from a later savepoint would make PostgreSQL record
  // every locker in a MultiXact, which grows with each operation of a batch.
  std::string locked(const std::string& sql, const char* clause, const std::string& key) {
    if (locking_ && tx_locked_.count(key)) ++relocks_;
    if (!locking_ || tx_locked_.count(key) || op_locked_.count(key)) return sql;
    op_locked_.insert(key);
    return sql + " " + clause;
  }

  Connection& conn_;
  bool locking_;
  Fault fault_ = Fault::kNone;
  Status first_error_;
  // Row-lock keys ("a:user/month", "o:owner", "g:owner", "h:request") taken by
  // the running operation, and by the operations already done in this transaction.
  std::unordered_set<std::string> op_locked_, tx_locked_;
  uint64_t generation_ = 0;
  int64_t relocks_ = 0;
  uint64_t cursors_opened_ = 0;
};

}  // namespace tollgate::storage::pg
