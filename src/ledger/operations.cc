#include "ledger/operations.h"

#include <fmt/format.h>

#include <cassert>

#include "common/ids.h"
#include "ledger/ledger.h"
#include "ledger/recompute.h"

namespace tollgate::ledger {

using storage::Transaction;

namespace {

Result<storage::AccountRow> account_or_create(Transaction& tx, const std::string& owner, Timestamp now) {
  TG_ASSIGN(auto acc, tx.get_account(owner));
  if (acc) return *acc;
  storage::AccountRow row{owner, kZero, kZero, now, Timestamp{}};
  TG_TRY(tx.insert_account(row));
  return row;
}

// Brings an owner's stored grants up to `now` before anything reads or spends
// them: grants that took effect repay debt, due expiries are recorded. So an
// expired credit is never spendable, whether or not the sweep has run.
Status apply_due(Transaction& tx, storage::AccountRow& acc, std::vector<storage::GrantRow>& grants, Timestamp now) {
  bool activation_due = false, expiry_due = false;
  for (const auto& g : grants) {
    activation_due |= !g.activated && g.effective_at <= now;
    expiry_due |= g.expires_at && !g.expiry_recorded_at && *g.expires_at <= now;
  }
  if (!activation_due && !expiry_due) return Status::Ok();
  std::vector<Timestamp> arrivals;
  if (expiry_due) {
    TG_ASSIGN(auto holds, tx.list_holds_for_owner(acc.owner));
    for (const auto& h : holds) arrivals.push_back(h.arrived_at);
  }
  DueEffects fx;
  fx.latest_event = acc.latest_event_at;
  Microdollars debt = acc.debt;
  apply_due_grant_events(grants, debt, now, arrivals, fx);
  for (size_t i : fx.touched) TG_TRY(tx.update_grant(grants[i]));
  for (const auto& e : fx.expiries) TG_TRY(tx.upsert_expiry(e));
  if (debt != acc.debt || fx.latest_event != acc.latest_event_at) {
    acc.debt = debt;
    acc.latest_event_at = fx.latest_event;
    TG_TRY(tx.update_account(acc));
  }
  return Status::Ok();
}

// The owner's balance at `now`, with grant events due by then applied first
// (a rebuild or a replayed settlement may leave some due).
Result<Microdollars> current_balance(Transaction& tx, const std::string& owner, Timestamp now) {
  TG_ASSIGN(auto acc, tx.get_account(owner));
  TG_ASSIGN(auto grants, tx.list_grants(owner));
  Microdollars debt;
  if (acc) {
    TG_TRY(apply_due(tx, *acc, grants, now));
    debt = acc->debt;
  }
  return balance_at(grants, debt, now);
}

// An admin entry dated before the owner's latest applied event: rebuild the
// owner's stored state from the records, as recompute does.
Status rebuild_owner(Transaction& tx, const std::string& owner, Timestamp now) {
  OwnerReplay replay;
  TG_TRY(replay_owner(tx, owner, now, replay));
  return write_owner_state(tx, owner, replay);
}

}  // namespace

storage::Operation admit(const Config& config, const AdmitInput& in, AdmitOutcome& out) {
  return [&config, in, &out](Transaction& tx) -> Status {
    out = AdmitOutcome{};
    out.result = AdmitResult::kUnauthenticated;
    // 1. Authenticate.
    std::string user_id;
    if (in.authenticated_user_id) {
      user_id = *in.authenticated_user_id;
    } else if (in.key_id) {
      TG_ASSIGN(auto key, tx.get_api_key(*in.key_id));
      if (!key || key->revoked_at || !constant_time_equal(key->secret_sha256, in.secret_sha256)) {
        return Status::Ok();
      }
      user_id = key->user_id;
    } else {
      return Status::Ok();
    }
    TG_ASSIGN(auto user, tx.get_user(user_id));
    if (!user) return Status::Ok();
    out.user_id = user_id;
    if (user->blocked) {
      out.result = AdmitResult::kBlocked;
      return Status::Ok();
    }
    // 2. Context.
    if (in.org_id) {
      bool member = false;
      if (valid_id(*in.org_id)) {
        TG_ASSIGN(member, tx.is_member(*in.org_id, user_id));
      }
      if (!member) {
        out.result = AdmitResult::kNotMember;
        return Status::Ok();
      }
      out.context = "org:" + *in.org_id;
      out.owner = "org:" + *in.org_id;
    } else {
      out.context = "personal";
      out.owner = "user:" + user_id;
    }
    // 3. Validation found before the store was asked.
    if (in.prevalidation_status) {
      out.result = AdmitResult::kPrevalidation;
      return Status::Ok();
    }
    // 4. Funds. The allowance is locked only if this request is admitted.
    const std::string month = month_of(in.arrived_at).to_string();
    TG_ASSIGN(auto lock, tx.get_allowance(user_id, month));
    const bool new_lock = !lock.has_value();
    storage::AllowanceRow allowance =
        lock ? *lock : storage::AllowanceRow{user_id, month, config.allowance_for_tier(user->tier),
                                             kZero,   kZero, in.arrived_at};
    TG_ASSIGN(auto acc, account_or_create(tx, out.owner, in.arrived_at));
    TG_ASSIGN(auto grants, tx.list_grants(out.owner));
    TG_TRY(apply_due(tx, acc, grants, in.arrived_at));
    Microdollars balance = balance_at(grants, acc.debt, in.arrived_at);
    AdmissionFigures fig = admission_figures(unheld_free(allowance), balance, acc.held);
    out.monthly_allowance = allowance.allowance;
    out.free_used = allowance.free_used;
    out.balance = balance;
    // Nothing is admitted while available <= 0, whatever the policy and estimate.
    bool admitted = fig.available > kZero &&
                    (config.admission_policy == AdmissionPolicy::kAnyRemaining || fig.available >= in.estimate);
    if (!admitted) {
      out.result = AdmitResult::kInsufficient;
      out.free_remaining_below_estimate = fig.available > kZero;
      return Status::Ok();
    }
    // 5. Hold, free allowance first, durable before anything is forwarded.
    HoldSplit split = hold_for(in.estimate, fig);
    allowance.free_held += split.free;
    acc.held += split.credit;
    if (new_lock) {
      TG_TRY(tx.insert_allowance(allowance));
    } else {
      TG_TRY(tx.update_allowance(allowance));
    }
    if (split.credit > kZero) TG_TRY(tx.update_account(acc));
    out.hold = storage::HoldRow{
        in.request_id, user_id,    out.context,   out.owner,
        in.path,       month,      in.arrived_at, Timestamp{in.arrived_at.micros + config.hold_timeout_ms * 1000},
        in.estimate,   split.free, split.credit};
    TG_TRY(tx.insert_hold(out.hold));
    assert(allowance.free_used + allowance.free_held <= allowance.allowance);
    out.result = AdmitResult::kAdmitted;
    return Status::Ok();
  };
}

namespace {

Status settle_in(Transaction& tx, const SettleInput& in, SettleOutcome& out) {
  out = SettleOutcome{};
  assert(in.cost >= kZero);
  TG_ASSIGN(auto existing, tx.get_audit(in.request_id));
  TG_ASSIGN(auto hold, tx.get_hold(in.request_id));
  if (existing) {
    out.already_settled = true;
    out.row = *existing;
  } else if (!hold) {
    return NotFound(fmt::format("no hold for request {}", in.request_id));
  }
  if (!existing) {
    const storage::HoldRow& h = *hold;
    TG_ASSIGN(auto lock, tx.get_allowance(h.user_id, h.month));
    if (!lock) return Internal(fmt::format("hold {} has no allowance lock", h.request_id));
    storage::AllowanceRow allowance = *lock;
    assert(allowance.free_held >= h.free_held);
    // R counts every free hold, this request's own included (SPEC "the split").
    CostSplit split = split_cost(in.cost, h.free_held, unheld_free(allowance));
    allowance.free_held -= h.free_held;
    allowance.free_used += split.free;
    assert(allowance.free_used <= allowance.allowance);
    TG_TRY(tx.update_allowance(allowance));

    TG_ASSIGN(auto acc, account_or_create(tx, h.owner, in.settled_at));
    TG_ASSIGN(auto grants, tx.list_grants(h.owner));
    TG_TRY(apply_due(tx, acc, grants, in.settled_at));  // this hold still defers expiries it may draw on
    assert(acc.held >= h.credit_held);
    acc.held -= h.credit_held;
    std::vector<size_t> touched;
    // Usage is timed by the request's arrival, not by when it settles.
    Microdollars shortfall = draw(grants, split.charged, h.arrived_at, touched);
    // What the grants live at arrival cannot cover is debt. If the owner's
    // ledger has moved on since this request arrived (later usage drew
    // first, later grants took effect and expired), a chronological replay
    // puts that shortfall elsewhere (this earlier usage draws first, later
    // grants repay it): rebuild the owner from the records once this row is
    // written. Without a shortfall the incremental draw is already exact.
    const bool rebuild = shortfall > kZero && h.arrived_at < acc.latest_event_at;
    acc.debt += shortfall;
    acc.latest_event_at = max_time(acc.latest_event_at, h.arrived_at);
    for (size_t i : touched) TG_TRY(tx.update_grant(grants[i]));
    TG_TRY(tx.update_account(acc));

    TG_TRY(
        tx.add_to_counter(storage::CounterRow{h.user_id, h.context, h.month, 1, in.cost, split.free, split.charged}));
    out.row = storage::AuditRow{h.request_id,  h.user_id,     h.context,          h.owner, h.path,     h.month,
                                h.arrived_at,  in.settled_at, in.upstream_status, in.cost, split.free, split.charged,
                                in.cost_source};
    TG_TRY(tx.insert_audit(out.row));
    TG_TRY(tx.delete_hold(h.request_id));
    if (rebuild) {
      TG_TRY(rebuild_owner(tx, h.owner, in.settled_at));
    } else {
      TG_TRY(apply_due(tx, acc, grants, in.settled_at));  // expiries this hold was holding back
    }
  }
  // Receipt figures, after this settlement.
  TG_ASSIGN(auto lock, tx.get_allowance(out.row.user_id, out.row.month));
  out.allowance_remaining = lock ? max(kZero, lock->allowance - lock->free_used) : kZero;
  TG_ASSIGN(out.balance, current_balance(tx, out.row.owner, in.settled_at));
  return Status::Ok();
}

}  // namespace

storage::Operation settle(const SettleInput& in, SettleOutcome& out) {
  return [in, &out](Transaction& tx) { return settle_in(tx, in, out); };
}

storage::Operation recover_expired_holds(const Config& config, Timestamp now, int64_t limit,
                                         std::vector<storage::AuditRow>& resolved) {
  return [&config, now, limit, &resolved](Transaction& tx) -> Status {
    resolved.clear();
    // The time-out in force now decides, so a restart with a shorter one
    // resolves holds left by a crash sooner.
    TG_ASSIGN(auto holds, tx.list_holds_arrived_before(Timestamp{now.micros - config.hold_timeout_ms * 1000}, limit));
    for (const auto& h : holds) {
      SettleInput in;
      in.request_id = h.request_id;
      in.settled_at = now;
      in.upstream_status = 0;
      if (config.hold_recovery == HoldRecovery::kChargeEstimate) {
        in.cost = h.estimate;
        in.cost_source = "recovered";
      } else {
        in.cost = kZero;
        in.cost_source = "none";
      }
      SettleOutcome out;
      TG_TRY(settle_in(tx, in, out));
      resolved.push_back(out.row);
    }
    return Status::Ok();
  };
}

storage::Operation create_grant(const GrantInput& in, GrantOutcome& out) {
  return [in, &out](Transaction& tx) -> Status {
    out = GrantOutcome{};
    TG_ASSIGN(auto existing, tx.get_grant_by_idempotency_key(in.idempotency_key));
    if (existing) {
      if (existing->request_fingerprint != in.request_fingerprint) {
        return Conflict(fmt::format("idempotency_key '{}' was already used with a different body", in.idempotency_key));
      }
      out.replayed = true;
      out.grant = *existing;
      return Status::Ok();
    }
    TG_ASSIGN(auto acc, tx.get_account(in.owner));
    if (!acc) return NotFound(fmt::format("unknown owner '{}'", in.owner));
    {
      TG_ASSIGN(auto existing_grants, tx.list_grants(in.owner));
      Microdollars total(in.amount_microdollars);
      for (const auto& eg : existing_grants) total += eg.remaining;
      if (total > kMaxOwnerTotal) {
        return InvalidArgument(fmt::format("this grant would take the remaining credit of '{}' over {} µ$", in.owner,
                                           kMaxOwnerTotal.value()));
      }
    }
    storage::GrantRow g;
    g.id = "grant_" + random_hex(8);
    g.owner = in.owner;
    g.amount = Microdollars(in.amount_microdollars);
    g.remaining = g.amount;
    g.effective_at = in.effective_at.value_or(in.now);
    g.expires_at = in.expires_at;
    g.idempotency_key = in.idempotency_key;
    g.request_fingerprint = in.request_fingerprint;
    g.created_at = in.now;
    TG_TRY(tx.insert_grant(g));
    // At one instant grants come before usage (SPEC §4), so a grant taking
    // effect at the owner's latest event is backdated too.
    if (g.effective_at <= acc->latest_event_at) {
      TG_TRY(rebuild_owner(tx, in.owner, in.now));  // backdated
    } else {
      TG_ASSIGN(auto grants, tx.list_grants(in.owner));
      TG_TRY(apply_due(tx, *acc, grants, in.now));
    }
    TG_ASSIGN(auto grants, tx.list_grants(in.owner));
    for (const auto& row : grants) {
      if (row.id == g.id) out.grant = row;
    }
    return Status::Ok();
  };
}

storage::Operation record_external_usage(const ExternalUsageInput& in, ExternalUsageOutcome& out) {
  return [in, &out](Transaction& tx) -> Status {
    out = ExternalUsageOutcome{};
    TG_ASSIGN(auto existing, tx.get_external_usage_by_idempotency_key(in.idempotency_key));
    TG_ASSIGN(auto acc, tx.get_account(existing ? existing->owner : in.owner));
    if (existing) {
      if (existing->request_fingerprint != in.request_fingerprint) {
        return Conflict(fmt::format("idempotency_key '{}' was already used with a different body", in.idempotency_key));
      }
      out.replayed = true;
      out.row = *existing;
    } else {
      if (!acc) return NotFound(fmt::format("unknown owner '{}'", in.owner));
      if (acc->debt + Microdollars(in.amount_microdollars) > kMaxOwnerTotal) {
        return InvalidArgument(
            fmt::format("this usage would take the debt of '{}' over {} µ$", in.owner, kMaxOwnerTotal.value()));
      }
      out.row = storage::ExternalUsageRow{
          "usage_" + random_hex(8), in.owner, Microdollars(in.amount_microdollars), in.at, in.idempotency_key,
          in.request_fingerprint,   in.now};
      TG_TRY(tx.insert_external_usage(out.row));
      if (in.at < acc->latest_event_at) {
        TG_TRY(rebuild_owner(tx, in.owner, in.now));  // backdated
      } else {
        TG_ASSIGN(auto grants, tx.list_grants(in.owner));
        // Usage is timed by its own timestamp: the grant events due up to it
        // come first, those due after it (an expiry or a grant taking effect
        // between `at` and now) only once it has drawn. What no live grant
        // covers is debt; a grant taking effect later repays it.
        TG_TRY(apply_due(tx, *acc, grants, in.at < in.now ? in.at : in.now));
        std::vector<size_t> touched;
        acc->debt += draw(grants, out.row.amount, in.at, touched);
        acc->latest_event_at = max_time(acc->latest_event_at, in.at);
        for (size_t i : touched) TG_TRY(tx.update_grant(grants[i]));
        TG_TRY(tx.update_account(*acc));
        TG_TRY(apply_due(tx, *acc, grants, in.now));
      }
    }
    TG_ASSIGN(out.balance, current_balance(tx, out.row.owner, in.now));
    return Status::Ok();
  };
}

storage::Operation apply_due_grant_events_sweep(Timestamp now, int64_t limit, int64_t& owners) {
  return [now, limit, &owners](Transaction& tx) -> Status {
    owners = 0;
    TG_ASSIGN(auto due, tx.list_owners_with_due_grants(now, limit));
    for (const auto& owner : due) {
      TG_ASSIGN(auto acc, tx.get_account(owner));
      if (!acc) continue;
      TG_ASSIGN(auto grants, tx.list_grants(owner));
      TG_TRY(apply_due(tx, *acc, grants, now));
      owners += 1;
    }
    return Status::Ok();
  };
}

storage::Operation read_account(const std::string& owner, Timestamp now, AccountView& out) {
  return [owner, now, &out](Transaction& tx) -> Status {
    TG_ASSIGN(auto acc, tx.get_account(owner));
    if (!acc) return NotFound(fmt::format("unknown owner '{}'", owner));
    TG_ASSIGN(out.grants, tx.list_grants(owner));
    TG_TRY(apply_due(tx, *acc, out.grants, now));
    out.account = *acc;
    out.balance = balance_at(out.grants, acc->debt, now);
    return Status::Ok();
  };
}

storage::Operation create_user(const storage::UserRow& user) {
  return [user](Transaction& tx) -> Status {
    TG_ASSIGN(auto existing, tx.get_user(user.id));
    if (existing) return Conflict(fmt::format("user '{}' already exists", user.id));
    TG_TRY(tx.insert_user(user));
    TG_ASSIGN(auto acc, tx.get_account("user:" + user.id));
    if (!acc) TG_TRY(tx.insert_account(storage::AccountRow{"user:" + user.id, kZero, kZero, user.created_at, {}}));
    return Status::Ok();
  };
}

storage::Operation update_user(const std::string& id, std::optional<std::optional<std::string>> tier,
                               std::optional<bool> blocked) {
  return [id, tier, blocked](Transaction& tx) -> Status {
    TG_ASSIGN(auto user, tx.get_user(id));
    if (!user) return NotFound(fmt::format("unknown user '{}'", id));
    if (tier) user->tier = *tier;
    if (blocked) user->blocked = *blocked;
    return tx.update_user(*user);
  };
}

storage::Operation create_org(const storage::OrgRow& org) {
  return [org](Transaction& tx) -> Status {
    TG_ASSIGN(auto existing, tx.get_org(org.id));
    if (existing) return Conflict(fmt::format("organization '{}' already exists", org.id));
    TG_TRY(tx.insert_org(org));
    TG_ASSIGN(auto acc, tx.get_account("org:" + org.id));
    if (!acc) TG_TRY(tx.insert_account(storage::AccountRow{"org:" + org.id, kZero, kZero, org.created_at, {}}));
    return Status::Ok();
  };
}

storage::Operation add_member(const std::string& org_id, const std::string& user_id, Timestamp now) {
  return [org_id, user_id, now](Transaction& tx) -> Status {
    TG_ASSIGN(auto org, tx.get_org(org_id));
    if (!org) return NotFound(fmt::format("unknown organization '{}'", org_id));
    TG_ASSIGN(auto user, tx.get_user(user_id));
    if (!user) return NotFound(fmt::format("unknown user '{}'", user_id));
    return tx.add_member(org_id, user_id, now);
  };
}

storage::Operation remove_member(const std::string& org_id, const std::string& user_id) {
  return [org_id, user_id](Transaction& tx) -> Status {
    TG_ASSIGN(auto org, tx.get_org(org_id));
    if (!org) return NotFound(fmt::format("unknown organization '{}'", org_id));
    TG_ASSIGN(bool member, tx.is_member(org_id, user_id));
    if (!member) return NotFound(fmt::format("user '{}' is not a member of '{}'", user_id, org_id));
    return tx.remove_member(org_id, user_id);
  };
}

storage::Operation create_api_key(const storage::ApiKeyRow& key) {
  return [key](Transaction& tx) -> Status {
    TG_ASSIGN(auto user, tx.get_user(key.user_id));
    if (!user) return NotFound(fmt::format("unknown user '{}'", key.user_id));
    return tx.insert_api_key(key);
  };
}

storage::Operation revoke_api_key(const std::string& id, Timestamp now) {
  return [id, now](Transaction& tx) -> Status {
    TG_ASSIGN(auto key, tx.get_api_key(id));
    if (!key) return NotFound(fmt::format("unknown api key '{}'", id));
    return tx.revoke_api_key(id, now);
  };
}

storage::Operation read_usage(const Config& config, const std::string& user_id, const std::string& month,
                              UsageView& out) {
  return [&config, user_id, month, &out](Transaction& tx) -> Status {
    TG_ASSIGN(auto user, tx.get_user(user_id));
    if (!user) return NotFound(fmt::format("unknown user '{}'", user_id));
    TG_ASSIGN(auto lock, tx.get_allowance(user_id, month));
    // Before the lock: the allowance that would be locked now.
    out.free_allowance = lock ? lock->allowance : config.allowance_for_tier(user->tier);
    out.free_used = lock ? lock->free_used : kZero;
    TG_ASSIGN(auto counters, tx.list_counters(user_id, month));
    out.contexts.clear();
    for (auto& c : counters) {
      if (c.request_count > 0) out.contexts.push_back(std::move(c));
    }
    return Status::Ok();
  };
}

}  // namespace tollgate::ledger
