#include "ledger/recompute.h"

#include <boost/json.hpp>

#include <algorithm>
#include <map>

#include "common/ids.h"
#include "ledger/ledger.h"

namespace tollgate::ledger {

namespace {

// At one instant: expiries, then grants taking effect, then usage.
enum EventKind { kExpiry = 0, kGrant = 1, kUsage = 2 };

struct GrantEvent {
  Timestamp at;
  EventKind kind;
  size_t index;
};

}  // namespace

Status replay_owner(storage::Transaction& tx, const std::string& owner, Timestamp now, OwnerReplay& out) {
  out = OwnerReplay{};
  TG_ASSIGN(out.grants, tx.list_grants(owner));
  TG_ASSIGN(auto holds, tx.list_holds_for_owner(owner));
  TG_ASSIGN(auto stored_expiries, tx.list_expiries_for_owner(owner));
  std::map<std::string, Timestamp> recorded_at;
  for (const auto& e : stored_expiries) recorded_at[e.grant_id] = e.recorded_at;
  for (const auto& h : holds) out.held += h.credit_held;

  std::vector<GrantEvent> grant_events;
  for (size_t i = 0; i < out.grants.size(); ++i) {
    auto& g = out.grants[i];
    g.remaining = g.amount;
    g.expired = kZero;
    g.activated = false;
    g.expiry_recorded_at.reset();
    if (g.effective_at <= now) grant_events.push_back({g.effective_at, kGrant, i});
    if (g.expires_at && *g.expires_at <= now) grant_events.push_back({*g.expires_at, kExpiry, i});
  }
  std::sort(grant_events.begin(), grant_events.end(), [&](const GrantEvent& a, const GrantEvent& b) {
    if (a.at != b.at) return a.at < b.at;
    if (a.kind != b.kind) return a.kind < b.kind;
    return out.grants[a.index].id < out.grants[b.index].id;
  });

  // Three time-ordered streams merged: grant events, audit rows, external usage.
  TG_ASSIGN(auto audit, tx.scan_audit_for_owner(owner));
  TG_ASSIGN(auto external, tx.scan_external_usage_for_owner(owner));
  storage::AuditRow a;
  storage::ExternalUsageRow x;
  TG_ASSIGN(bool has_a, audit->next(a));
  TG_ASSIGN(bool has_x, external->next(x));
  size_t gi = 0;
  std::vector<size_t> touched;
  while (gi < grant_events.size() || has_a || has_x) {
    // Pick the earliest; grant events win ties (they sort before usage).
    const bool take_grant =
        gi < grant_events.size() && (!has_a || grant_events[gi].at <= a.arrived_at) && (!has_x || grant_events[gi].at <= x.at);
    if (take_grant) {
      const auto& e = grant_events[gi++];
      auto& g = out.grants[e.index];
      if (e.kind == kGrant) {
        g.activated = true;
        Microdollars take = min(out.debt, g.remaining);
        g.remaining -= take;
        out.debt -= take;
      } else {
        // An expiry waits for holds that arrived before it (they may draw from it).
        bool blocked = std::any_of(holds.begin(), holds.end(),
                                   [&](const storage::HoldRow& h) { return h.arrived_at < *g.expires_at; });
        if (blocked) continue;
        g.expired = g.remaining;
        g.remaining = kZero;
        auto it = recorded_at.find(g.id);
        g.expiry_recorded_at = it != recorded_at.end() ? it->second : now;
        out.expiries.push_back(storage::ExpiryRow{g.id, owner, g.expired, *g.expires_at, *g.expiry_recorded_at});
      }
      out.latest_event = max_time(out.latest_event, e.at);
    } else if (has_a && (!has_x || a.arrived_at <= x.at)) {
      out.debt += draw(out.grants, a.charged, a.arrived_at, touched);
      out.latest_event = max_time(out.latest_event, a.arrived_at);
      TG_ASSIGN(has_a, audit->next(a));
    } else {
      out.debt += draw(out.grants, x.amount, x.at, touched);
      out.latest_event = max_time(out.latest_event, x.at);
      TG_ASSIGN(has_x, external->next(x));
    }
    out.events += 1;
    touched.clear();
  }
  return Status::Ok();
}

Status write_owner_state(storage::Transaction& tx, const std::string& owner, const OwnerReplay& replay) {
  for (const auto& g : replay.grants) TG_TRY(tx.update_grant(g));
  for (const auto& e : replay.expiries) TG_TRY(tx.upsert_expiry(e));
  TG_ASSIGN(auto acc, tx.get_account(owner));
  if (!acc) return NotFound("unknown owner '" + owner + "'");
  acc->debt = replay.debt;
  acc->held = replay.held;
  acc->latest_event_at = replay.latest_event;
  return tx.update_account(*acc);
}

namespace {

struct Checker {
  RecomputeReport& out;
  bool fix;
  Timestamp now;
  std::vector<storage::AdjustmentRow> adjustments;

