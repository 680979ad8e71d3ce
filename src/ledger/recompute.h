// Recompute: rebuilds an owner's grant remainders, expiries, debt and holds,
// and every user-month's free usage and monthly counters, from the records
// alone (grants, the audit log, external usage, open holds), replayed in time
// order, and reports each difference from the stored state. The replay
// streams the owner's usage through cursors: memory is bounded by the
// owner's grants and open holds, not by the number of events. With `fix`,
// every difference is written as an explicit adjustment entry and the stored
// figure is set to the recomputed one.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/money.h"
#include "common/time.h"
#include "storage/store.h"

namespace tollgate::ledger {

struct Drift {
  std::string subject_kind;  // "owner" or "counter"
  std::string subject;       // "user:u1", or "u1/personal/2025-03", "u1/2025-03"
  std::string field;
  Microdollars stored;
  Microdollars recomputed;
};

struct RecomputeReport {
  int64_t owners_checked = 0;
  int64_t events_replayed = 0;
  std::vector<Drift> drift;
  bool fixed = false;
};

// The state of one owner as a chronological replay of its records gives it.
struct OwnerReplay {
  std::vector<storage::GrantRow> grants;  // stored rows with replayed remaining/expired/flags
  std::vector<storage::ExpiryRow> expiries;
  Microdollars debt;
  Microdollars held;  // Σ credit holds of open holds
  Timestamp latest_event;
  int64_t events = 0;
};
Status replay_owner(storage::Transaction& tx, const std::string& owner, Timestamp now, OwnerReplay& out);

// Writes a replayed state as the owner's stored state (grants, expiries, debt).
Status write_owner_state(storage::Transaction& tx, const std::string& owner, const OwnerReplay& replay);

// owner: limit the check to one owner (and, for a user, their user-months).
storage::Operation recompute(std::optional<std::string> owner, Timestamp now, bool fix, RecomputeReport& out);

// Checks only these owners (and, for users, their user-months); read-only.
storage::Operation recompute_sample(std::vector<std::string> owners, Timestamp now, RecomputeReport& out);

// Every owner, for picking a sample.
storage::Operation list_owners(std::vector<std::string>& out);

std::string recompute_report_json(const RecomputeReport& report);

}  // namespace tollgate::ledger
