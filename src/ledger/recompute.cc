#include "ledger/recompute.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>

#include "common/ids.h"
#include "ledger/ledger.h"

namespace tollgate::ledger {

namespace {

void compare(RecomputeReport& out, const char* kind, const std::string& subject, const std::string& field,
             Microdollars stored, Microdollars recomputed) {
  if (stored != recomputed) out.drift.push_back(Drift{kind, subject, field, stored, recomputed});
}

struct Event {
  Timestamp at;
  int order;  // at one instant: expiries (0), grants (1), usage (2: audit rows, 3: external)
  size_t index;
};

Status recompute_owner(storage::Transaction& tx, const std::string& owner, Timestamp now, RecomputeReport& out) {
  TG_ASSIGN(auto account, tx.get_account(owner));
  if (!account) return Status::Ok();
  TG_ASSIGN(auto stored_grants, tx.list_grants(owner));
  TG_ASSIGN(auto usage, tx.list_audit_for_owner(owner));
  TG_ASSIGN(auto holds, tx.list_holds_for_owner(owner));
  TG_ASSIGN(auto external, tx.list_external_usage_for_owner(owner));

  std::vector<storage::GrantRow> grants = stored_grants;
  std::vector<storage::GrantRow> live;  // grants in effect so far, in replay
  std::vector<Event> events;
  for (size_t i = 0; i < grants.size(); ++i) events.push_back({grants[i].effective_at, 1, i});
  for (size_t i = 0; i < usage.size(); ++i) events.push_back({usage[i].arrived_at, 2, i});
  for (size_t i = 0; i < external.size(); ++i) events.push_back({external[i].at, 3, i});
  std::stable_sort(events.begin(), events.end(), [](const Event& a, const Event& b) {
    return a.at != b.at ? a.at < b.at : a.order < b.order;
  });
  Microdollars debt;
  std::vector<size_t> touched;
  for (const auto& e : events) {
    if (e.order == 1 && e.at > now) {  // not in effect yet: listed, repays nothing
      auto g = grants[e.index];
      g.remaining = g.amount;
      live.push_back(g);
      continue;
    }
    if (e.order == 3) {  // external usage: usage like a request's charge
      debt += draw(live, external[e.index].amount, e.at, touched);
    } else if (e.order == 1) {
      auto g = grants[e.index];
      g.remaining = g.amount;
      live.push_back(g);
      debt = draw(live, debt, e.at, touched);  // a new grant repays debt first
    } else {
      debt += draw(live, usage[e.index].charged, e.at, touched);
    }
  }
  Microdollars held;
  for (const auto& h : holds) held += h.credit_held;

  // A grant that took effect since the owner's last write has not repaid the
  // debt in the stored rows yet; that repayment is due, not drift.
  Microdollars stored_debt = account->debt;
  if (stored_debt > kZero) stored_debt = draw(stored_grants, stored_debt, now, touched);
  for (const auto& g : live) {
    auto it = std::find_if(stored_grants.begin(), stored_grants.end(),
                           [&](const storage::GrantRow& s) { return s.id == g.id; });
    compare(out, "owner", owner, "grant:" + g.id + ".remaining_microdollars", it->remaining, g.remaining);
  }
  compare(out, "owner", owner, "debt_microdollars", stored_debt, debt);
  compare(out, "owner", owner, "balance_microdollars", balance_at(stored_grants, stored_debt, now),
          balance_at(live, debt, now));
  compare(out, "owner", owner, "held_microdollars", account->held, held);
  out.owners_checked += 1;
  return Status::Ok();
}

Status recompute_user_months(storage::Transaction& tx, const std::optional<std::string>& user, RecomputeReport& out) {
  TG_ASSIGN(auto locks, tx.list_allowances(user));
  std::map<std::pair<std::string, std::string>, bool> seen;  // (user, month) with a lock
  for (const auto& lock : locks) {
    seen[{lock.user_id, lock.month}] = true;
    TG_ASSIGN(auto sums, tx.sum_audit(lock.user_id, lock.month));
    TG_ASSIGN(Microdollars free_held, tx.sum_free_held(lock.user_id, lock.month));
    Microdollars free_used;
    for (const auto& s : sums) free_used += s.total_free;
    const std::string key = lock.user_id + "/" + lock.month;
    compare(out, "counter", key, "free_used_microdollars", lock.free_used, free_used);
    compare(out, "counter", key, "free_held_microdollars", lock.free_held, free_held);
    if (free_used > lock.allowance) {
      // An invariant, not a drift between copies: report it against the allowance.
      compare(out, "counter", key, "free_used_over_allowance_microdollars", lock.allowance, free_used);
    }
    TG_ASSIGN(auto counters, tx.list_counters(lock.user_id, lock.month));
    std::map<std::string, storage::CounterRow> by_context;
    for (const auto& c : counters) by_context[c.context] = c;
    for (const auto& s : sums) {
      storage::CounterRow c = by_context.count(s.context) ? by_context[s.context] : storage::CounterRow{};
      by_context.erase(s.context);
      const std::string ck = lock.user_id + "/" + s.context + "/" + lock.month;
      compare(out, "counter", ck, "request_count", Microdollars(c.request_count), Microdollars(s.request_count));
      compare(out, "counter", ck, "total_cost_microdollars", c.total_cost, s.total_cost);
      compare(out, "counter", ck, "total_free_microdollars", c.total_free, s.total_free);
      compare(out, "counter", ck, "total_charged_microdollars", c.total_charged, s.total_charged);
    }
    for (const auto& [context, c] : by_context) {  // counters with no audit rows behind them
      const std::string ck = lock.user_id + "/" + context + "/" + lock.month;
      compare(out, "counter", ck, "request_count", Microdollars(c.request_count), kZero);
      compare(out, "counter", ck, "total_cost_microdollars", c.total_cost, kZero);
    }
  }
  return Status::Ok();
}

}  // namespace

storage::Operation recompute(std::optional<std::string> owner, Timestamp now, RecomputeReport& out) {
  return [owner, now, &out](storage::Transaction& tx) -> Status {
    out = RecomputeReport{};
    std::vector<std::string> owners;
    if (owner) {
      owners.push_back(*owner);
    } else {
      TG_ASSIGN(owners, tx.list_owners());
    }
    for (const auto& o : owners) TG_TRY(recompute_owner(tx, o, now, out));
    std::optional<std::string> user;
    if (owner) {
      auto parsed = Owner::parse(*owner);
      if (!parsed || parsed->kind != Owner::Kind::kUser) return Status::Ok();
      user = parsed->id;
    }
    return recompute_user_months(tx, user, out);
  };
}

std::string recompute_report_json(const RecomputeReport& report) {
  boost::json::object o;
  o["owners_checked"] = report.owners_checked;
  boost::json::array drift;
  for (const auto& d : report.drift) {
    boost::json::object j;
    j[d.subject_kind] = d.subject;
    j["field"] = d.field;
    j["stored_microdollars"] = d.stored.value();
    j["recomputed_microdollars"] = d.recomputed.value();
    drift.push_back(std::move(j));
  }
  o["drift"] = std::move(drift);
  return boost::json::serialize(o);
}

}  // namespace tollgate::ledger
