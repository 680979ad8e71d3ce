// Ledger operations against a real store (one suite, run for every backend):
// admission, the free/charged split, debt, exactly-once settlement, allowance
// lock-in, hold recovery, grants' idempotency, group commit isolation and
// concurrent admission.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <future>
#include <set>
#include <thread>

#include "common/ids.h"
#include "ledger/ledger.h"
#include "ledger/operations.h"
#include "ledger/recompute.h"
#include "storage/postgres/pg_store.h"
#include "storage/store.h"
#include "test_database.h"

namespace tollgate {
namespace {

using ledger::AdmitResult;

Timestamp at(const char* text) { return parse_rfc3339(text).value(); }

class LedgerStoreTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    config_.allowance_default_microdollars = 10'000'000;
    config_.allowance_tiers_microdollars["small"] = 5'000'000;
    config_.hold_timeout_ms = 120'000;
    if (auto why = testing::TestDatabase::unavailable(GetParam())) GTEST_SKIP() << *why;
    db_ = std::make_unique<testing::TestDatabase>(GetParam(), "ledger");
    ASSERT_TRUE(db_->status().ok()) << db_->status().message();
    reopen();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
  }
  void reopen() {
    store_.reset();
    auto s = storage::open_store(url(), storage::StoreOptions{});
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s.value());
  }
  std::string url() const { return db_->url(); }

  void run_ok(storage::Operation op) {
    Status s = store_->run(std::move(op));
    ASSERT_TRUE(s.ok()) << s.message();
  }

  // A user with an API key; returns the key's (id, secret hash).
  std::pair<std::string, std::string> user(const std::string& id, std::optional<std::string> tier = {}) {
    run_ok(ledger::create_user(storage::UserRow{id, tier, false, at("2025-01-01T00:00:00Z")}));
    storage::ApiKeyRow k{"key_" + id, id, sha256_hex("secret-" + id), at("2025-01-01T00:00:00Z"), {}};
    run_ok(ledger::create_api_key(k));
    return {k.id, k.secret_sha256};
  }
  void org(const std::string& id, const std::vector<std::string>& members) {
    run_ok(ledger::create_org(storage::OrgRow{id, id, at("2025-01-01T00:00:00Z")}));
    for (const auto& m : members) run_ok(ledger::add_member(id, m, at("2025-01-01T00:00:00Z")));
  }
  ledger::GrantOutcome grant(const std::string& owner, int64_t amount, const char* now, std::string key = "") {
    ledger::GrantInput in;
    in.owner = owner;
    in.amount_microdollars = amount;
    in.idempotency_key = key.empty() ? "g-" + random_hex(6) : key;
    in.request_fingerprint = owner + "|" + std::to_string(amount);
    in.now = at(now);
    ledger::GrantOutcome out;
    Status s = store_->run(ledger::create_grant(in, out));
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
  ledger::AdmitOutcome admit(const std::string& user_id, const char* now, int64_t estimate = 7000,
                             std::optional<std::string> org_id = {}) {
    ledger::AdmitInput in;
    in.key_id = "key_" + user_id;
    in.secret_sha256 = sha256_hex("secret-" + user_id);
    in.org_id = org_id;
    in.request_id = new_request_id(at(now));
    in.path = "search";
    in.arrived_at = at(now);
    in.estimate = Microdollars(estimate);
    ledger::AdmitOutcome out;
    Status s = store_->run(ledger::admit(config_, in, out));
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
  ledger::SettleOutcome settle(const ledger::AdmitOutcome& a, int64_t cost, const char* now,
                               const char* source = "upstream") {
    ledger::SettleInput in{a.hold.request_id, Microdollars(cost), source, 200, at(now)};
    ledger::SettleOutcome out;
    Status s = store_->run(ledger::settle(in, out));
    EXPECT_TRUE(s.ok()) << s.message();
    return out;
  }
  // One admitted request with this cost; returns its settlement.
  ledger::SettleOutcome request(const std::string& user_id, int64_t cost, const char* now,
                                std::optional<std::string> org_id = {}) {
    auto a = admit(user_id, now, 7000, org_id);
    EXPECT_EQ(a.result, AdmitResult::kAdmitted);
    return settle(a, cost, now);
  }
  ledger::AccountView account(const std::string& owner, const char* now) {
    ledger::AccountView v;
    Status s = store_->run(ledger::read_account(owner, at(now), v));
    EXPECT_TRUE(s.ok()) << s.message();
    return v;
  }
  ledger::UsageView usage(const std::string& user_id, const std::string& month) {
    ledger::UsageView v;
    Status s = store_->run(ledger::read_usage(config_, user_id, month, v));
    EXPECT_TRUE(s.ok()) << s.message();
    return v;
  }

  std::unique_ptr<testing::TestDatabase> db_;
  Config config_;
  std::unique_ptr<storage::Store> store_;
};

TEST_P(LedgerStoreTest, FreeWithinAllowanceThenCharged) {
  user("u1");
  grant("user:u1", 1'000'000, "2025-03-01T00:00:00Z");
  auto r1 = request("u1", 9'700'000, "2025-03-02T08:00:00Z");
  EXPECT_EQ(r1.row.free.value(), 9'700'000);
  EXPECT_EQ(r1.row.charged.value(), 0);
  EXPECT_EQ(r1.allowance_remaining.value(), 300'000);
  EXPECT_EQ(r1.balance.value(), 1'000'000);
  auto r2 = request("u1", 700'000, "2025-03-02T08:05:00Z");
  EXPECT_EQ(r2.row.free.value(), 300'000);
  EXPECT_EQ(r2.row.charged.value(), 400'000);
  EXPECT_EQ(r2.allowance_remaining.value(), 0);
  EXPECT_EQ(r2.balance.value(), 600'000);
  auto u = usage("u1", "2025-03");
  EXPECT_EQ(u.free_allowance.value(), 10'000'000);
  EXPECT_EQ(u.free_used.value(), 10'000'000);
  ASSERT_EQ(u.contexts.size(), 1u);
  EXPECT_EQ(u.contexts[0].context, "personal");
  EXPECT_EQ(u.contexts[0].request_count, 2);
  EXPECT_EQ(u.contexts[0].total_cost.value(), 10'400'000);
  EXPECT_EQ(u.contexts[0].total_free.value(), 10'000'000);
  EXPECT_EQ(u.contexts[0].total_charged.value(), 400'000);
}

TEST_P(LedgerStoreTest, OverrunBecomesDebtRepaidByNextGrant) {
  user("u1");
  grant("user:u1", 200'000, "2026-02-01T00:00:00Z");
  request("u1", 9'700'000, "2026-02-02T08:00:00Z");
  auto r = request("u1", 700'000, "2026-02-02T08:05:00Z");
  EXPECT_EQ(r.row.charged.value(), 400'000);
  EXPECT_EQ(r.balance.value(), -200'000);
  auto refused = admit("u1", "2026-02-02T08:10:00Z");
  EXPECT_EQ(refused.result, AdmitResult::kInsufficient);
  EXPECT_EQ(refused.balance.value(), -200'000);
  EXPECT_EQ(refused.free_used.value(), 10'000'000);
  auto g = grant("user:u1", 1'000'000, "2026-02-02T08:15:00Z");
  EXPECT_EQ(g.grant.remaining.value(), 800'000);
  EXPECT_EQ(account("user:u1", "2026-02-02T08:15:00Z").balance.value(), 800'000);
  auto r3 = request("u1", 50'000, "2026-02-02T08:20:00Z");
  EXPECT_EQ(r3.balance.value(), 750'000);
  auto acc = account("user:u1", "2026-02-02T08:20:00Z");
  EXPECT_EQ(acc.balance.value(), 750'000);
  EXPECT_EQ(acc.account.held.value(), 0);
  EXPECT_EQ(acc.account.debt.value(), 0);
}

TEST_P(LedgerStoreTest, PartialHoldStillChargesTheWholeCost) {
  user("u2");
  request("u2", 9'997'000, "2026-02-02T09:00:00Z");
  auto a = admit("u2", "2026-02-02T09:05:00Z");
  ASSERT_EQ(a.result, AdmitResult::kAdmitted);
  EXPECT_EQ(a.hold.free_held.value(), 3'000);
  EXPECT_EQ(a.hold.credit_held.value(), 0);
  auto s = settle(a, 7'000, "2026-02-02T09:05:00Z");
  EXPECT_EQ(s.row.free.value(), 3'000);
  EXPECT_EQ(s.row.charged.value(), 4'000);
  EXPECT_EQ(s.balance.value(), -4'000);
}

TEST_P(LedgerStoreTest, CoverEstimateRefusesWhatAnyRemainingAdmits) {
  config_.admission_policy = AdmissionPolicy::kCoverEstimate;
  user("u2");
  request("u2", 9'997'000, "2026-02-02T09:00:00Z");
  auto a = admit("u2", "2026-02-02T09:05:00Z");
  EXPECT_EQ(a.result, AdmitResult::kInsufficient);
  EXPECT_TRUE(a.free_remaining_below_estimate);
  EXPECT_EQ(usage("u2", "2026-02").free_used.value(), 9'997'000);
}

TEST_P(LedgerStoreTest, NothingIsAdmittedWithNothingAvailableEvenAtZeroEstimate) {
  for (auto policy : {AdmissionPolicy::kAnyRemaining, AdmissionPolicy::kCoverEstimate}) {
    config_.admission_policy = policy;
    config_.allowance_default_microdollars = 0;
    const std::string id = policy == AdmissionPolicy::kAnyRemaining ? "any" : "cover";
    user(id);
    EXPECT_EQ(admit(id, "2025-05-01T00:00:00Z", 0).result, AdmitResult::kInsufficient);
    grant("user:" + id, 1, "2025-05-01T00:00:00Z");
    EXPECT_EQ(admit(id, "2025-05-01T00:00:00Z", 0).result, AdmitResult::kAdmitted);
  }
}

TEST_P(LedgerStoreTest, SettlementIsExactlyOnce) {
  user("u1");
  auto a = admit("u1", "2025-03-01T00:00:00Z");
  auto s1 = settle(a, 5'000, "2025-03-01T00:00:01Z");
  EXPECT_FALSE(s1.already_settled);
  auto s2 = settle(a, 9'000, "2025-03-01T00:00:02Z");  // a retry, even with another figure
  EXPECT_TRUE(s2.already_settled);
  EXPECT_EQ(s2.row.cost.value(), 5'000);
  auto u = usage("u1", "2025-03");
  EXPECT_EQ(u.contexts.at(0).request_count, 1);
  EXPECT_EQ(u.free_used.value(), 5'000);
  ledger::SettleOutcome out;
  Status missing = store_->run(ledger::settle({"no-such-request", Microdollars(1), "upstream", 200,
                                               at("2025-03-01T00:00:00Z")}, out));
  EXPECT_EQ(missing.code(), StatusCode::kNotFound);
}

TEST_P(LedgerStoreTest, FailedUpstreamReleasesTheHold) {
  user("u1");
  grant("user:u1", 15'000, "2025-12-01T00:00:00Z");
  request("u1", 10'000'000, "2025-12-01T00:00:00Z");
  auto a = admit("u1", "2025-12-03T10:00:00Z");
  EXPECT_EQ(a.hold.credit_held.value(), 7'000);
  EXPECT_EQ(account("user:u1", "2025-12-03T10:00:00Z").account.held.value(), 7'000);
  auto s = settle(a, 0, "2025-12-03T10:00:05Z", "none");
  EXPECT_EQ(s.row.cost.value(), 0);
  auto acc = account("user:u1", "2025-12-03T10:00:05Z");
  EXPECT_EQ(acc.account.held.value(), 0);
  EXPECT_EQ(acc.balance.value(), 15'000);
}

TEST_P(LedgerStoreTest, AllowanceIsLockedAtFirstAdmittedRequestOfTheMonth) {
  user("u4");
  request("u4", 4'000'000, "2025-02-03T00:00:00Z");
  run_ok(ledger::update_user("u4", std::optional<std::string>("small"), std::nullopt));
  config_.allowance_default_microdollars = 1'000'000;
  auto r = request("u4", 3'000'000, "2025-02-11T00:00:00Z");
  EXPECT_EQ(r.row.free.value(), 3'000'000);
  EXPECT_EQ(usage("u4", "2025-02").free_allowance.value(), 10'000'000);
  // The new tier applies from the next month's first request.
  EXPECT_EQ(usage("u4", "2025-03").free_allowance.value(), 5'000'000);  // would be locked now
  request("u4", 1'000, "2025-03-01T00:00:00Z");
  EXPECT_EQ(usage("u4", "2025-03").free_allowance.value(), 5'000'000);
}

TEST_P(LedgerStoreTest, RefusedRequestDoesNotLockTheAllowance) {
  config_.allowance_default_microdollars = 0;
  user("u1");
  EXPECT_EQ(admit("u1", "2025-05-01T00:00:00Z").result, AdmitResult::kInsufficient);
  config_.allowance_default_microdollars = 10'000'000;
  auto r = request("u1", 1'000, "2025-05-02T00:00:00Z");
  EXPECT_EQ(r.allowance_remaining.value(), 9'999'000);
}

TEST_P(LedgerStoreTest, OneAllowancePoolAcrossContexts) {
  user("u1");
  user("u2");
  org("o1", {"u1", "u2"});
  org("o2", {"u1"});
  grant("org:o1", 50'000'000, "2025-07-01T00:00:00Z");
  grant("user:u1", 5'000'000, "2025-07-01T00:00:00Z");
  auto r1 = request("u1", 12'000'000, "2025-07-02T09:00:00Z", "o1");
  EXPECT_EQ(r1.row.context, "org:o1");
  EXPECT_EQ(r1.row.free.value(), 10'000'000);
  EXPECT_EQ(r1.row.charged.value(), 2'000'000);
  EXPECT_EQ(r1.balance.value(), 48'000'000);
  EXPECT_EQ(account("user:u1", "2025-07-02T09:00:00Z").balance.value(), 5'000'000);
  auto r2 = request("u1", 1'000'000, "2025-07-02T09:05:00Z");
  EXPECT_EQ(r2.row.free.value(), 0);
  EXPECT_EQ(r2.balance.value(), 4'000'000);
  auto r3 = request("u2", 8'000'000, "2025-07-02T09:10:00Z", "o1");
  EXPECT_EQ(r3.row.free.value(), 8'000'000);
  auto refused = admit("u1", "2025-07-02T09:20:00Z", 7000, "o2");
  EXPECT_EQ(refused.result, AdmitResult::kInsufficient);
  EXPECT_EQ(refused.context, "org:o2");
  EXPECT_EQ(refused.balance.value(), 0);
  EXPECT_EQ(admit("u2", "2025-07-02T09:25:00Z", 7000, "o2").result, AdmitResult::kNotMember);
  EXPECT_EQ(admit("u2", "2025-07-02T09:25:00Z", 7000, "bad id!").result, AdmitResult::kNotMember);
}

TEST_P(LedgerStoreTest, AuthenticationFailures) {
  user("u1");
  ledger::AdmitInput in;
  in.key_id = "key_u1";
  in.secret_sha256 = sha256_hex("wrong");
  in.request_id = "r1";
  in.arrived_at = at("2025-01-02T00:00:00Z");
  in.estimate = Microdollars(7000);
  ledger::AdmitOutcome out;
  ASSERT_TRUE(store_->run(ledger::admit(config_, in, out)).ok());
  EXPECT_EQ(out.result, AdmitResult::kUnauthenticated);
  run_ok(ledger::revoke_api_key("key_u1", at("2025-01-02T00:00:00Z")));
  EXPECT_EQ(admit("u1", "2025-01-02T00:00:00Z").result, AdmitResult::kUnauthenticated);
  user("u2");
  run_ok(ledger::update_user("u2", std::nullopt, true));
  EXPECT_EQ(admit("u2", "2025-01-02T00:00:00Z").result, AdmitResult::kBlocked);
}

TEST_P(LedgerStoreTest, ExpiredHoldsAreResolvedByPolicy) {
  config_.hold_timeout_ms = 60'000;
  user("u1");
  grant("user:u1", 100'000, "2025-04-01T00:00:00Z");
  request("u1", 10'000'000, "2025-04-01T00:00:00Z");
  auto a = admit("u1", "2025-04-20T10:00:00Z");  // never settled: the process died
  auto b = admit("u1", "2025-04-20T10:00:30Z");
  std::vector<storage::AuditRow> resolved;
  run_ok(ledger::recover_expired_holds(config_, at("2025-04-20T10:00:59Z"), 100, resolved));
  EXPECT_TRUE(resolved.empty());
  run_ok(ledger::recover_expired_holds(config_, at("2025-04-20T10:01:00Z"), 100, resolved));
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].request_id, a.hold.request_id);
  EXPECT_EQ(resolved[0].cost_source, "recovered");
  EXPECT_EQ(resolved[0].charged.value(), 7'000);
  config_.hold_recovery = HoldRecovery::kRelease;
  run_ok(ledger::recover_expired_holds(config_, at("2025-04-20T10:05:00Z"), 100, resolved));
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].request_id, b.hold.request_id);
  EXPECT_EQ(resolved[0].cost_source, "none");
  EXPECT_EQ(resolved[0].cost.value(), 0);
  auto acc = account("user:u1", "2025-04-20T10:05:00Z");
  EXPECT_EQ(acc.balance.value(), 93'000);
  EXPECT_EQ(acc.account.held.value(), 0);
  // The late settlement of a recovered request changes nothing.
  auto late = settle(a, 12'000, "2025-04-20T10:06:00Z");
  EXPECT_TRUE(late.already_settled);
  EXPECT_EQ(account("user:u1", "2025-04-20T10:06:00Z").balance.value(), 93'000);
}

TEST_P(LedgerStoreTest, GrantIdempotency) {
  user("u1");
  auto g1 = grant("user:u1", 1'000, "2025-01-02T00:00:00Z", "same-key");
  EXPECT_FALSE(g1.replayed);
  auto g2 = grant("user:u1", 1'000, "2025-01-03T00:00:00Z", "same-key");
  EXPECT_TRUE(g2.replayed);
  EXPECT_EQ(g2.grant.id, g1.grant.id);
  ledger::GrantInput in;
  in.owner = "user:u1";
  in.amount_microdollars = 2'000;
  in.idempotency_key = "same-key";
  in.request_fingerprint = "user:u1|2000";
  in.now = at("2025-01-03T00:00:00Z");
  ledger::GrantOutcome out;
  EXPECT_EQ(store_->run(ledger::create_grant(in, out)).code(), StatusCode::kConflict);
  in.owner = "user:nobody";
  in.idempotency_key = "other";
  EXPECT_EQ(store_->run(ledger::create_grant(in, out)).code(), StatusCode::kNotFound);
  EXPECT_EQ(account("user:u1", "2025-01-03T00:00:00Z").balance.value(), 1'000);
}

TEST_P(LedgerStoreTest, StateSurvivesReopen) {
  user("u1");
  grant("user:u1", 5'000'000, "2025-03-01T00:00:00Z");
  request("u1", 6'000'000, "2025-03-02T10:00:00Z");
  reopen();
  auto r = request("u1", 5'000'000, "2025-03-02T11:10:00Z");
  EXPECT_EQ(r.row.free.value(), 4'000'000);
  EXPECT_EQ(r.row.charged.value(), 1'000'000);
  EXPECT_EQ(r.balance.value(), 4'000'000);
}

TEST_P(LedgerStoreTest, OneFailingOperationDoesNotFailItsBatch) {
  user("u1");
  std::atomic<int> done{0};
  std::vector<Status> results(3);
  // Park the writer so the next three operations queue up into one batch.
  std::promise<void> release;
  auto released = release.get_future().share();
  store_->submit([released](storage::Transaction&) {
    released.wait();
    return Status::Ok();
  }, [](Status) {});
  for (int i = 0; i < 3; ++i) {
    store_->submit(
        [i](storage::Transaction& tx) -> Status {
          TG_TRY(tx.insert_user(storage::UserRow{"batch" + std::to_string(i), {}, false, Timestamp{}}));
          if (i == 1) return Internal("this operation fails after writing");
          return Status::Ok();
        },
        [&results, &done, i](Status s) {
          results[i] = std::move(s);
          done.fetch_add(1);
        });
  }
  release.set_value();
  while (done.load() < 3) std::this_thread::yield();
  EXPECT_TRUE(results[0].ok());
  EXPECT_FALSE(results[1].ok());
  EXPECT_TRUE(results[2].ok());
  bool exists[3] = {false, false, false};
  run_ok([&exists](storage::Transaction& tx) -> Status {
    for (int i = 0; i < 3; ++i) {
      TG_ASSIGN(auto u, tx.get_user("batch" + std::to_string(i)));
      exists[i] = u.has_value();
    }
    return Status::Ok();
  });
  EXPECT_TRUE(exists[0]);
  EXPECT_FALSE(exists[1]);
  EXPECT_TRUE(exists[2]);
}

// Many threads admit and settle at once against a small balance: free parts
// never exceed the allowance, the balance never goes below zero when each
// cost equals its hold, and exactly one allowance lock exists.
TEST_P(LedgerStoreTest, ConcurrentAdmissionNeverOverspends) {
  user("u2");
  grant("user:u2", 21'000, "2025-03-01T00:00:00Z");
  request("u2", 10'000'000, "2025-03-01T08:00:01Z");
  std::atomic<int> admitted{0}, refused{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        auto a = admit("u2", "2025-03-10T12:05:00Z");
        if (a.result == AdmitResult::kAdmitted) {
          admitted.fetch_add(1);
          settle(a, 7'000, "2025-03-10T12:05:01Z");
        } else {
          refused.fetch_add(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(admitted.load(), 3);
  EXPECT_EQ(refused.load(), 37);
  auto acc = account("user:u2", "2025-03-10T12:06:00Z");
  EXPECT_EQ(acc.balance.value(), 0);
  EXPECT_EQ(acc.account.held.value(), 0);
  auto u = usage("u2", "2025-03");
  EXPECT_EQ(u.contexts.at(0).request_count, 4);
  EXPECT_EQ(u.contexts.at(0).total_charged.value(), 21'000);
}

TEST_P(LedgerStoreTest, ConcurrentFirstRequestsOfTheMonthLockOnce) {
  user("u1");
  std::vector<std::thread> threads;
  std::vector<ledger::AdmitOutcome> outs(16);
  for (int t = 0; t < 16; ++t) {
    threads.emplace_back([&, t] { outs[t] = admit("u1", "2025-06-01T00:00:00Z", 1'000'000); });
  }
  for (auto& t : threads) t.join();
  int admitted = 0;
  for (auto& o : outs) admitted += o.result == AdmitResult::kAdmitted;
  EXPECT_EQ(admitted, 10);  // ten holds of 1,000,000 fill the 10,000,000 allowance
  int locks = 0;
  run_ok([&locks](storage::Transaction& tx) -> Status {
    TG_ASSIGN(auto a, tx.get_allowance("u1", "2025-06"));
    locks = a ? 1 : 0;
    if (a && a->free_held.value() != 10'000'000) return Internal("free held is wrong");
    return Status::Ok();
  });
  EXPECT_EQ(locks, 1);
}

TEST_P(LedgerStoreTest, ExternalUsageDebitsTheLedgerIntoDebtAndIsIdempotent) {
  user("u1");
  grant("user:u1", 10'000, "2025-05-01T00:00:00Z");
  ledger::ExternalUsageInput in;
  in.owner = "user:u1";
  in.amount_microdollars = 25'000;
  in.at = at("2025-05-02T00:00:00Z");
  in.idempotency_key = "llm-1";
  in.request_fingerprint = "user:u1|25000|-";
  in.now = at("2025-05-02T00:00:00Z");
  ledger::ExternalUsageOutcome out;
  run_ok(ledger::record_external_usage(in, out));
  EXPECT_FALSE(out.replayed);
  EXPECT_EQ(out.balance.value(), -15'000);  // never refused for lack of funds
  run_ok(ledger::record_external_usage(in, out));
  EXPECT_TRUE(out.replayed);
  EXPECT_EQ(out.balance.value(), -15'000);
  in.amount_microdollars = 1;
  in.request_fingerprint = "user:u1|1|-";
  EXPECT_EQ(store_->run(ledger::record_external_usage(in, out)).code(), StatusCode::kConflict);
  in.owner = "org:nobody";
  in.idempotency_key = "llm-2";
  EXPECT_EQ(store_->run(ledger::record_external_usage(in, out)).code(), StatusCode::kNotFound);
  auto g = grant("user:u1", 20'000, "2025-05-03T00:00:00Z");
  EXPECT_EQ(g.grant.remaining.value(), 5'000);
  EXPECT_EQ(account("user:u1", "2025-05-03T00:00:00Z").balance.value(), 5'000);
}

TEST_P(LedgerStoreTest, RecomputeFindsNoDriftAfterAMixedHistory) {
  user("u1");
  user("u2");
  org("o1", {"u1", "u2"});
  grant("user:u1", 200'000, "2026-02-01T00:00:00Z");
  grant("org:o1", 5'000'000, "2026-02-01T00:00:00Z");
  request("u1", 9'700'000, "2026-02-02T08:00:00Z");
  request("u1", 700'000, "2026-02-02T08:05:00Z");  // straddles and overruns into debt
  request("u2", 12'000'000, "2026-02-02T08:06:00Z", "o1");
  auto pending = admit("u1", "2026-02-02T08:07:00Z", 7000, "o1");  // still in flight
  ASSERT_EQ(pending.result, AdmitResult::kAdmitted);
  grant("user:u1", 1'000'000, "2026-02-02T08:15:00Z");              // repays the debt
  ledger::RecomputeReport report;
  run_ok(ledger::recompute(std::nullopt, at("2026-02-02T09:00:00Z"), false, report));
  EXPECT_EQ(report.owners_checked, 3);
  EXPECT_TRUE(report.drift.empty()) << ledger::recompute_report_json(report);
  settle(pending, 5'000, "2026-02-02T09:00:00Z");
  run_ok(ledger::recompute(std::string("org:o1"), at("2026-02-02T09:00:00Z"), false, report));
  EXPECT_EQ(report.owners_checked, 1);
  EXPECT_TRUE(report.drift.empty()) << ledger::recompute_report_json(report);
}

TEST_P(LedgerStoreTest, RecomputeReportsATamperedCounterAndBalance) {
  user("u1");
  grant("user:u1", 100'000, "2025-03-01T00:00:00Z");
  request("u1", 10'050'000, "2025-03-02T00:00:00Z");
  run_ok([](storage::Transaction& tx) -> Status {
    TG_TRY(tx.add_to_counter(storage::CounterRow{"u1", "personal", "2025-03", 0, Microdollars(1), kZero, kZero}));
    TG_ASSIGN(auto acc, tx.get_account("user:u1"));
    acc->debt = Microdollars(7);
    return tx.update_account(*acc);
  });
  ledger::RecomputeReport report;
  run_ok(ledger::recompute(std::nullopt, at("2025-03-03T00:00:00Z"), false, report));
  std::set<std::string> fields;
  for (const auto& d : report.drift) fields.insert(d.subject + " " + d.field);
  EXPECT_TRUE(fields.count("u1/personal/2025-03 total_cost_microdollars")) << ledger::recompute_report_json(report);
  EXPECT_TRUE(fields.count("user:u1 debt_microdollars")) << ledger::recompute_report_json(report);
  EXPECT_TRUE(fields.count("user:u1 balance_microdollars"));
  for (const auto& d : report.drift) {
    if (d.field == "balance_microdollars") {
      EXPECT_EQ(d.stored.value(), 49'993);
      EXPECT_EQ(d.recomputed.value(), 50'000);
    }
  }
}

// PostgreSQL runs when TOLLGATE_TEST_PG_URL names a server (scripts/test.sh
// starts one) and skips otherwise: the cases are listed either way, since
// CTest discovers them when they are built, before any server is up.
INSTANTIATE_TEST_SUITE_P(Backends, LedgerStoreTest, ::testing::Values("sqlite", "postgres"));

}  // namespace
}  // namespace tollgate
