// Ledger operations, each written once against storage::Transaction and run
// atomically by any backend. Every operation has the same shape: validate,
// check idempotency, compute the new state in locals, write it, assert.
// Outcomes that are part of the product (refusals) are values of closed
// enums, in order of precedence; store failures are Status values.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/money.h"
#include "common/status.h"
#include "common/time.h"
#include "config/config.h"
#include "storage/store.h"

namespace tollgate::ledger {

// ---- Admission -------------------------------------------------------------

struct AdmitInput {
  // Credential: an API key (id + SHA-256 of the presented secret), or a user
  // id already authenticated elsewhere (JWT).
  std::optional<std::string> key_id;
  std::string secret_sha256;
  std::optional<std::string> authenticated_user_id;
  bool credential_present = false;

  std::optional<std::string> org_id;  // org context header, if any
  // A validation failure found before the store was asked; reported only
  // once authentication and the org check have passed (SPEC check order).
  std::optional<int> prevalidation_status;

  std::string request_id;
  std::string path;
  Timestamp arrived_at;
  Microdollars estimate;
};

// In order of precedence.
enum class AdmitResult {
  kAdmitted,
  kUnauthenticated,  // 401
  kBlocked,          // 403
  kNotMember,        // 403
  kPrevalidation,    // the caller's prevalidation_status
  kInsufficient,     // 402
};

struct AdmitOutcome {
  AdmitResult result = AdmitResult::kUnauthenticated;
  std::string user_id;
  std::string context;  // "personal" / "org:ID"
  std::string owner;    // paying owner
  storage::HoldRow hold;
  // Figures for a 402 body.
  Microdollars monthly_allowance;
  Microdollars free_used;
  Microdollars balance;
  bool free_remaining_below_estimate = false;
};

storage::Operation admit(const Config& config, const AdmitInput& in, AdmitOutcome& out);

// ---- Settlement ------------------------------------------------------------

struct SettleInput {
  std::string request_id;
  Microdollars cost;
  std::string cost_source;  // upstream | estimate | recovered | none
  int upstream_status = 0;
  Timestamp settled_at;
};

struct SettleOutcome {
  bool already_settled = false;  // exactly once: a replay returns the stored row
  storage::AuditRow row;
  Microdollars allowance_remaining;  // locked allowance − free used, after this
  Microdollars balance;              // paying owner's balance after this
};

// Fails with NotFound if the request has neither a hold nor an audit row.
storage::Operation settle(const SettleInput& in, SettleOutcome& out);

// Resolves holds whose time-out (arrival + [holds] timeout_ms) passed, by the
// recovery policy. `resolved`
// receives the audit rows written.
storage::Operation recover_expired_holds(const Config& config, Timestamp now, int64_t limit,
                                         std::vector<storage::AuditRow>& resolved);

// ---- Accounts and grants ---------------------------------------------------

struct GrantInput {
  std::string owner;
  int64_t amount_microdollars = 0;
  std::optional<Timestamp> effective_at;  // as sent
  std::optional<Timestamp> expires_at;
  std::string idempotency_key;
  std::string request_fingerprint;
  Timestamp now;
};

struct GrantOutcome {
  bool replayed = false;
  storage::GrantRow grant;
};

storage::Operation create_grant(const GrantInput& in, GrantOutcome& out);

struct ExternalUsageInput {
  std::string owner;
  int64_t amount_microdollars = 0;
  Timestamp at;
  std::string idempotency_key;
  std::string request_fingerprint;
  Timestamp now;
};

struct ExternalUsageOutcome {
  bool replayed = false;
  storage::ExternalUsageRow row;
  Microdollars balance;  // the owner's balance afterwards
};

// Debits usage metered elsewhere; never refused for lack of funds (it goes
// into debt). Idempotent by key.
storage::Operation record_external_usage(const ExternalUsageInput& in, ExternalUsageOutcome& out);

// The periodic sweep: applies due grant events (taking effect, expiries) for
// up to `limit` owners. Spending paths apply them too; the sweep makes them
// visible for owners nobody touches.
storage::Operation apply_due_grant_events_sweep(Timestamp now, int64_t limit, int64_t& owners);

struct AccountView {
  storage::AccountRow account;
  Microdollars balance;
  std::vector<storage::GrantRow> grants;
};
storage::Operation read_account(const std::string& owner, Timestamp now, AccountView& out);

// ---- Users, organizations, keys ---------------------------------------------

storage::Operation create_user(const storage::UserRow& user);
storage::Operation update_user(const std::string& id, std::optional<std::optional<std::string>> tier,
                               std::optional<bool> blocked);
storage::Operation create_org(const storage::OrgRow& org);
storage::Operation add_member(const std::string& org_id, const std::string& user_id, Timestamp now);
storage::Operation remove_member(const std::string& org_id, const std::string& user_id);
storage::Operation create_api_key(const storage::ApiKeyRow& key);
storage::Operation revoke_api_key(const std::string& id, Timestamp now);

// ---- Usage -------------------------------------------------------------------

struct UsageView {
  Microdollars free_allowance;
  Microdollars free_used;
  std::vector<storage::CounterRow> contexts;
};
storage::Operation read_usage(const Config& config, const std::string& user_id, const std::string& month,
                              UsageView& out);

}  // namespace tollgate::ledger
