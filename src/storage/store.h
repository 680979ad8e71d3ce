// The storage interface. The ledger (src/ledger) expresses every operation as
// a function of a Transaction: typed reads and writes of the rows it needs.
// A backend (sqlite/, later postgres/ and memory/) implements Transaction and
// runs such functions atomically; Store batches many of them into one
// database transaction (group commit), each isolated by a savepoint so one
// failing operation does not fail the others.
//
// Thread-safety: a Transaction is used by one thread, inside Store::run. Store
// itself is thread-safe. No header here includes a database client library.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"

namespace tollgate::storage {

struct UserRow {
  std::string id;
  std::optional<std::string> tier;
  bool blocked = false;
  Timestamp created_at;
};

struct OrgRow {
  std::string id;
  std::string name;
  Timestamp created_at;
};

struct ApiKeyRow {
  std::string id;
  std::string user_id;
  std::string secret_sha256;  // hex
  Timestamp created_at;
  std::optional<Timestamp> revoked_at;
};

// An owner's account. balance = Σ remaining of grants live now − debt.
struct AccountRow {
  std::string owner;  // "user:ID" / "org:ID"
  Microdollars debt;  // usage that found no live grant, not yet repaid (>= 0)
  Microdollars held;  // credit holds of in-flight requests paid by this owner
  Timestamp created_at;
  // Time of the latest ledger event applied (usage, grant taking effect,
  // expiry); an admin entry dated before it makes the owner be rebuilt.
  Timestamp latest_event_at;
};

struct GrantRow {
  std::string id;
  std::string owner;
  Microdollars amount;
  Microdollars remaining;
  Microdollars expired;
  Timestamp effective_at;
  std::optional<Timestamp> expires_at;
  std::string idempotency_key;
  std::string request_fingerprint;  // the fields as sent, to tell a replay from a conflict
  Timestamp created_at;
  bool activated = false;                       // its effective_at was applied (debt repaid)
  std::optional<Timestamp> expiry_recorded_at;  // when its expiry was recorded, once
};

// The explicit ledger entry of a grant's expiry: what remained at expires_at.
struct ExpiryRow {
  std::string grant_id;
  std::string owner;
  Microdollars amount;
  Timestamp expired_at;  // the grant's expires_at
  Timestamp recorded_at;
};

// A correction written by `recompute --fix`: the stored figure, the one the
// records give, and when and why it was corrected. Never a silent overwrite.
struct AdjustmentRow {
  std::string id;
  std::string subject;  // "user:u1", "u1/personal/2025-03", "u1/2025-03"
  std::string field;
  Microdollars stored;
  Microdollars recomputed;
  Timestamp at;
  std::string reason;
};

// Pull-style iteration over rows the store streams (memory stays bounded).
template <typename Row>
class Cursor {
 public:
  virtual ~Cursor() = default;
  // Fills row and returns true, or returns false at the end.
  virtual Result<bool> next(Row& row) = 0;
};

// Usage metered elsewhere (for example LLM tokens), debited from an owner's
// ledger at its own timestamp.
struct ExternalUsageRow {
  std::string id;
  std::string owner;
  Microdollars amount;
  Timestamp at;
  std::string idempotency_key;
  std::string request_fingerprint;
  Timestamp created_at;
};

// The allowance of one (user, month), locked at the first admitted request.
struct AllowanceRow {
  std::string user_id;
  std::string month;  // "YYYY-MM"
  Microdollars allowance;
  Microdollars free_used;
  Microdollars free_held;
  Timestamp locked_at;
};

// The monthly counter per (user, context, month).
struct CounterRow {
  std::string user_id;
  std::string context;  // "personal" / "org:ID"
  std::string month;
  int64_t request_count = 0;
  Microdollars total_cost;
  Microdollars total_free;
  Microdollars total_charged;
};

struct HoldRow {
  std::string request_id;
  std::string user_id;
  std::string context;
  std::string owner;  // who pays the charged part
  std::string path;
  std::string month;
  Timestamp arrived_at;
  Timestamp expires_at;  // arrival + the hold time-out in force at admission (informational)
  Microdollars estimate;
  Microdollars free_held;
  Microdollars credit_held;
};

struct AuditRow {
  std::string request_id;
  std::string user_id;
  std::string context;
  std::string owner;
  std::string path;
  std::string month;
  Timestamp arrived_at;
  Timestamp settled_at;
  int upstream_status = 0;  // 0: no answer
  Microdollars cost;
  Microdollars free;
  Microdollars charged;
  std::string cost_source;  // upstream | estimate | recovered | none
};

struct AuditFilter {
  std::optional<std::string> user_id;
  std::optional<std::string> context;  // "org:ID" for ?org=
  std::optional<std::string> month;
  // Cursor: rows strictly after (arrived_at, request_id).
  std::optional<std::pair<Timestamp, std::string>> after;
  int64_t limit = 100;
};

class Transaction {
 public:
  virtual ~Transaction() = default;

  virtual Result<std::optional<UserRow>> get_user(const std::string& id) = 0;
  virtual Status insert_user(const UserRow& row) = 0;
  virtual Status update_user(const UserRow& row) = 0;

  virtual Result<std::optional<OrgRow>> get_org(const std::string& id) = 0;
  virtual Status insert_org(const OrgRow& row) = 0;
  virtual Result<bool> is_member(const std::string& org_id, const std::string& user_id) = 0;
  virtual Status add_member(const std::string& org_id, const std::string& user_id, Timestamp at) = 0;
  virtual Status remove_member(const std::string& org_id, const std::string& user_id) = 0;

