#include "http/proxy_handler.h"

#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <fmt/format.h>

#include "auth/jwt.h"
#include "common/ids.h"
#include "common/log.h"
#include "exa/exa.h"
#include "ledger/operations.h"
#include "storage/async.h"

namespace tollgate::http {

namespace asio = boost::asio;
namespace json = boost::json;

namespace {

Response error_json(int status, std::string_view message) {
  json::object o;
  o["error"] = message;
  return Response::json(status, json::serialize(o));
}

// The caller's token: `Authorization: Bearer <t>` or `x-api-key: <t>`.
std::optional<std::string> caller_token(const Request& r) {
  if (auto a = r.header("authorization")) {
    std::string_view v = *a;
    if (v.size() > 7 && iequals(v.substr(0, 7), "bearer ")) {
      v.remove_prefix(7);
      while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
      if (!v.empty()) return std::string(v);
    }
  }
  if (auto k = r.header("x-api-key"); k && !k->empty()) return std::string(*k);
  return std::nullopt;
}

const char* outcome_label(ClientResponse::Outcome o) {
  switch (o) {
    case ClientResponse::Outcome::kOk: return "ok";
    case ClientResponse::Outcome::kUnreachable: return "unreachable";
    case ClientResponse::Outcome::kTimeout: return "timeout";
    case ClientResponse::Outcome::kTooLarge: return "too_large";
  }
  return "?";
}

}  // namespace

asio::awaitable<std::optional<Response>> health_check(const Request& request, storage::Store& store) {
  auto path = request.path();
  if (path == "/healthz") co_return Response::json(200, R"({"status":"ok"})");
  if (path == "/readyz") {
    storage::Operation op = [](storage::Transaction& tx) { return tx.get_user("").status(); };
    Status s = co_await storage::async_run(store, std::move(op));
    if (s.ok()) co_return Response::json(200, R"({"status":"ready"})");
    co_return error_json(503, "store unreachable: " + s.message());
  }
  co_return std::nullopt;
}

ProxyHandler::ProxyHandler(const Config& config, storage::Store& store, UpstreamClient& upstream,
                           const Clock& clock, Metrics& metrics)
    : config_(config), store_(store), upstream_(upstream), clock_(clock), metrics_(metrics) {}

asio::awaitable<Response> ProxyHandler::handle(Request req) {
  if (auto h = co_await health_check(req, store_)) co_return std::move(*h);
  const std::string_view path = req.path();
  constexpr std::string_view kPrefix = "/api/exa/";
  if (!path.starts_with(kPrefix)) {
    metrics_.add("tollgate_refusals_total", "reason=\"not_found\"");
    co_return error_json(404, fmt::format("no route for '{}'; the metered API is under /api/exa/", path.substr(0, 200)));
  }
  if (req.method != "POST") {
    metrics_.add("tollgate_refusals_total", "reason=\"method\"");
    Response r = error_json(405, "method not allowed; use POST");
    r.set("allow", "POST");
    co_return r;
  }
  const std::string sub(path.substr(kPrefix.size()));
  const Timestamp arrived = clock_.now();
  const auto arrived_steady = std::chrono::steady_clock::now();

  // Validation that needs no store, in SPEC order; reported after auth.
  std::optional<Response> prevalidation;
  std::string forward_body;
  Microdollars estimate;
  if (!exa::is_metered_path(sub)) {
    prevalidation = error_json(
        400, fmt::format("unknown path '/api/exa/{}'; allowed paths: search, contents, findSimilar, answer, context",
                         sub.substr(0, 100)));
  } else if (req.body_too_large) {
    prevalidation = error_json(413, fmt::format("request body exceeds the limit of {} bytes", config_.request_body_bytes_max));
    prevalidation->close = true;
  } else {
    json::error_code ec;
    json::value body = json::parse(req.body, ec);
    if (ec || !body.is_object()) {
      prevalidation = error_json(400, ec ? fmt::format("request body is not valid JSON: {}", ec.message())
                                         : std::string("request body must be a JSON object"));
    } else {
      auto& obj = body.as_object();
      auto* stream = obj.if_contains("stream");
      bool streaming = stream && stream->is_bool() && stream->as_bool();
      if (streaming && config_.stream_policy == StreamPolicy::kReject) {
        prevalidation = error_json(400, "\"stream\": true is not supported: streamed responses carry no cost and "
                                        "are not metered; send the request without streaming");
      } else {
        if (stream && config_.stream_policy == StreamPolicy::kStrip) {
          obj.erase("stream");
          forward_body = json::serialize(obj);
        } else {
          forward_body = std::move(req.body);
        }
        estimate = exa::estimate(config_.prices, sub, obj);
      }
    }
  }

  ledger::AdmitInput in;
  if (auto token = caller_token(req)) {
    in.credential_present = true;
    if (auto parsed = parse_api_key(*token)) {
      in.key_id = parsed->key_id;
      in.secret_sha256 = sha256_hex(parsed->secret);
    } else if (!config_.jwt.secret.empty()) {
      // The user must still exist (and not be blocked): the store checks.
      if (auto user = auth::verify_hs256(*token, config_.jwt, arrived); user.ok()) {
        in.authenticated_user_id = user.value();
      }
    }
  }
  // The org context: one value, from either header. Several different values
  // are ambiguous: refused (after authentication), never guessed.
  std::optional<std::string> org;
  bool org_ambiguous = false;
  for (const auto& h : req.headers) {
    if (!iequals(h.name, "x-kilocode-organizationid") && !iequals(h.name, "x-organization-id")) continue;
    if (org && *org != h.value) org_ambiguous = true;
    org = h.value;
  }
  if (org_ambiguous && !prevalidation) {
    prevalidation = error_json(400, "conflicting organization headers: send one X-KiloCode-OrganizationId");
  } else if (!org_ambiguous) {
    in.org_id = org;
  }
  if (prevalidation) in.prevalidation_status = prevalidation->status;
  in.request_id = new_request_id(arrived);
  in.path = sub;
  in.arrived_at = arrived;
  in.estimate = estimate;

  ledger::AdmitOutcome admit;
  if (!in.key_id && !in.authenticated_user_id) {
    admit.result = ledger::AdmitResult::kUnauthenticated;
  } else {
    storage::Operation op = ledger::admit(config_, in, admit);
    Status s = co_await storage::async_run(store_, std::move(op));
    if (!s.ok()) {
      metrics_.add("tollgate_store_errors_total", "op=\"admit\"");
      metrics_.add("tollgate_refusals_total", "reason=\"store_unavailable\"");
      log::Event("admit_failed").str("request_id", in.request_id).str("error", s.message()).emit(log::Level::kError);
      co_return error_json(503, "the accounting store is unavailable; the request was not forwarded");
    }
  }
  switch (admit.result) {
    case ledger::AdmitResult::kUnauthenticated:
      metrics_.add("tollgate_refusals_total", "reason=\"unauthenticated\"");
      co_return error_json(401, in.credential_present ? "invalid or revoked API key"
                                                      : "missing API key: send Authorization: Bearer <key> or x-api-key");
    case ledger::AdmitResult::kBlocked:
      metrics_.add("tollgate_refusals_total", "reason=\"blocked\"");
      co_return error_json(403, "this user is blocked");
    case ledger::AdmitResult::kNotMember:
      metrics_.add("tollgate_refusals_total", "reason=\"not_member\"");
      co_return error_json(403, fmt::format("user is not a member of organization '{}'", in.org_id->substr(0, 128)));
    case ledger::AdmitResult::kPrevalidation:
      metrics_.add("tollgate_refusals_total", fmt::format("reason=\"invalid_{}\"", prevalidation->status));
      co_return std::move(*prevalidation);
    case ledger::AdmitResult::kInsufficient: {
      metrics_.add("tollgate_refusals_total", "reason=\"insufficient_funds\"");
      json::object o;
      o["error"] = admit.free_remaining_below_estimate
                       ? "remaining Exa free allowance and credit balance do not cover this request's estimated cost"
                       : "Exa free allowance exhausted and no credit balance available";
      o["monthlyAllowance"] = format_dollars_cents(admit.monthly_allowance);
      o["used"] = format_dollars_cents(admit.free_used);
      o["monthly_allowance_microdollars"] = admit.monthly_allowance.value();
      o["used_microdollars"] = admit.free_used.value();
      o["balance_microdollars"] = admit.balance.value();
      o["estimate_microdollars"] = estimate.value();
      o["context"] = admit.context;
      co_return Response::json(402, json::serialize(o));
    }
    case ledger::AdmitResult::kAdmitted:
      break;
  }

  // Forward with the operator's key; nothing of the caller's but the body.
  std::vector<Header> up_headers{{"content-type", "application/json"},
                                 {"x-api-key", config_.upstream_api_key},
                                 {"user-agent", "tollgate/0.1"}};
  ClientResponse up = co_await upstream_.post("/" + sub, std::move(up_headers), std::move(forward_body),
                                              config_.upstream_timeout_ms);

  ledger::SettleInput settle_in;
  settle_in.request_id = in.request_id;
  settle_in.upstream_status = up.outcome == ClientResponse::Outcome::kOk || up.outcome == ClientResponse::Outcome::kTooLarge
                                  ? up.status
                                  : 0;
  bool success = settle_in.upstream_status >= 200 && settle_in.upstream_status < 300;
  settle_in.cost = kZero;
  settle_in.cost_source = "none";
  if (up.outcome == ClientResponse::Outcome::kOk) {
    auto parsed = exa::read_cost(up.body, Microdollars(config_.cost_microdollars_max));
    if (parsed.reading == exa::CostReading::kValid) {
      settle_in.cost = parsed.cost;
      settle_in.cost_source = "upstream";
    } else if (success) {
      // A successful answer is never free: unpriced traffic is charged the estimate.
      settle_in.cost = estimate;
      settle_in.cost_source = "estimate";
      metrics_.add("tollgate_estimate_charged_total", parsed.reading == exa::CostReading::kMissing
                                                          ? "reason=\"missing\""
                                                          : "reason=\"invalid\"");
    }
  } else if (up.outcome == ClientResponse::Outcome::kTooLarge && success) {
    settle_in.cost = estimate;
    settle_in.cost_source = "estimate";
    metrics_.add("tollgate_estimate_charged_total", "reason=\"too_large\"");
  }

  // Settle, retrying store failures while the hold is still ours: past its
  // time-out the recovery policy resolves it instead.
  ledger::SettleOutcome settled;
  Status s;
  auto retry_deadline = arrived_steady + std::chrono::milliseconds(config_.hold_timeout_ms * 3 / 4);
  for (int attempt = 0;; ++attempt) {
    settle_in.settled_at = clock_.now();
    storage::Operation op = ledger::settle(settle_in, settled);
    s = co_await storage::async_run(store_, std::move(op));
    if (s.ok() || attempt >= 8 || std::chrono::steady_clock::now() >= retry_deadline) break;
    metrics_.add("tollgate_store_errors_total", "op=\"settle\"");
    asio::steady_timer timer(co_await asio::this_coro::executor);
    timer.expires_after(std::chrono::milliseconds(50 << attempt));
    co_await timer.async_wait(asio::use_awaitable);
  }

  Response res;
  switch (up.outcome) {
    case ClientResponse::Outcome::kOk:
      res.status = up.status;
      res.body = std::move(up.body);
      for (auto& h : up.headers) {
        if (iequals(h.name, "content-type") || iequals(h.name, "date") || iequals(h.name, "request-id")) {
          res.headers.push_back(std::move(h));
        }
      }
      break;
    case ClientResponse::Outcome::kTimeout:
      res = error_json(504, fmt::format("the upstream did not answer within {} ms", config_.upstream_timeout_ms));
      break;
    case ClientResponse::Outcome::kTooLarge:
      res = error_json(502, fmt::format("the upstream answer exceeded {} bytes", config_.upstream_response_bytes_max));
      break;
    case ClientResponse::Outcome::kUnreachable:
      res = error_json(502, "the upstream is unreachable");
      break;
  }
  res.set("x-tollgate-request-id", in.request_id);
  if (s.ok()) {
    res.set("x-tollgate-cost-microdollars", std::to_string(settled.row.cost.value()));
    res.set("x-tollgate-free-microdollars", std::to_string(settled.row.free.value()));
    res.set("x-tollgate-charged-microdollars", std::to_string(settled.row.charged.value()));
    res.set("x-tollgate-allowance-remaining-microdollars", std::to_string(settled.allowance_remaining.value()));
    res.set("x-tollgate-balance-microdollars", std::to_string(settled.balance.value()));
    metrics_.add("tollgate_cost_microdollars_total", fmt::format("source=\"{}\"", settled.row.cost_source),
                 settled.row.cost.value());
  } else {
    res.set("x-tollgate-settlement", "pending");
    log::Event("settle_failed").str("request_id", in.request_id).str("error", s.message()).emit(log::Level::kError);
  }
  metrics_.add("tollgate_requests_total", fmt::format("path=\"{}\",status=\"{}\"", sub, res.status));
  if (log::enabled(log::Level::kInfo)) {
    log::Event("request")
        .str("request_id", in.request_id)
        .str("user", admit.user_id)
        .str("context", admit.context)
        .str("path", sub)
        .str("upstream", outcome_label(up.outcome))
        .num("status", res.status)
        .num("cost_microdollars", settle_in.cost.value())
        .num("free_microdollars", s.ok() ? settled.row.free.value() : 0)
        .num("charged_microdollars", s.ok() ? settled.row.charged.value() : 0)
        .str("cost_source", settle_in.cost_source)
        .emit(log::Level::kInfo);
  }
  co_return res;
}

}  // namespace tollgate::http
