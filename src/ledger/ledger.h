// Pure ledger arithmetic: admission, the free/charged split, and drawing
// usage from grants. No I/O; every function is deterministic in its inputs.
#pragma once

#include <optional>
#include <vector>

#include "common/money.h"
#include "common/time.h"
#include "storage/store.h"

namespace tollgate::ledger {

// A grant pays for usage at t when effective_at <= t < expires_at.
bool grant_live_at(const storage::GrantRow& g, Timestamp t);

// Usage draw order: earliest expires_at first, non-expiring last, then older
// effective_at, then grant id.
bool draws_before(const storage::GrantRow& a, const storage::GrantRow& b);

// balance(t) = Σ remaining of grants live at t − debt.
Microdollars balance_at(const std::vector<storage::GrantRow>& grants, Microdollars debt, Timestamp t);

// Draws `amount` from the grants live at t in draw order; what no grant covers
// is returned (it becomes debt). Grants are updated in place; `touched`
// receives the indices of changed grants.
Microdollars draw(std::vector<storage::GrantRow>& grants, Microdollars amount, Timestamp t,
                  std::vector<size_t>& touched);

// Applies, in time order, the grant events due by `now`: grants taking effect
// (each repays debt before anything else) and expiries (the remainder at
// expires_at expires, recorded once). An expiry waits while a hold that
// arrived before it is outstanding (`hold_arrivals`): that request may still
// draw from the grant. At one instant expiries come before grants.
struct DueEffects {
  std::vector<size_t> touched;             // indices of changed grants
  std::vector<storage::ExpiryRow> expiries;  // expiries recorded now
  Timestamp latest_event;                  // latest event time applied
};
void apply_due_grant_events(std::vector<storage::GrantRow>& grants, Microdollars& debt, Timestamp now,
                            const std::vector<Timestamp>& hold_arrivals, DueEffects& effects);

// Free allowance not yet used or held: max(0, A − F − free held).
Microdollars unheld_free(const storage::AllowanceRow& a);

struct AdmissionFigures {
  Microdollars free;       // unheld free allowance
  Microdollars credit;     // balance − credit held (may be negative)
  Microdollars available;  // free + max(0, credit)
};
AdmissionFigures admission_figures(Microdollars unheld_free, Microdollars balance, Microdollars credit_held);

struct HoldSplit {
  Microdollars free;
  Microdollars credit;
};
// hold = min(estimate, available), free allowance first.
HoldSplit hold_for(Microdollars estimate, const AdmissionFigures& f);

struct CostSplit {
  Microdollars free;
  Microdollars charged;
};
// free = min(cost, h_f + R) with R the unheld free remainder; charged = the rest.
CostSplit split_cost(Microdollars cost, Microdollars own_free_hold, Microdollars unheld_free);

}  // namespace tollgate::ledger
