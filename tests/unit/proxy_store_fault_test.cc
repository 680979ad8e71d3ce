// The proxy over real loopback HTTP with a store that fails on purpose:
// fail closed at admission (503, nothing forwarded, nothing recorded) and a
// settlement that keeps failing (the client still gets the upstream answer,
// marked pending; the durable hold is resolved later by the recovery policy).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <filesystem>
#include <thread>

#include "common/ids.h"
#include "fake_exa/fake_exa.h"
#include "http/client.h"
#include "http/metrics.h"
#include "http/proxy_handler.h"
#include "http/server.h"
#include "ledger/operations.h"
#include "storage/store.h"

namespace tollgate {
namespace {

// Passes operations through to a real store, except that after `pass_` more
// operations it fails the next `fail_` ones without running them.
class FaultyStore final : public storage::Store {
 public:
  explicit FaultyStore(storage::Store& inner) : inner_(inner) {}
  void fail_after(int pass, int fail) {
    pass_ = pass;
    fail_ = fail;
  }
  void submit(storage::Operation op, std::function<void(Status)> done) override {
    if (pass_.fetch_sub(1) <= 0 && fail_.fetch_sub(1) > 0) {
      done(Unavailable("injected store failure"));
      return;
    }
    inner_.submit(std::move(op), std::move(done));
  }
  Status run(storage::Operation op) override { return inner_.run(std::move(op)); }
  void shutdown() override {}

 private:
  storage::Store& inner_;
  std::atomic<int> pass_{1 << 30};
  std::atomic<int> fail_{0};
};

Timestamp at(const char* text) { return parse_rfc3339(text).value(); }

class ProxyStoreFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("tollgate-fault-" + random_hex(6));
    std::filesystem::create_directories(dir_);
    auto s = storage::open_store("sqlite:" + (dir_ / "t.db").string(), storage::StoreOptions{});
    ASSERT_TRUE(s.ok()) << s.status().message();
    store_ = std::move(s.value());
    faulty_ = std::make_unique<FaultyStore>(*store_);
    config_.upstream_timeout_ms = 1000;
    config_.hold_timeout_ms = 2000;
    config_.upstream_api_key = "operator-key";

    // A user with a key and a grant; the free allowance is zero so holds are credit holds.
    config_.allowance_default_microdollars = 0;
    ASSERT_TRUE(store_->run(ledger::create_user({"u1", {}, false, at("2025-01-01T00:00:00Z")})).ok());
    key_ = "tg_key_u1_" + std::string(64, 'a');
    ASSERT_TRUE(store_->run(ledger::create_api_key({"key_u1", "u1", sha256_hex(std::string(64, 'a')),
                                                    at("2025-01-01T00:00:00Z"), {}})).ok());
    ledger::GrantInput g;
    g.owner = "user:u1";
    g.amount_microdollars = 100'000;
    g.idempotency_key = "g1";
    g.request_fingerprint = "g1";
    g.effective_at = at("2000-01-01T00:00:00Z");
    g.now = at("2000-01-01T00:00:00Z");
    ledger::GrantOutcome out;
    ASSERT_TRUE(store_->run(ledger::create_grant(g, out)).ok());

    upstream_server_ = std::make_unique<http::Server>(io_, http::ListenerOptions{"127.0.0.1:0"}, fake_);
    ASSERT_TRUE(upstream_server_->start().ok());
    auto url = http::Url::parse("http://127.0.0.1:" + std::to_string(upstream_server_->port()));
    upstream_ = std::make_unique<http::UpstreamClient>(io_, url.value(), 1 << 20);
    proxy_ = std::make_unique<http::ProxyHandler>(config_, *faulty_, *upstream_, clock_, metrics_);
    proxy_server_ = std::make_unique<http::Server>(io_, http::ListenerOptions{"127.0.0.1:0"}, *proxy_);
    ASSERT_TRUE(proxy_server_->start().ok());
    thread_ = std::thread([this] { io_.run(); });
  }
  void TearDown() override {
    io_.stop();
    if (thread_.joinable()) thread_.join();
    proxy_server_.reset();
    upstream_server_.reset();
    store_.reset();
    std::filesystem::remove_all(dir_);
  }

