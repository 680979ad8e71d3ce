// Data-driven ledger scenarios: each file in tests/scenarios/ is a list of
// operations with the exact values expected after them, run against every
// backend. After every step the stored state must equal a recompute from the
// records (no drift). A new case is a new file, not new code.
//
// Grammar (one step per line, '#' starts a comment, key=value arguments):
//   config allowance=N [tier.NAME=N] [policy=any_remaining|cover_estimate]
//          [hold_timeout_ms=N] [recovery=charge_estimate|release]
//   clock RFC3339                         the time of the following steps
//   user ID [tier=T]     org ID [members=u1,u2]     tier ID T|none
//   grant OWNER AMOUNT [effective=T] [expires=T] [name=G] [key=K] [-> status=CODE]
//   usage OWNER AMOUNT [at=T] [key=K] [-> status=CODE]        (external usage)
//   request USER cost=N [org=O] [estimate=N] [-> refused | free=N charged=N balance=N remaining=N]
//   admit USER name=R [org=O] [estimate=N] [-> refused | held_free=N held_credit=N]
//   settle R cost=N [-> free=N charged=N balance=N]
//   sweep     recover     restart
//   expect account OWNER [balance=N] [held=N] [debt=N]
//   expect grant G [remaining=N] [expired=N]
//   expect usage USER MONTH [free_allowance=N] [free_used=N]
//   expect counter USER MONTH CONTEXT count=N cost=N free=N charged=N
//   expect refusal used=N balance=N allowance=N     (figures of the last refused request)
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "common/ids.h"
#include "ledger/operations.h"
#include "ledger/recompute.h"
#include "storage/postgres/pg_store.h"
#include "storage/store.h"
#include "test_database.h"

#ifndef TOLLGATE_SCENARIO_DIR
#error "TOLLGATE_SCENARIO_DIR must point at tests/scenarios"
#endif

namespace tollgate {
namespace {

struct Step {
  int line = 0;
  std::vector<std::string> words;              // positional words
  std::map<std::string, std::string> args;     // key=value before "->"
  std::map<std::string, std::string> expects;  // key=value after "->"
  std::vector<std::string> expect_words;       // bare words after "->"
};

std::vector<Step> parse(const std::string& path) {
  std::ifstream in(path);
  std::vector<Step> steps;
  std::string text;
  int n = 0;
  while (std::getline(in, text)) {
    ++n;
    if (auto hash = text.find('#'); hash != std::string::npos) text.resize(hash);
    std::istringstream words(text);
    Step s;
    s.line = n;
    bool after_arrow = false;
    for (std::string w; words >> w;) {
      if (w == "->") {
        after_arrow = true;
        continue;
      }
      auto eq = w.find('=');
      if (eq == std::string::npos) {
        (after_arrow ? s.expect_words : s.words).push_back(w);
      } else {
        (after_arrow ? s.expects : s.args)[w.substr(0, eq)] = w.substr(eq + 1);
      }
    }
    if (!s.words.empty()) steps.push_back(std::move(s));
  }
  return steps;
}

int64_t num(const std::string& text) {
  std::string digits;
  for (char c : text) {
    if (c != '_' && c != ',') digits.push_back(c);
  }
  return std::stoll(digits);
}

Timestamp time_of(const std::string& text) {
  auto t = parse_rfc3339(text);
  if (!t) throw std::runtime_error("bad time " + text);
  return *t;
}

struct Param {
  std::string backend;
  std::string file;
};

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string name = info.param.backend + "_" + std::filesystem::path(info.param.file).stem().string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class ScenarioTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    if (auto why = testing::TestDatabase::unavailable(GetParam().backend)) GTEST_SKIP() << *why;
    db_ = std::make_unique<testing::TestDatabase>(GetParam().backend, "scn");
    ASSERT_TRUE(db_->status().ok()) << db_->status().message();
    open();
  }
  void TearDown() override {
    store_.reset();
    db_.reset();
  }
  void open() {
    store_.reset();
    auto s = storage::open_store(db_->url(), storage::StoreOptions{});
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s.value());
  }

  Status run(storage::Operation op) { return store_->run(std::move(op)); }

  void expect_eq(const Step& s, const std::string& what, int64_t actual, const std::string& expected) {
    EXPECT_EQ(actual, num(expected)) << "line " << s.line << ": " << what;
  }

  void step(const Step& s);
  void check_no_drift(const Step& s) {
    ledger::RecomputeReport report;
    Status st = run(ledger::recompute(std::nullopt, now_, false, report));
    ASSERT_TRUE(st.ok()) << "line " << s.line << ": " << st.message();
    EXPECT_TRUE(report.drift.empty()) << "line " << s.line << ": drift " << ledger::recompute_report_json(report);
  }

  std::unique_ptr<testing::TestDatabase> db_;
  Config config_;
  std::unique_ptr<storage::Store> store_;
  Timestamp now_;
  std::map<std::string, std::string> grant_ids;                 // scenario name -> grant id
  std::map<std::string, ledger::AdmitOutcome> in_flight;        // scenario name -> admitted request
  ledger::AdmitOutcome last_refusal;
};

