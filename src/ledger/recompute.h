// Recompute: rebuilds every owner's grant remainders, debt, balance and holds,
// and every user-month's free usage and monthly counters, from the records
// alone (grants, the audit log, open holds), replayed in time order, and
// reports each difference from the stored state. Runs inside one store
// operation, one owner at a time.
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
  std::vector<Drift> drift;
};

// owner: limit the check to one owner (and, for a user, their user-months).
storage::Operation recompute(std::optional<std::string> owner, Timestamp now, RecomputeReport& out);

std::string recompute_report_json(const RecomputeReport& report);

}  // namespace tollgate::ledger
