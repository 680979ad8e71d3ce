#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <algorithm>
#include <chrono>
#include <fmt/format.h>

#include "cli/commands.h"
#include "cli/partitions.h"
#include "common/log.h"
#include "fake_exa/fake_exa.h"
#include "http/admin_handler.h"
#include "http/client.h"
#include "http/metrics.h"
#include "http/proxy_handler.h"
#include "http/server.h"
#include "ledger/operations.h"
#include "ledger/recompute.h"
#include "ledger/self_check.h"
#include "storage/async.h"

namespace tollgate::cli {

namespace asio = boost::asio;

namespace {

// Resolves holds left by a crash (or a settlement that kept failing) once
// their time-out has passed, by the configured policy.
asio::awaitable<void> hold_recovery_loop(const Config& config, storage::Store& store, const Clock& clock,
                                         Metrics& metrics, bool& stopping) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  const auto interval = std::chrono::milliseconds(std::clamp<int64_t>(config.hold_timeout_ms / 4, 100, 5000));
  while (!stopping) {
    std::vector<storage::AuditRow> resolved;
    storage::Operation op = ledger::recover_expired_holds(config, clock.now(), 500, resolved);
    Status s = co_await storage::async_run(store, std::move(op));
    if (!s.ok()) {
      metrics.add("tollgate_store_errors_total", "op=\"recover\"");
      log::Event("hold_recovery_failed").str("error", s.message()).emit(log::Level::kError);
    }
    for (const auto& row : resolved) {
      metrics.add("tollgate_recovered_holds_total", fmt::format("policy=\"{}\"", row.cost_source));
      metrics.add("tollgate_cost_microdollars_total", fmt::format("source=\"{}\"", row.cost_source), row.cost.value());
      log::Event("hold_recovered")
          .str("request_id", row.request_id)
          .num("cost_microdollars", row.cost.value())
          .str("cost_source", row.cost_source)
          .emit(log::Level::kWarn);
    }
    if (s.ok() && resolved.size() == 500) continue;  // more are waiting
    timer.expires_after(interval);
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// Applies grants taking effect and expiring for owners no request touches,
// so accounts and metrics show them on time.
asio::awaitable<void> grant_sweep_loop(const Config& config, storage::Store& store, const Clock& clock,
                                       Metrics& metrics, bool& stopping) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!stopping) {
    int64_t owners = 0;
    storage::Operation op = ledger::apply_due_grant_events_sweep(clock.now(), 500, owners);
    Status s = co_await storage::async_run(store, std::move(op));
    if (!s.ok()) {
      metrics.add("tollgate_store_errors_total", "op=\"sweep\"");
      log::Event("grant_sweep_failed").str("error", s.message()).emit(log::Level::kError);
    } else if (owners > 0) {
      metrics.add("tollgate_grant_sweep_owners_total", "", owners);
    }
    if (s.ok() && owners == 500) continue;  // more are due
    timer.expires_after(std::chrono::milliseconds(config.sweep_interval_ms));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

// Recomputes a rotating sample of owners from the records on a read snapshot
// and exports the drift, which must stay 0.
asio::awaitable<void> self_check_loop(const Config& config, storage::Store& store, const Clock& clock,
                                      Metrics& metrics, ledger::SelfCheck& self_check, bool& stopping) {
  asio::steady_timer timer(co_await asio::this_coro::executor);
  while (!stopping) {
    std::vector<std::string> owners;
    storage::Operation list = ledger::list_owners(owners);
    Status s = co_await storage::async_run_read(store, std::move(list));
    if (s.ok()) {
      ledger::RecomputeReport report;
      const Timestamp now = clock.now();
      storage::Operation check = ledger::recompute_sample(
          self_check.next_sample(owners, static_cast<size_t>(config.self_check_owners)), now, report);
      s = co_await storage::async_run_read(store, std::move(check));
      if (s.ok()) {
        self_check.record(now, report);
        auto snap = self_check.snapshot();
        metrics.set("tollgate_ledger_drift_microdollars", "", snap.drift_microdollars);
        metrics.add("tollgate_self_check_owners_total", "", snap.owners_checked);
        if (snap.drift_microdollars != 0) {
          log::Event("ledger_drift")
              .num("drift_microdollars", snap.drift_microdollars)
              .str("report", ledger::recompute_report_json(report))
              .emit(log::Level::kError);
        }
      }
    }
    if (!s.ok()) {
      metrics.add("tollgate_store_errors_total", "op=\"self_check\"");
      log::Event("self_check_failed").str("error", s.message()).emit(log::Level::kError);
    }
    timer.expires_after(std::chrono::milliseconds(config.self_check_interval_ms));
    boost::system::error_code ec;
    co_await timer.async_wait(asio::redirect_error(asio::use_awaitable, ec));
  }
}

}  // namespace

int serve(const ConfigOverrides& overrides) {
  auto config_r = load_config(overrides);
  if (!config_r.ok()) {
    log::text(log::Level::kCritical, config_r.status().message());
    return 2;
  }
  const Config config = std::move(config_r.value());
  if (Status s = validate_config(config); !s.ok()) {
    log::text(log::Level::kCritical, s.message());
    return 2;
  }
  auto upstream_url = http::Url::parse(config.upstream_url);
  if (!upstream_url.ok()) {
    log::text(log::Level::kCritical, "[upstream] url: " + upstream_url.status().message());
    return 2;
  }
  if (config.upstream_api_key.empty()) {
    if (upstream_url->host == "api.exa.ai") {
      log::text(log::Level::kCritical, "EXA_API_KEY is not set: the upstream is Exa's own API, which needs the operator's key");
      return 2;
    }
    log::text(log::Level::kWarn, "EXA_API_KEY is not set; the upstream gets an empty x-api-key");
  }
  if (config.admin_token.empty()) {
    log::text(log::Level::kWarn, "TOLLGATE_ADMIN_TOKEN is not set: the admin API refuses every call (401)");
  }
  storage::StoreOptions so;
  so.durable_power = config.durability == Durability::kPower;
  so.batch_max = config.store_batch_max;
  so.pool_size = config.store_pool_size;
  auto store_r = storage::open_store(config.database_url, so);
  if (!store_r.ok()) {
    log::text(log::Level::kCritical, store_r.status().message());
    return 2;
  }
  auto& store = *store_r.value();

  asio::io_context io(1);
  SystemClock clock;
  // PostgreSQL: this month's and the next ones' audit-log partitions, now and daily.
  PartitionMaintenance partitions(config, clock);
  Metrics metrics;
  http::UpstreamClient upstream(io, *upstream_url, config.upstream_response_bytes_max);
  http::ProxyHandler proxy(config, store, upstream, clock, metrics);
  ledger::SelfCheck self_check;
  metrics.set("tollgate_ledger_drift_microdollars", "", 0);
  http::AdminHandler admin(config, store, clock, metrics, self_check);
  http::ListenerOptions po;
  po.address = config.listen;
  po.body_bytes_max = config.request_body_bytes_max;
  po.connections_max = config.connections_max;
  http::ListenerOptions ao;
  ao.address = config.admin_listen;
  ao.body_bytes_max = 64 * 1024;
  ao.connections_max = 256;
  http::Server proxy_server(io, po, proxy);
  http::Server admin_server(io, ao, admin);
  if (Status s = proxy_server.start(); !s.ok()) {
    log::text(log::Level::kCritical, s.message());
    return 2;
  }
  if (Status s = admin_server.start(); !s.ok()) {
    log::text(log::Level::kCritical, s.message());
    return 2;
  }
  bool stopping = false;
  asio::co_spawn(io, hold_recovery_loop(config, store, clock, metrics, stopping), asio::detached);
  asio::co_spawn(io, grant_sweep_loop(config, store, clock, metrics, stopping), asio::detached);
  asio::co_spawn(io, self_check_loop(config, store, clock, metrics, self_check, stopping), asio::detached);

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int sig) {
    if (ec) return;
    log::Event("shutdown").num("signal", sig).num("in_flight", proxy_server.in_flight()).emit(log::Level::kInfo);
    stopping = true;
    proxy_server.stop();
    admin_server.stop();
    // Let in-flight requests reach the upstream's answer and settle.
    asio::co_spawn(io, [&]() -> asio::awaitable<void> {
      asio::steady_timer t(io);
      auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(config.hold_timeout_ms);
      while (proxy_server.in_flight() > 0 && std::chrono::steady_clock::now() < deadline) {
        t.expires_after(std::chrono::milliseconds(20));
        co_await t.async_wait(asio::use_awaitable);
      }
      io.stop();
    }, asio::detached);
  });
  log::Event("listening")
      .str("proxy", config.listen.substr(0, config.listen.rfind(':')) + ":" + std::to_string(proxy_server.port()))
      .str("admin", config.admin_listen.substr(0, config.admin_listen.rfind(':')) + ":" +
                        std::to_string(admin_server.port()))
      .str("database", storage::redacted_url(config.database_url))
      .str("upstream", config.upstream_url)
      .emit(log::Level::kInfo);
  io.run();
  store.shutdown();
  log::Event("stopped").emit(log::Level::kInfo);
  return 0;
}

int migrate(const ConfigOverrides& overrides) {
  auto config = load_config(overrides);
  if (!config.ok()) {
    log::text(log::Level::kCritical, config.status().message());
    return 2;
  }
  auto store = storage::open_store(config->database_url, storage::StoreOptions{});
  if (!store.ok()) {
    log::text(log::Level::kCritical, store.status().message());
    return 2;
  }
  fmt::print("database {} is migrated to the latest schema\n", storage::redacted_url(config->database_url));
  return 0;
}

int fake_exa(const std::string& listen) {
  asio::io_context io(1);
  ::tollgate::fake_exa::FakeExa handler;
  http::ListenerOptions o;
  o.address = listen;
  o.body_bytes_max = 8 * 1024 * 1024;
  http::Server server(io, o, handler);
  if (Status s = server.start(); !s.ok()) {
    log::text(log::Level::kCritical, s.message());
    return 2;
  }
  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code&, int) { io.stop(); });
  log::Event("listening").str("fake_exa", listen).num("port", server.port()).emit(log::Level::kInfo);
  io.run();
  return 0;
}

}  // namespace tollgate::cli
