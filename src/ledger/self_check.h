// The server's running self-check: recomputes a rotating sample of owners
// from the records and keeps the drift found (SPEC guarantee 3: it must stay
// 0). Shared between the background loop that updates it and the admin API
// and metrics that read it. Thread-safe.
#pragma once

#include <mutex>
#include <string>
#include <vector>

#include "common/time.h"
#include "ledger/recompute.h"

namespace tollgate::ledger {

class SelfCheck {
 public:
  struct Snapshot {
    Timestamp last_run_at;
    int64_t runs = 0;
    int64_t owners_checked = 0;     // in the last run
    int64_t drift_microdollars = 0;  // Σ |stored − recomputed| in the last run
    std::vector<Drift> drift;
  };

  // The owners to check next, from all owners, rotating through them.
  std::vector<std::string> next_sample(const std::vector<std::string>& owners, size_t n);
  void record(Timestamp at, const RecomputeReport& report);
  Snapshot snapshot() const;
  std::string snapshot_json() const;

 private:
  mutable std::mutex mu_;
  size_t cursor_ = 0;
  Snapshot last_;
};

}  // namespace tollgate::ledger
