#include "http/admin_handler.h"

#include <fmt/format.h>

#include <boost/json.hpp>
#include <charconv>
#include <vector>

#include "common/ids.h"
#include "http/proxy_handler.h"
#include "ledger/operations.h"
#include "ledger/recompute.h"
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

Response from_status(const Status& s) {
  switch (s.code()) {
    case StatusCode::kInvalidArgument:
      return error_json(400, s.message());
    case StatusCode::kNotFound:
      return error_json(404, s.message());
    case StatusCode::kConflict:
      return error_json(409, s.message());
    case StatusCode::kUnavailable:
      return error_json(503, s.message());
    default:
      return error_json(500, s.message());
  }
}

std::vector<std::string_view> split_path(std::string_view p) {
  std::vector<std::string_view> out;
  while (!p.empty()) {
    if (p.front() == '/') {
      p.remove_prefix(1);
      continue;
    }
    auto slash = p.find('/');
    out.push_back(p.substr(0, slash));
    if (slash == std::string_view::npos) break;
    p.remove_prefix(slash);
  }
  return out;
}

// Parses the body as a JSON object (an empty body is an empty object).
Result<json::object> body_object(const Request& r) {
  if (r.body.empty()) return json::object();
  json::error_code ec;
  json::value v = json::parse(r.body, ec);
  if (ec) return InvalidArgument("request body is not valid JSON: " + ec.message());
  if (!v.is_object()) return InvalidArgument("request body must be a JSON object");
  return std::move(v.as_object());
}

Result<std::optional<std::string>> opt_string(const json::object& o, std::string_view key) {
  auto* v = o.if_contains(key);
  if (!v || v->is_null()) return std::optional<std::string>();
  if (!v->is_string()) return InvalidArgument(fmt::format("'{}' must be a string", key));
  return std::optional<std::string>(std::string(v->as_string()));
}

Result<std::optional<Timestamp>> opt_time(const json::object& o, std::string_view key) {
  TG_ASSIGN(auto s, opt_string(o, key));
  if (!s) return std::optional<Timestamp>();
  auto t = parse_rfc3339(*s);
  if (!t) return InvalidArgument(fmt::format("'{}' must be an RFC 3339 timestamp, e.g. 2025-10-15T00:00:00Z", key));
  return std::optional<Timestamp>(*t);
}

Status check_id(std::string_view what, std::string_view id) {
  if (!valid_id(id)) {
    return InvalidArgument(fmt::format("invalid {} id: use 1-128 characters of A-Z a-z 0-9 . _ : @ -", what));
  }
  return Status::Ok();
}

json::value opt_ts_json(const std::optional<Timestamp>& t) {
  return t ? json::value(format_rfc3339(*t)) : json::value(nullptr);
}

json::object grant_json(const storage::GrantRow& g) {
  json::object o;
  o["id"] = g.id;
  o["owner"] = g.owner;
  o["amount_microdollars"] = g.amount.value();
  o["remaining_microdollars"] = g.remaining.value();
  o["expired_microdollars"] = g.expired.value();
  o["effective_at"] = format_rfc3339(g.effective_at);
  o["expires_at"] = opt_ts_json(g.expires_at);
  o["idempotency_key"] = g.idempotency_key;
  return o;
}

json::object audit_json(const storage::AuditRow& a) {
  json::object o;
  o["request_id"] = a.request_id;
  o["user"] = a.user_id;
  o["context"] = a.context;
  o["owner"] = a.owner;
  o["path"] = a.path;
  o["upstream_status"] = a.upstream_status;
  o["cost_microdollars"] = a.cost.value();
  o["free_microdollars"] = a.free.value();
  o["charged_microdollars"] = a.charged.value();
  o["cost_source"] = a.cost_source;
  o["arrived_at"] = format_rfc3339(a.arrived_at);
  o["settled_at"] = format_rfc3339(a.settled_at);
  return o;
}

Response ok_json(int status, const json::object& o) { return Response::json(status, json::serialize(o)); }

// The fields every ledger entry sent to the admin API has (grants, usage).
struct EntryFields {
  std::string owner;
  int64_t amount_microdollars = 0;
  std::string idempotency_key;
};