  http::ClientResponse search() {
    auto r = http::blocking_request("http://127.0.0.1:" + std::to_string(proxy_server_->port()) + "/api/exa/search",
                                    "POST", {{"x-api-key", key_}, {"content-type", "application/json"}},
                                    R"({"query":"q","fake_exa":{"cost":"0.005"}})", 10'000);
    EXPECT_TRUE(r.ok()) << r.status().message();
    return r.ok() ? r.value() : http::ClientResponse{};
  }
  static std::optional<std::string> header(const http::ClientResponse& r, std::string_view name) {
    for (const auto& h : r.headers) {
      if (http::iequals(h.name, name)) return h.value;
    }
    return std::nullopt;
  }
  ledger::AccountView account() {
    ledger::AccountView v;
    EXPECT_TRUE(store_->run(ledger::read_account("user:u1", clock_.now(), v)).ok());
    return v;
  }
  int64_t audit_rows() {
    std::vector<storage::AuditRow> rows;
    EXPECT_TRUE(store_->run([&rows](storage::Transaction& tx) -> Status {
      TG_ASSIGN(rows, tx.list_audit(storage::AuditFilter{}));
      return Status::Ok();
    }).ok());
    return static_cast<int64_t>(rows.size());
  }

  std::filesystem::path dir_;
  Config config_;
  SystemClock clock_;
  Metrics metrics_;
  std::unique_ptr<storage::Store> store_;
  std::unique_ptr<FaultyStore> faulty_;
  boost::asio::io_context io_;
  fake_exa::FakeExa fake_;
  std::unique_ptr<http::Server> upstream_server_;
  std::unique_ptr<http::UpstreamClient> upstream_;
  std::unique_ptr<http::ProxyHandler> proxy_;
  std::unique_ptr<http::Server> proxy_server_;
  std::thread thread_;
  std::string key_;
};

TEST_F(ProxyStoreFaultTest, StoreDownAtAdmissionAnswers503AndForwardsNothing) {
  faulty_->fail_after(0, 1);
  auto r = search();
  EXPECT_EQ(r.status, 503);
  EXPECT_NE(r.body.find("not forwarded"), std::string::npos) << r.body;
  EXPECT_EQ(fake_.calls(), 0);
  EXPECT_EQ(audit_rows(), 0);
  auto acc = account();
  EXPECT_EQ(acc.balance.value(), 100'000);
  EXPECT_EQ(acc.account.held.value(), 0);
  // The store is back: the next request goes through and is charged its cost.
  auto ok = search();
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(header(ok, "x-tollgate-charged-microdollars"), "5000");
  EXPECT_EQ(fake_.calls(), 1);
  EXPECT_EQ(account().balance.value(), 95'000);
}

TEST_F(ProxyStoreFaultTest, SettlementThatKeepsFailingIsPendingThenRecovered) {
  faulty_->fail_after(1, 1000);  // admission passes, every settlement attempt fails
  auto r = search();
  EXPECT_EQ(r.status, 200);  // the upstream answer still reaches the client
  EXPECT_EQ(header(r, "x-tollgate-settlement"), "pending");
  EXPECT_FALSE(header(r, "x-tollgate-cost-microdollars").has_value());
  EXPECT_NE(r.body.find("costDollars"), std::string::npos);
  EXPECT_EQ(fake_.calls(), 1);
  EXPECT_EQ(audit_rows(), 0);
  EXPECT_EQ(account().account.held.value(), 7'000);  // the durable hold remains
  // Past the hold time-out the recovery policy charges the estimate, once.
  std::vector<storage::AuditRow> resolved;
  Timestamp later{clock_.now().micros + config_.hold_timeout_ms * 1000};
  ASSERT_TRUE(store_->run(ledger::recover_expired_holds(config_, later, 100, resolved)).ok());
  ASSERT_EQ(resolved.size(), 1u);
  EXPECT_EQ(resolved[0].cost_source, "recovered");
  EXPECT_EQ(resolved[0].charged.value(), 7'000);
  auto acc = account();
  EXPECT_EQ(acc.account.held.value(), 0);
  EXPECT_EQ(acc.balance.value(), 93'000);
  EXPECT_EQ(audit_rows(), 1);
}

}  // namespace
}  // namespace tollgate