  void compare(const char* kind, const std::string& subject, const std::string& field, Microdollars stored,
               Microdollars recomputed) {
    if (stored == recomputed) return;
    out.drift.push_back(Drift{kind, subject, field, stored, recomputed});
    if (fix) {
      adjustments.push_back(storage::AdjustmentRow{"adj_" + random_hex(8), subject, field, stored, recomputed, now,
                                                   "recompute --fix"});
    }
  }
};

Status recompute_owner(storage::Transaction& tx, const std::string& owner, Checker& c) {
  TG_ASSIGN(auto account, tx.get_account(owner));
  if (!account) return NotFound("unknown owner '" + owner + "'");
  TG_ASSIGN(auto stored_grants, tx.list_grants(owner));
  OwnerReplay replay;
  TG_TRY(replay_owner(tx, owner, c.now, replay));
  c.out.events_replayed += replay.events;

  // Due events the stored rows have not applied yet (no write since) are
  // applied to a copy first: what is due is not drift.
  std::vector<Timestamp> arrivals;
  TG_ASSIGN(auto holds, tx.list_holds_for_owner(owner));
  for (const auto& h : holds) arrivals.push_back(h.arrived_at);
  Microdollars stored_debt = account->debt;
  DueEffects fx;
  apply_due_grant_events(stored_grants, stored_debt, c.now, arrivals, fx);

  const size_t before = c.out.drift.size();
  for (const auto& g : replay.grants) {
    auto it = std::find_if(stored_grants.begin(), stored_grants.end(),
                           [&](const storage::GrantRow& s) { return s.id == g.id; });
    c.compare("owner", owner, "grant:" + g.id + ".remaining_microdollars", it->remaining, g.remaining);
    c.compare("owner", owner, "grant:" + g.id + ".expired_microdollars", it->expired, g.expired);
  }
  c.compare("owner", owner, "debt_microdollars", stored_debt, replay.debt);
  c.compare("owner", owner, "balance_microdollars", balance_at(stored_grants, stored_debt, c.now),
            balance_at(replay.grants, replay.debt, c.now));
  c.compare("owner", owner, "held_microdollars", account->held, replay.held);
  if (c.fix && c.out.drift.size() != before) TG_TRY(write_owner_state(tx, owner, replay));
  c.out.owners_checked += 1;
  return Status::Ok();
}

Status recompute_user_months(storage::Transaction& tx, const std::optional<std::string>& user, Checker& c) {
  TG_ASSIGN(auto locks, tx.list_allowances(user));
  for (auto lock : locks) {
    TG_ASSIGN(auto sums, tx.sum_audit(lock.user_id, lock.month));
    TG_ASSIGN(Microdollars free_held, tx.sum_free_held(lock.user_id, lock.month));
    Microdollars free_used;
    for (const auto& s : sums) free_used += s.total_free;
    const std::string key = lock.user_id + "/" + lock.month;
    const size_t before = c.out.drift.size();
    c.compare("counter", key, "free_used_microdollars", lock.free_used, free_used);
    c.compare("counter", key, "free_held_microdollars", lock.free_held, free_held);
    if (free_used > lock.allowance) {
      // An invariant, not a copy out of step: reported against the allowance, never "fixed".
      c.out.drift.push_back(Drift{"counter", key, "free_used_over_allowance_microdollars", lock.allowance, free_used});
    }
    if (c.fix && c.out.drift.size() != before && free_used <= lock.allowance) {
      lock.free_used = free_used;
      lock.free_held = free_held;
      TG_TRY(tx.update_allowance(lock));
    }
    TG_ASSIGN(auto counters, tx.list_counters(lock.user_id, lock.month));
    std::map<std::string, storage::CounterRow> by_context;
    for (const auto& counter : counters) by_context[counter.context] = counter;
    std::vector<storage::CounterRow> recomputed = sums;
    for (const auto& entry : by_context) {  // counters with no audit rows behind them
      const std::string& context = entry.first;
      bool has_rows = std::any_of(sums.begin(), sums.end(), [&](const auto& s) { return s.context == context; });
      if (!has_rows) recomputed.push_back(storage::CounterRow{lock.user_id, context, lock.month, 0, {}, {}, {}});
    }
    for (const auto& s : recomputed) {
      storage::CounterRow stored =
          by_context.count(s.context) ? by_context[s.context] : storage::CounterRow{lock.user_id, s.context, lock.month, 0, {}, {}, {}};
      const std::string ck = lock.user_id + "/" + s.context + "/" + lock.month;
      const size_t b = c.out.drift.size();
      c.compare("counter", ck, "request_count", Microdollars(stored.request_count), Microdollars(s.request_count));
      c.compare("counter", ck, "total_cost_microdollars", stored.total_cost, s.total_cost);
      c.compare("counter", ck, "total_free_microdollars", stored.total_free, s.total_free);
      c.compare("counter", ck, "total_charged_microdollars", stored.total_charged, s.total_charged);
      if (c.fix && c.out.drift.size() != b) {
        TG_TRY(tx.add_to_counter(storage::CounterRow{lock.user_id, s.context, lock.month,
                                                     s.request_count - stored.request_count,
                                                     s.total_cost - stored.total_cost, s.total_free - stored.total_free,
                                                     s.total_charged - stored.total_charged}));
      }
    }
  }
  return Status::Ok();
}

}  // namespace

storage::Operation recompute(std::optional<std::string> owner, Timestamp now, bool fix, RecomputeReport& out) {
  return [owner, now, fix, &out](storage::Transaction& tx) -> Status {
    out = RecomputeReport{};
    Checker c{out, fix, now, {}};
    std::vector<std::string> owners;
    if (owner) {
      owners.push_back(*owner);
    } else {
      TG_ASSIGN(owners, tx.list_owners());
    }
    for (const auto& o : owners) TG_TRY(recompute_owner(tx, o, c));
    std::optional<std::string> user;
    bool user_months = true;
    if (owner) {
      auto parsed = Owner::parse(*owner);
      user_months = parsed && parsed->kind == Owner::Kind::kUser;
      if (user_months) user = parsed->id;
    }
    if (user_months) TG_TRY(recompute_user_months(tx, user, c));
    for (const auto& adj : c.adjustments) TG_TRY(tx.insert_adjustment(adj));
    out.fixed = fix;
    return Status::Ok();
  };
}

storage::Operation recompute_sample(std::vector<std::string> owners, Timestamp now, RecomputeReport& out) {
  return [owners = std::move(owners), now, &out](storage::Transaction& tx) -> Status {
    out = RecomputeReport{};
    Checker c{out, false, now, {}};
    for (const auto& o : owners) {
      TG_TRY(recompute_owner(tx, o, c));
      auto parsed = Owner::parse(o);
      if (parsed && parsed->kind == Owner::Kind::kUser) TG_TRY(recompute_user_months(tx, parsed->id, c));
    }
    return Status::Ok();
  };
}

storage::Operation list_owners(std::vector<std::string>& out) {
  return [&out](storage::Transaction& tx) -> Status {
    TG_ASSIGN(out, tx.list_owners());
    return Status::Ok();
  };
}

std::string recompute_report_json(const RecomputeReport& report) {
  boost::json::object o;
  o["owners_checked"] = report.owners_checked;
  o["events_replayed"] = report.events_replayed;
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
  if (report.fixed) o["fixed"] = true;
  return boost::json::serialize(o);
}

}  // namespace tollgate::ledger