Result<EntryFields> entry_fields(const json::object& body) {
  EntryFields f;
  TG_ASSIGN(auto owner, opt_string(body, "owner"));
  if (!owner || !Owner::parse(*owner)) return InvalidArgument("'owner' must be user:<id> or org:<id>");
  f.owner = *owner;
  auto* amount = body.if_contains("amount_microdollars");
  if (!amount || !amount->is_int64() || amount->as_int64() <= 0 || amount->as_int64() > kMaxAmount.value()) {
    return InvalidArgument(fmt::format("'amount_microdollars' must be an integer from 1 to {}", kMaxAmount.value()));
  }
  f.amount_microdollars = amount->as_int64();
  TG_ASSIGN(auto key, opt_string(body, "idempotency_key"));
  if (!key || key->empty() || key->size() > 256) {
    return InvalidArgument("'idempotency_key' is required: a string of 1-256 characters");
  }
  f.idempotency_key = *key;
  return f;
}

}  // namespace

AdminHandler::AdminHandler(const Config& config, storage::Store& store, const Clock& clock, Metrics& metrics,
                           ledger::SelfCheck& self_check)
    : config_(config), store_(store), clock_(clock), metrics_(metrics), self_check_(self_check) {}

asio::awaitable<Response> AdminHandler::handle(Request req) {
  if (auto h = co_await health_check(req, store_)) co_return std::move(*h);
  if (config_.admin_token.empty()) {
    co_return error_json(401, "the admin API is disabled: TOLLGATE_ADMIN_TOKEN is not set on the server");
  }
  auto auth = req.header("authorization");
  std::string_view presented;
  if (auth && auth->size() > 7 && iequals(auth->substr(0, 7), "bearer ")) presented = auth->substr(7);
  if (!constant_time_equal(sha256_hex(presented), sha256_hex(config_.admin_token))) {
    co_return error_json(401, "missing or wrong admin token (Authorization: Bearer $TOLLGATE_ADMIN_TOKEN)");
  }
  if (req.body_too_large) co_return error_json(413, "request body too large");
  co_return co_await route(req);
}

