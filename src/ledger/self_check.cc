#include "ledger/self_check.h"

#include <boost/json.hpp>

#include <cstdlib>

namespace tollgate::ledger {

std::vector<std::string> SelfCheck::next_sample(const std::vector<std::string>& owners, size_t n) {
  std::lock_guard lk(mu_);
  std::vector<std::string> out;
  if (owners.empty()) return out;
  for (size_t i = 0; i < n && i < owners.size(); ++i) out.push_back(owners[(cursor_ + i) % owners.size()]);
  cursor_ = (cursor_ + out.size()) % owners.size();
  return out;
}

void SelfCheck::record(Timestamp at, const RecomputeReport& report) {
  std::lock_guard lk(mu_);
  last_.last_run_at = at;
  last_.runs += 1;
  last_.owners_checked = report.owners_checked;
  last_.drift = report.drift;
  last_.drift_microdollars = 0;
  for (const auto& d : report.drift) last_.drift_microdollars += std::llabs(d.stored.value() - d.recomputed.value());
}

SelfCheck::Snapshot SelfCheck::snapshot() const {
  std::lock_guard lk(mu_);
  return last_;
}

std::string SelfCheck::snapshot_json() const {
  Snapshot s = snapshot();
  RecomputeReport r;
  r.owners_checked = s.owners_checked;
  r.drift = s.drift;
  boost::json::object o = boost::json::parse(recompute_report_json(r)).as_object();
  o["runs"] = s.runs;
  o["last_run_at"] = s.runs ? boost::json::value(format_rfc3339(s.last_run_at)) : boost::json::value(nullptr);
  o["drift_microdollars"] = s.drift_microdollars;
  return boost::json::serialize(o);
}

}  // namespace tollgate::ledger
