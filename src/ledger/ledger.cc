#include "ledger/ledger.h"

#include <algorithm>
#include <cassert>
#include <numeric>

namespace tollgate::ledger {

bool grant_live_at(const storage::GrantRow& g, Timestamp t) {
  return g.effective_at <= t && (!g.expires_at || t < *g.expires_at);
}

bool draws_before(const storage::GrantRow& a, const storage::GrantRow& b) {
  if (a.expires_at.has_value() != b.expires_at.has_value()) return a.expires_at.has_value();
  if (a.expires_at && *a.expires_at != *b.expires_at) return *a.expires_at < *b.expires_at;
  if (a.effective_at != b.effective_at) return a.effective_at < b.effective_at;
  return a.id < b.id;
}

Microdollars balance_at(const std::vector<storage::GrantRow>& grants, Microdollars debt, Timestamp t) {
  Microdollars sum;
  for (const auto& g : grants) {
    if (grant_live_at(g, t)) sum += g.remaining;
  }
  return sum - debt;
}

Microdollars draw(std::vector<storage::GrantRow>& grants, Microdollars amount, Timestamp t,
                  std::vector<size_t>& touched) {
  assert(amount >= kZero);
  std::vector<size_t> order(grants.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return draws_before(grants[a], grants[b]); });
  for (size_t i : order) {
    if (amount == kZero) break;
    auto& g = grants[i];
    if (!grant_live_at(g, t) || g.remaining == kZero) continue;
    Microdollars take = min(amount, g.remaining);
    g.remaining -= take;
    amount -= take;
    touched.push_back(i);
  }
  return amount;
}

void apply_due_grant_events(std::vector<storage::GrantRow>& grants, Microdollars& debt, Timestamp now,
                            const std::vector<Timestamp>& hold_arrivals, DueEffects& effects) {
  struct Due {
    Timestamp at;
    int kind;  // 0: expiry, 1: taking effect
    size_t index;
  };
  std::vector<Due> due;
  for (size_t i = 0; i < grants.size(); ++i) {
    const auto& g = grants[i];
    if (!g.activated && g.effective_at <= now) due.push_back({g.effective_at, 1, i});
    if (g.expires_at && !g.expiry_recorded_at && *g.expires_at <= now) due.push_back({*g.expires_at, 0, i});
  }
  std::sort(due.begin(), due.end(), [&](const Due& a, const Due& b) {
    if (a.at != b.at) return a.at < b.at;
    if (a.kind != b.kind) return a.kind < b.kind;
    return grants[a.index].id < grants[b.index].id;
  });
  for (const auto& d : due) {
    auto& g = grants[d.index];
    if (d.kind == 1) {
      g.activated = true;
      Microdollars take = min(debt, g.remaining);
      g.remaining -= take;
      debt -= take;
    } else {
      bool blocked = std::any_of(hold_arrivals.begin(), hold_arrivals.end(),
                                 [&](Timestamp arrival) { return arrival < *g.expires_at; });
      if (blocked) continue;
      g.expired += g.remaining;
      effects.expiries.push_back(storage::ExpiryRow{g.id, g.owner, g.remaining, *g.expires_at, now});
      g.remaining = kZero;
      g.expiry_recorded_at = now;
    }
    effects.touched.push_back(d.index);
    effects.latest_event = max_time(effects.latest_event, d.at);
  }
}

Microdollars unheld_free(const storage::AllowanceRow& a) {
  return max(kZero, a.allowance - a.free_used - a.free_held);
}

AdmissionFigures admission_figures(Microdollars unheld, Microdollars balance, Microdollars credit_held) {
  AdmissionFigures f;
  f.free = unheld;
  f.credit = balance - credit_held;
  f.available = f.free + max(kZero, f.credit);
  return f;
}

HoldSplit hold_for(Microdollars estimate, const AdmissionFigures& f) {
  Microdollars hold = min(max(estimate, kZero), f.available);
  Microdollars free = min(hold, f.free);
  return HoldSplit{free, hold - free};
}

CostSplit split_cost(Microdollars cost, Microdollars own_free_hold, Microdollars unheld) {
  assert(cost >= kZero);
  Microdollars free = min(cost, own_free_hold + unheld);
  return CostSplit{free, cost - free};
}

}  // namespace tollgate::ledger