asio::awaitable<Response> AdminHandler::route(Request& req) {
  if (!query_well_formed(req.query())) co_return error_json(400, "malformed percent-encoding in the query string");
  const auto parts = split_path(req.path());
  const std::string& m = req.method;
  const Timestamp now = clock_.now();
  // Operations are named locals, never temporaries inside a co_await
  // expression: GCC 12 mishandles such temporaries' lifetimes in coroutines.
  auto run = [this](storage::Operation&& op) { return storage::async_run(store_, std::move(op)); };

  if (parts.size() == 1 && parts[0] == "metrics" && m == "GET") {
    Response r;
    r.status = 200;
    r.body = metrics_.render();
    r.headers.push_back({"content-type", "text/plain; version=0.0.4"});
    co_return r;
  }
  if (parts.size() == 1 && parts[0] == "metrics") co_return error_json(405, "method not allowed; use GET");
  if (parts.size() < 3 || parts[0] != "admin" || parts[1] != "v1") {
    co_return error_json(404, fmt::format("no admin route for '{}'", req.path().substr(0, 200)));
  }
  const std::string_view res = parts[2];
  auto method_not_allowed = [] { return error_json(405, "method not allowed on this route"); };

  // POST /admin/v1/users
  if (res == "users" && parts.size() == 3) {
    if (m != "POST") co_return method_not_allowed();
    auto body = body_object(req);
    if (!body.ok()) co_return from_status(body.status());
    auto id = opt_string(*body, "id");
    auto tier = opt_string(*body, "tier");
    if (!id.ok()) co_return from_status(id.status());
    if (!tier.ok()) co_return from_status(tier.status());
    storage::UserRow u;
    u.id = id->value_or("u_" + random_hex(8));
    if (Status s = check_id("user", u.id); !s.ok()) co_return from_status(s);
    if (*tier && (tier->value().empty() || tier->value().size() > 64))
      co_return error_json(400, "'tier' must be 1-64 characters");
    u.tier = *tier;
    u.created_at = now;
    storage::Operation op = ledger::create_user(u);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    o["id"] = u.id;
    co_return ok_json(201, o);
  }
  if (res == "users" && parts.size() == 4) {
    if (m != "PATCH") co_return method_not_allowed();
    std::string id(parts[3]);
    if (Status s = check_id("user", id); !s.ok()) co_return from_status(s);
    auto body = body_object(req);
    if (!body.ok()) co_return from_status(body.status());
    for (const auto& field : *body) {
      if (field.key() != "tier" && field.key() != "blocked") {
        co_return error_json(400, fmt::format("unknown field '{}': a user has 'tier' and 'blocked'",
                                              std::string_view(field.key()).substr(0, 64)));
      }
    }
    std::optional<std::optional<std::string>> tier;
    std::optional<bool> blocked;
    if (auto* t = body->if_contains("tier")) {
      if (t->is_null())
        tier = std::optional<std::string>();
      else if (t->is_string() && !t->as_string().empty() && t->as_string().size() <= 64)
        tier = std::optional<std::string>(std::string(t->as_string()));
      else
        co_return error_json(400, "'tier' must be a string of 1-64 characters or null");
    }
    if (auto* b = body->if_contains("blocked")) {
      if (!b->is_bool()) co_return error_json(400, "'blocked' must be true or false");
      blocked = b->as_bool();
    }
    storage::Operation op = ledger::update_user(id, tier, blocked);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    o["id"] = id;
    co_return ok_json(200, o);
  }
  // POST /admin/v1/users/{user}/api-keys
  if (res == "users" && parts.size() == 5 && parts[4] == "api-keys") {
    if (m != "POST") co_return method_not_allowed();
    std::string user(parts[3]);
    if (Status s = check_id("user", user); !s.ok()) co_return from_status(s);
    storage::ApiKeyRow k;
    k.id = "key_" + random_hex(8);
    std::string secret = random_hex(32);
    k.user_id = user;
    k.secret_sha256 = sha256_hex(secret);
    k.created_at = now;
    storage::Operation op = ledger::create_api_key(k);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    o["id"] = k.id;
    o["key"] = "tg_" + k.id + "_" + secret;  // shown once; only the hash is stored
    o["user"] = user;
    co_return ok_json(201, o);
  }
  // GET /admin/v1/users/{user}/usage?month=YYYY-MM
  if (res == "users" && parts.size() == 5 && parts[4] == "usage") {
    if (m != "GET") co_return method_not_allowed();
    std::string user(parts[3]);
    if (Status s = check_id("user", user); !s.ok()) co_return from_status(s);
    auto month_text = query_param(req.query(), "month");
    std::optional<Month> month = month_text ? Month::parse(*month_text) : month_of(now);
    if (!month) co_return error_json(400, "'month' must be YYYY-MM");
    ledger::UsageView view;
    storage::Operation op = ledger::read_usage(config_, user, month->to_string(), view);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    o["user"] = user;
    o["month"] = month->to_string();
    o["free_allowance_microdollars"] = view.free_allowance.value();
    o["free_used_microdollars"] = view.free_used.value();
    json::array contexts;
    for (const auto& c : view.contexts) {
      json::object co;
      co["context"] = c.context;
      co["request_count"] = c.request_count;
      co["total_cost_microdollars"] = c.total_cost.value();
      co["total_free_microdollars"] = c.total_free.value();
      co["total_charged_microdollars"] = c.total_charged.value();
      contexts.push_back(std::move(co));
    }
    o["contexts"] = std::move(contexts);
    co_return ok_json(200, o);
  }
  // POST /admin/v1/organizations
  if (res == "organizations" && parts.size() == 3) {
    if (m != "POST") co_return method_not_allowed();
    auto body = body_object(req);
    if (!body.ok()) co_return from_status(body.status());
    auto id = opt_string(*body, "id");
    auto name = opt_string(*body, "name");
    if (!id.ok()) co_return from_status(id.status());
    if (!name.ok()) co_return from_status(name.status());
    storage::OrgRow org;
    org.id = id->value_or("o_" + random_hex(8));
    if (Status s = check_id("organization", org.id); !s.ok()) co_return from_status(s);
    org.name = name->value_or("");
    if (org.name.size() > 256) co_return error_json(400, "'name' must be at most 256 characters");
    org.created_at = now;
    storage::Operation op = ledger::create_org(org);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    o["id"] = org.id;
    co_return ok_json(201, o);
  }
  // PUT/DELETE /admin/v1/organizations/{org}/members/{user}
  if (res == "organizations" && parts.size() == 6 && parts[4] == "members") {
    std::string org(parts[3]), user(parts[5]);
    if (Status s = check_id("organization", org); !s.ok()) co_return from_status(s);
    if (Status s = check_id("user", user); !s.ok()) co_return from_status(s);
    if (m != "PUT" && m != "DELETE") co_return method_not_allowed();
    storage::Operation op = m == "PUT" ? ledger::add_member(org, user, now) : ledger::remove_member(org, user);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    Response r;
    r.status = 204;
    co_return r;
  }
  // DELETE /admin/v1/api-keys/{id}
  if (res == "api-keys" && parts.size() == 4) {
    if (m != "DELETE") co_return method_not_allowed();
    std::string id(parts[3]);
    if (Status s = check_id("api key", id); !s.ok()) co_return from_status(s);
    storage::Operation op = ledger::revoke_api_key(id, now);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    Response r;
    r.status = 204;
    co_return r;
  }
  // POST /admin/v1/grants
  if (res == "grants" && parts.size() == 3) {
    if (m != "POST") co_return method_not_allowed();
    auto body = body_object(req);
    if (!body.ok()) co_return from_status(body.status());
    auto fields = entry_fields(*body);
    if (!fields.ok()) co_return from_status(fields.status());
    ledger::GrantInput in;
    in.owner = fields->owner;
    in.amount_microdollars = fields->amount_microdollars;
    in.idempotency_key = fields->idempotency_key;
    auto eff = opt_time(*body, "effective_at");
    auto exp = opt_time(*body, "expires_at");
    if (!eff.ok()) co_return from_status(eff.status());
    if (!exp.ok()) co_return from_status(exp.status());
    in.effective_at = *eff;
    in.expires_at = *exp;
    if (in.expires_at && *in.expires_at <= in.effective_at.value_or(now)) {
      co_return error_json(400, "'expires_at' must be after 'effective_at'");
    }
    in.request_fingerprint = fmt::format("{}|{}|{}|{}", in.owner, in.amount_microdollars,
                                         in.effective_at ? std::to_string(in.effective_at->micros) : "-",
                                         in.expires_at ? std::to_string(in.expires_at->micros) : "-");
    in.now = now;
    ledger::GrantOutcome out;
    storage::Operation op = ledger::create_grant(in, out);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    co_return ok_json(out.replayed ? 200 : 201, grant_json(out.grant));
  }
  // POST /admin/v1/usage: usage metered elsewhere
  if (res == "usage" && parts.size() == 3) {
    if (m != "POST") co_return method_not_allowed();
    auto body = body_object(req);
    if (!body.ok()) co_return from_status(body.status());
    auto fields = entry_fields(*body);
    if (!fields.ok()) co_return from_status(fields.status());
    ledger::ExternalUsageInput in;
    in.owner = fields->owner;
    in.amount_microdollars = fields->amount_microdollars;
    in.idempotency_key = fields->idempotency_key;
    auto when = opt_time(*body, "at");
    if (!when.ok()) co_return from_status(when.status());
    in.at = when->value_or(now);
    if (in.at.micros > now.micros + 5 * 60 * 1'000'000LL) {
      co_return error_json(400, "'at' may be at most 5 minutes in the future");
    }
    in.request_fingerprint =
        fmt::format("{}|{}|{}", in.owner, in.amount_microdollars, *when ? std::to_string((*when)->micros) : "-");
    in.now = now;
    ledger::ExternalUsageOutcome out;
    storage::Operation op = ledger::record_external_usage(in, out);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    o["id"] = out.row.id;
    o["owner"] = out.row.owner;
    o["amount_microdollars"] = out.row.amount.value();
    o["at"] = format_rfc3339(out.row.at);
    o["idempotency_key"] = out.row.idempotency_key;
    o["balance_microdollars"] = out.balance.value();
    co_return ok_json(out.replayed ? 200 : 201, o);
  }
  // GET /admin/v1/accounts/{owner}
  if (res == "accounts" && parts.size() == 4) {
    if (m != "GET") co_return method_not_allowed();
    std::string owner(parts[3]);
    if (!Owner::parse(owner)) co_return error_json(400, "owner must be user:<id> or org:<id>");
    ledger::AccountView view;
    storage::Operation op = ledger::read_account(owner, now, view);
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    o["owner"] = owner;
    o["balance_microdollars"] = view.balance.value();
    o["held_microdollars"] = view.account.held.value();
    o["debt_microdollars"] = view.account.debt.value();
    json::array grants;
    for (const auto& g : view.grants) grants.push_back(grant_json(g));
    o["grants"] = std::move(grants);
    co_return ok_json(200, o);
  }
  // GET /admin/v1/usage-log
  if (res == "usage-log" && parts.size() == 3) {
    if (m != "GET") co_return method_not_allowed();
    storage::AuditFilter f;
    auto q = req.query();
    if (auto user = query_param(q, "user"); user && !user->empty()) {
      if (Status s = check_id("user", *user); !s.ok()) co_return from_status(s);
      f.user_id = *user;
    }
    if (auto org = query_param(q, "org"); org && !org->empty()) {
      if (Status s = check_id("organization", *org); !s.ok()) co_return from_status(s);
      f.context = "org:" + *org;
    }
    if (auto month = query_param(q, "month"); month && !month->empty()) {
      if (!Month::parse(*month)) co_return error_json(400, "'month' must be YYYY-MM");
      f.month = *month;
    }
    // Parsed with from_chars: no exceptions, out-of-range is just invalid.
    auto parse_int = [](std::string_view text, int64_t& out) {
      auto [ptr, err] = std::from_chars(text.data(), text.data() + text.size(), out);
      return err == std::errc() && ptr == text.data() + text.size();
    };
    if (auto limit = query_param(q, "limit"); limit && !limit->empty()) {
      int64_t v = 0;
      if (!parse_int(*limit, v) || v < 1 || v > 1000) {
        co_return error_json(400, "'limit' must be an integer from 1 to 1000");
      }
      f.limit = v;
    }
    if (auto after = query_param(q, "after"); after && !after->empty()) {
      auto sep = after->find('_');
      int64_t micros = 0;
      bool ok = sep != std::string::npos && sep > 0 && after->size() - sep - 1 <= 64 &&
                parse_int(std::string_view(*after).substr(0, sep), micros) && micros >= 0 &&
                valid_id(std::string_view(*after).substr(sep + 1));
      if (!ok) co_return error_json(400, "'after' must be a next_after cursor from a previous page");
      f.after = std::make_pair(Timestamp{micros}, after->substr(sep + 1));
    }
    std::vector<storage::AuditRow> rows;
    storage::Operation op = [f, &rows](storage::Transaction& tx) -> Status {
      TG_ASSIGN(rows, tx.list_audit(f));
      return Status::Ok();
    };
    Status s = co_await run(std::move(op));
    if (!s.ok()) co_return from_status(s);
    json::object o;
    json::array arr;
    for (const auto& r : rows) arr.push_back(audit_json(r));
    o["rows"] = std::move(arr);
    if (static_cast<int64_t>(rows.size()) == f.limit) {
      o["next_after"] = fmt::format("{}_{}", rows.back().arrived_at.micros, rows.back().request_id);
    } else {
      o["next_after"] = nullptr;
    }
    co_return ok_json(200, o);
  }
  // GET /admin/v1/self-check: the last run of the background self-check
  if (res == "self-check" && parts.size() == 3) {
    if (m != "GET") co_return method_not_allowed();
    co_return Response::json(200, self_check_.snapshot_json());
  }
  // POST /admin/v1/recompute {"owner"?, "fix"?}
  if (res == "recompute" && parts.size() == 3) {
    if (m != "POST") co_return method_not_allowed();
    auto body = body_object(req);
    if (!body.ok()) co_return from_status(body.status());
    auto owner = opt_string(*body, "owner");
    if (!owner.ok()) co_return from_status(owner.status());
    if (*owner && !Owner::parse(**owner)) co_return error_json(400, "'owner' must be user:<id> or org:<id>");
    bool fix = false;
    if (auto* f = body->if_contains("fix")) {
      if (!f->is_bool()) co_return error_json(400, "'fix' must be true or false");
      fix = f->as_bool();
    }
    ledger::RecomputeReport report;
    storage::Operation op = ledger::recompute(*owner, now, fix, report);
    // Checking reads a snapshot beside the writers; fixing writes.
    Status s;
    if (fix) {
      s = co_await run(std::move(op));
    } else {
      s = co_await storage::async_run_read(store_, std::move(op));
    }
    if (!s.ok()) co_return from_status(s);
    if (!*owner && !fix) {
      int64_t drift_total = 0;
      for (const auto& d : report.drift) drift_total += std::llabs(d.stored.value() - d.recomputed.value());
      metrics_.set("tollgate_ledger_drift_microdollars", "", drift_total);
    }
    co_return Response::json(200, ledger::recompute_report_json(report));
  }
  co_return error_json(404, fmt::format("no admin route for '{}'", req.path().substr(0, 200)));
}

}  // namespace tollgate::http