  virtual Result<std::optional<ApiKeyRow>> get_api_key(const std::string& id) = 0;
  virtual Status insert_api_key(const ApiKeyRow& row) = 0;
  virtual Status revoke_api_key(const std::string& id, Timestamp at) = 0;

  virtual Result<std::optional<AccountRow>> get_account(const std::string& owner) = 0;
  virtual Status insert_account(const AccountRow& row) = 0;
  virtual Status update_account(const AccountRow& row) = 0;

  virtual Result<std::vector<GrantRow>> list_grants(const std::string& owner) = 0;
  virtual Result<std::optional<GrantRow>> get_grant_by_idempotency_key(const std::string& key) = 0;
  virtual Status insert_grant(const GrantRow& row) = 0;
  virtual Status update_grant(const GrantRow& row) = 0;  // remaining, expired, activated, expiry_recorded_at

  virtual Status upsert_expiry(const ExpiryRow& row) = 0;  // one per grant
  virtual Result<std::vector<ExpiryRow>> list_expiries_for_owner(const std::string& owner) = 0;
  virtual Status insert_adjustment(const AdjustmentRow& row) = 0;
  virtual Result<std::vector<AdjustmentRow>> list_adjustments(const std::string& subject) = 0;
  // Owners with a grant due to take effect or expire by `now`, for the sweep.
  virtual Result<std::vector<std::string>> list_owners_with_due_grants(Timestamp now, int64_t limit) = 0;

  virtual Result<std::optional<ExternalUsageRow>> get_external_usage_by_idempotency_key(const std::string& key) = 0;
  virtual Status insert_external_usage(const ExternalUsageRow& row) = 0;
  virtual Result<std::vector<ExternalUsageRow>> list_external_usage_for_owner(const std::string& owner) = 0;

  virtual Result<std::optional<AllowanceRow>> get_allowance(const std::string& user_id,
                                                           const std::string& month) = 0;
  virtual Status insert_allowance(const AllowanceRow& row) = 0;
  virtual Status update_allowance(const AllowanceRow& row) = 0;

  virtual Status add_to_counter(const CounterRow& delta) = 0;  // upsert, adding
  virtual Result<std::vector<CounterRow>> list_counters(const std::string& user_id,
                                                        const std::string& month) = 0;
  virtual Result<std::vector<CounterRow>> list_counters_for_month(const std::string& month) = 0;

  virtual Status insert_hold(const HoldRow& row) = 0;
  virtual Result<std::optional<HoldRow>> get_hold(const std::string& request_id) = 0;
  virtual Status delete_hold(const std::string& request_id) = 0;
  // Holds of requests that arrived at or before t, oldest first.
  virtual Result<std::vector<HoldRow>> list_holds_arrived_before(Timestamp t, int64_t limit) = 0;

  // For recompute: every owner, and the records of one owner or one user-month.
  virtual Result<std::vector<std::string>> list_owners() = 0;
  virtual Result<std::vector<AuditRow>> list_audit_for_owner(const std::string& owner) = 0;
  // Streams an owner's audit rows / external usage in time order (arrival, request id / at, id).
  // A cursor lives only within the operation that opened it.
  virtual Result<std::unique_ptr<Cursor<AuditRow>>> scan_audit_for_owner(const std::string& owner) = 0;
  virtual Result<std::unique_ptr<Cursor<ExternalUsageRow>>> scan_external_usage_for_owner(const std::string& owner) = 0;
  virtual Result<std::vector<HoldRow>> list_holds_for_owner(const std::string& owner) = 0;
  virtual Result<std::vector<AllowanceRow>> list_allowances(const std::optional<std::string>& user_id) = 0;
  virtual Result<std::vector<CounterRow>> list_counters_for_user(const std::string& user_id) = 0;
  // Σ over audit rows per (context) of one user-month, as counter rows.
  virtual Result<std::vector<CounterRow>> sum_audit(const std::string& user_id, const std::string& month) = 0;
  // Σ of free_held over the holds of one user-month.
  virtual Result<Microdollars> sum_free_held(const std::string& user_id, const std::string& month) = 0;

  virtual Result<std::optional<AuditRow>> get_audit(const std::string& request_id) = 0;
  virtual Status insert_audit(const AuditRow& row) = 0;
  virtual Result<std::vector<AuditRow>> list_audit(const AuditFilter& filter) = 0;
};

// An operation: runs inside a transaction; returning a non-ok Status rolls
// back that operation's writes only.
using Operation = std::function<Status(Transaction&)>;

class Store {
 public:
  virtual ~Store() = default;
  // Runs op atomically (possibly grouped with other ops in one commit) and
  // calls done with its Status once the outcome is durable. Thread-safe;
  // done runs on the store's thread.
  virtual void submit(Operation op, std::function<void(Status)> done) = 0;
  // Like submit, for an operation that only reads and may take long
  // (recompute, self-check): backends run it on a snapshot beside the
  // writers instead of in a group-commit batch. Writes in it fail.
  virtual void submit_read(Operation op, std::function<void(Status)> done) { submit(std::move(op), std::move(done)); }
  // Blocking convenience for the command line and tests.
  virtual Status run(Operation op) = 0;
  virtual void shutdown() = 0;
};

struct StoreOptions {
  bool durable_power = false;  // survive power loss, not just kill -9
  int64_t batch_max = 256;
  bool read_only = false;
  int64_t pool_size = 4;  // PostgreSQL: connections (each with a worker thread)
};

// Opens the store named by a database URL (sqlite:PATH or postgresql://...),
// creating and migrating it unless read_only (storage/open_store.cc).
Result<std::unique_ptr<Store>> open_store(const std::string& url, const StoreOptions& options);
// The URL for logs: a password in it is replaced by "***".
std::string redacted_url(const std::string& url);

}  // namespace tollgate::storage