void ScenarioTest::step(const Step& s) {
  const std::string& verb = s.words[0];
  auto arg = [&](const std::string& k, const std::string& def = "") {
    auto it = s.args.find(k);
    return it == s.args.end() ? def : it->second;
  };
  auto want = [&](const std::string& k) -> const std::string* {
    auto it = s.expects.find(k);
    return it == s.expects.end() ? nullptr : &it->second;
  };
  auto refused_expected = std::find(s.expect_words.begin(), s.expect_words.end(), "refused") != s.expect_words.end();
  auto status_matches = [&](const Status& st) {
    if (auto code = want("status")) {
      int expected = static_cast<int>(num(*code));
      int actual = st.ok() ? 201 : st.code() == StatusCode::kConflict ? 409 : st.code() == StatusCode::kNotFound ? 404 : 400;
      EXPECT_EQ(actual, expected) << "line " << s.line << ": " << st.message();
    } else {
      EXPECT_TRUE(st.ok()) << "line " << s.line << ": " << st.message();
    }
  };
  auto admit_input = [&](const std::string& user) {
    ledger::AdmitInput in;
    in.key_id = "key_" + user;
    in.secret_sha256 = sha256_hex("secret-" + user);
    if (!arg("org").empty()) in.org_id = arg("org");
    in.request_id = new_request_id(now_);
    in.path = "search";
    in.arrived_at = now_;
    in.estimate = Microdollars(num(arg("estimate", "7000")));
    return in;
  };
  auto check_settled = [&](const ledger::SettleOutcome& out) {
    if (auto v = want("free")) expect_eq(s, "free", out.row.free.value(), *v);
    if (auto v = want("charged")) expect_eq(s, "charged", out.row.charged.value(), *v);
    if (auto v = want("balance")) expect_eq(s, "balance", out.balance.value(), *v);
    if (auto v = want("remaining")) expect_eq(s, "allowance remaining", out.allowance_remaining.value(), *v);
  };

  if (verb == "config") {
    for (const auto& [k, v] : s.args) {
      if (k == "allowance") config_.allowance_default_microdollars = num(v);
      else if (k.starts_with("tier.")) config_.allowance_tiers_microdollars[k.substr(5)] = num(v);
      else if (k == "policy") config_.admission_policy = v == "cover_estimate" ? AdmissionPolicy::kCoverEstimate : AdmissionPolicy::kAnyRemaining;
      else if (k == "hold_timeout_ms") config_.hold_timeout_ms = num(v);
      else if (k == "recovery") config_.hold_recovery = v == "release" ? HoldRecovery::kRelease : HoldRecovery::kChargeEstimate;
      else FAIL() << "line " << s.line << ": unknown config " << k;
    }
  } else if (verb == "clock") {
    now_ = time_of(s.words.at(1));
  } else if (verb == "user") {
    const std::string id = s.words.at(1);
    std::optional<std::string> tier;
    if (!arg("tier").empty()) tier = arg("tier");
    ASSERT_TRUE(run(ledger::create_user({id, tier, false, now_})).ok());
    ASSERT_TRUE(run(ledger::create_api_key({"key_" + id, id, sha256_hex("secret-" + id), now_, {}})).ok());
  } else if (verb == "tier") {
    std::optional<std::string> tier;
    if (s.words.at(2) != "none") tier = s.words.at(2);
    ASSERT_TRUE(run(ledger::update_user(s.words.at(1), std::optional<std::optional<std::string>>(tier), std::nullopt)).ok());
  } else if (verb == "org") {
    ASSERT_TRUE(run(ledger::create_org({s.words.at(1), s.words.at(1), now_})).ok());
    std::istringstream members(arg("members"));
    for (std::string m; std::getline(members, m, ',');) {
      ASSERT_TRUE(run(ledger::add_member(s.words.at(1), m, now_)).ok());
    }
  } else if (verb == "grant") {
    ledger::GrantInput in;
    in.owner = s.words.at(1);
    in.amount_microdollars = num(s.words.at(2));
    if (!arg("effective").empty()) in.effective_at = time_of(arg("effective"));
    if (!arg("expires").empty()) in.expires_at = time_of(arg("expires"));
    in.idempotency_key = arg("key", "grant-" + std::to_string(s.line));
    in.request_fingerprint = in.owner + "|" + std::to_string(in.amount_microdollars) + "|" + arg("effective") + "|" + arg("expires");
    in.now = now_;
    ledger::GrantOutcome out;
    Status st = run(ledger::create_grant(in, out));
    status_matches(st);
    if (st.ok() && !arg("name").empty()) grant_ids[arg("name")] = out.grant.id;
    if (auto v = want("remaining")) expect_eq(s, "grant remaining", out.grant.remaining.value(), *v);
  } else if (verb == "usage") {
    ledger::ExternalUsageInput in;
    in.owner = s.words.at(1);
    in.amount_microdollars = num(s.words.at(2));
    in.at = arg("at").empty() ? now_ : time_of(arg("at"));
    in.idempotency_key = arg("key", "usage-" + std::to_string(s.line));
    in.request_fingerprint = in.owner + "|" + std::to_string(in.amount_microdollars) + "|" + arg("at");
    in.now = now_;
    ledger::ExternalUsageOutcome out;
    Status st = run(ledger::record_external_usage(in, out));
    status_matches(st);
    if (auto v = want("balance")) expect_eq(s, "balance", out.balance.value(), *v);
  } else if (verb == "request" || verb == "admit") {
    auto in = admit_input(s.words.at(1));
    ledger::AdmitOutcome a;
    ASSERT_TRUE(run(ledger::admit(config_, in, a)).ok());
    if (refused_expected) {
      EXPECT_EQ(a.result, ledger::AdmitResult::kInsufficient) << "line " << s.line;
      last_refusal = a;
      return;
    }
    ASSERT_EQ(a.result, ledger::AdmitResult::kAdmitted) << "line " << s.line;
    if (verb == "admit") {
      if (auto v = want("held_free")) expect_eq(s, "held free", a.hold.free_held.value(), *v);
      if (auto v = want("held_credit")) expect_eq(s, "held credit", a.hold.credit_held.value(), *v);
      in_flight[arg("name")] = a;
      return;
    }
    ledger::SettleOutcome out;
    ASSERT_TRUE(run(ledger::settle({a.hold.request_id, Microdollars(num(arg("cost"))), "upstream", 200, now_}, out)).ok());
    check_settled(out);
  } else if (verb == "settle") {
    auto it = in_flight.find(s.words.at(1));
    ASSERT_NE(it, in_flight.end()) << "line " << s.line << ": no request " << s.words.at(1);
    ledger::SettleOutcome out;
    ASSERT_TRUE(run(ledger::settle({it->second.hold.request_id, Microdollars(num(arg("cost"))), "upstream", 200, now_}, out)).ok());
    check_settled(out);
    in_flight.erase(it);
  } else if (verb == "sweep") {
    int64_t owners = 0;
    ASSERT_TRUE(run(ledger::apply_due_grant_events_sweep(now_, 1000, owners)).ok());
  } else if (verb == "recover") {
    std::vector<storage::AuditRow> resolved;
    ASSERT_TRUE(run(ledger::recover_expired_holds(config_, now_, 1000, resolved)).ok());
    if (auto v = want("resolved")) expect_eq(s, "resolved holds", static_cast<int64_t>(resolved.size()), *v);
  } else if (verb == "restart") {
    open();
  } else if (verb == "expect") {
    const std::string& what = s.words.at(1);
    auto v = [&](const std::string& k) -> const std::string* {
      auto it = s.args.find(k);
      return it == s.args.end() ? nullptr : &it->second;
    };
    if (what == "account") {
      ledger::AccountView view;
      ASSERT_TRUE(run(ledger::read_account(s.words.at(2), now_, view)).ok()) << "line " << s.line;
      if (auto e = v("balance")) expect_eq(s, "balance", view.balance.value(), *e);
      if (auto e = v("held")) expect_eq(s, "held", view.account.held.value(), *e);
      if (auto e = v("debt")) expect_eq(s, "debt", view.account.debt.value(), *e);
    } else if (what == "grant") {
      auto id = grant_ids.at(s.words.at(2));
      std::vector<storage::GrantRow> grants;
      ASSERT_TRUE(run([&](storage::Transaction& tx) -> Status {
        TG_ASSIGN(grants, tx.list_grants(s.words.at(3)));
        return Status::Ok();
      }).ok());
      bool found = false;
      for (const auto& g : grants) {
        if (g.id != id) continue;
        found = true;
        if (auto e = v("remaining")) expect_eq(s, "remaining", g.remaining.value(), *e);
        if (auto e = v("expired")) expect_eq(s, "expired", g.expired.value(), *e);
      }
      EXPECT_TRUE(found) << "line " << s.line;
    } else if (what == "usage") {
      ledger::UsageView u;
      ASSERT_TRUE(run(ledger::read_usage(config_, s.words.at(2), s.words.at(3), u)).ok());
      if (auto e = v("free_allowance")) expect_eq(s, "free allowance", u.free_allowance.value(), *e);
      if (auto e = v("free_used")) expect_eq(s, "free used", u.free_used.value(), *e);
    } else if (what == "counter") {
      ledger::UsageView u;
      ASSERT_TRUE(run(ledger::read_usage(config_, s.words.at(2), s.words.at(3), u)).ok());
      const storage::CounterRow* row = nullptr;
      for (const auto& c : u.contexts) {
        if (c.context == s.words.at(4)) row = &c;
      }
      ASSERT_NE(row, nullptr) << "line " << s.line << ": no counter for " << s.words.at(4);
      if (auto e = v("count")) expect_eq(s, "request count", row->request_count, *e);
      if (auto e = v("cost")) expect_eq(s, "total cost", row->total_cost.value(), *e);
      if (auto e = v("free")) expect_eq(s, "total free", row->total_free.value(), *e);
      if (auto e = v("charged")) expect_eq(s, "total charged", row->total_charged.value(), *e);
    } else if (what == "refusal") {
      if (auto e = v("used")) expect_eq(s, "refusal used", last_refusal.free_used.value(), *e);
      if (auto e = v("balance")) expect_eq(s, "refusal balance", last_refusal.balance.value(), *e);
      if (auto e = v("allowance")) expect_eq(s, "refusal allowance", last_refusal.monthly_allowance.value(), *e);
    } else {
      FAIL() << "line " << s.line << ": unknown expectation " << what;
    }
  } else {
    FAIL() << "line " << s.line << ": unknown step " << verb;
  }
}

TEST_P(ScenarioTest, Runs) {
  auto steps = parse(GetParam().file);
  ASSERT_FALSE(steps.empty());
  for (const auto& s : steps) {
    ASSERT_NO_FATAL_FAILURE(step(s));
    if (s.words[0] != "config") {
      ASSERT_NO_FATAL_FAILURE(check_no_drift(s));
    }
  }
}

std::vector<Param> scenarios() {
  std::vector<Param> out;
  for (const auto& e : std::filesystem::directory_iterator(TOLLGATE_SCENARIO_DIR)) {
    if (e.path().extension() != ".scn") continue;
    out.push_back({"sqlite", e.path().string()});
    // And on PostgreSQL (skipped at run time unless TOLLGATE_TEST_PG_URL is set).
    out.push_back({"postgres", e.path().string()});
  }
  std::sort(out.begin(), out.end(), [](const Param& a, const Param& b) { return a.file < b.file; });
  return out;
}

INSTANTIATE_TEST_SUITE_P(Files, ScenarioTest, ::testing::ValuesIn(scenarios()), param_name);

}  // namespace
}  // namespace tollgate
