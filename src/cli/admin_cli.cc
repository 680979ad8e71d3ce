#include "cli/admin_cli.h"

#include <boost/json.hpp>

#include <cstdlib>
#include <fmt/format.h>
#include <memory>

#include "http/client.h"

namespace tollgate::cli {

namespace json = boost::json;

namespace {

struct AdminCall {
  std::string method;
  std::string path;
  json::object body;
  bool has_body = false;
};

int send(const std::string& admin_url, const AdminCall& call) {
  const char* token = std::getenv("TOLLGATE_ADMIN_TOKEN");
  std::vector<http::Header> headers{{"content-type", "application/json"}};
  if (token && *token) headers.push_back({"authorization", std::string("Bearer ") + token});
  std::string url = admin_url;
  while (!url.empty() && url.back() == '/') url.pop_back();
  auto r = http::blocking_request(url + call.path, call.method, headers,
                                  call.has_body ? json::serialize(call.body) : std::string(), 30000);
  if (!r.ok()) {
    fmt::print(stderr, "error: {}\n", r.status().message());
    return 2;
  }
  bool ok = r->status >= 200 && r->status < 300;
  if (!r->body.empty()) fmt::print(ok ? stdout : stderr, "{}\n", r->body);
  if (!ok) fmt::print(stderr, "error: the admin API answered {}\n", r->status);
  return ok ? 0 : 1;
}

std::string encode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':' || c == '@') {
      out.push_back(static_cast<char>(c));
    } else {
      out += fmt::format("%{:02X}", c);
    }
  }
  return out;
}

}  // namespace

std::function<int()> add_admin_commands(CLI::App& admin) {
  auto url = std::make_shared<std::string>("http://127.0.0.1:8081");
  if (const char* env = std::getenv("TOLLGATE_ADMIN_URL"); env && *env) *url = env;
  admin.add_option("--admin-url", *url, "admin API base URL (env TOLLGATE_ADMIN_URL)");
  admin.require_subcommand(1);
  auto call = std::make_shared<AdminCall>();
  auto s = std::make_shared<std::map<std::string, std::string>>();  // option values by name
  auto opt = [s](CLI::App* app, const std::string& flag, const std::string& key, const std::string& help,
                 bool required = false) {
    auto* o = app->add_option(flag, (*s)[key], help);
    if (required) o->required();
  };
  auto has = [s](const std::string& k) { return s->count(k) && !(*s)[k].empty(); };

  auto* users = admin.add_subcommand("users", "create or update users")->require_subcommand(1);
  auto* uc = users->add_subcommand("create", "POST /admin/v1/users");
  opt(uc, "--id", "id", "user id (generated if absent)");
  opt(uc, "--tier", "tier", "allowance tier");
  uc->callback([=] {
    *call = {"POST", "/admin/v1/users", {}, true};
    if (has("id")) call->body["id"] = (*s)["id"];
    if (has("tier")) call->body["tier"] = (*s)["tier"];
  });
  auto* uu = users->add_subcommand("update", "PATCH /admin/v1/users/{id}");
  opt(uu, "id", "uid", "user id", true);
  opt(uu, "--tier", "tier", "new tier ('none' clears it)");
  opt(uu, "--blocked", "blocked", "true or false");
  uu->callback([=] {
    *call = {"PATCH", "/admin/v1/users/" + encode((*s)["uid"]), {}, true};
    if (has("tier")) {
      if ((*s)["tier"] == "none") call->body["tier"] = nullptr;
      else call->body["tier"] = (*s)["tier"];
    }
    if (has("blocked")) call->body["blocked"] = (*s)["blocked"] == "true";
  });

  auto* orgs = admin.add_subcommand("orgs", "organizations and members")->require_subcommand(1);
  auto* oc = orgs->add_subcommand("create", "POST /admin/v1/organizations");
  opt(oc, "--id", "id", "organization id (generated if absent)");
  opt(oc, "--name", "name", "display name");
  oc->callback([=] {
    *call = {"POST", "/admin/v1/organizations", {}, true};
    if (has("id")) call->body["id"] = (*s)["id"];
    if (has("name")) call->body["name"] = (*s)["name"];
  });
  auto* ma = orgs->add_subcommand("add-member", "PUT /admin/v1/organizations/{org}/members/{user}");
  opt(ma, "org", "org", "organization id", true);
  opt(ma, "user", "user", "user id", true);
  ma->callback([=] { *call = {"PUT", "/admin/v1/organizations/" + encode((*s)["org"]) + "/members/" + encode((*s)["user"]), {}, false}; });
  auto* mr = orgs->add_subcommand("remove-member", "DELETE /admin/v1/organizations/{org}/members/{user}");
  opt(mr, "org", "org", "organization id", true);
  opt(mr, "user", "user", "user id", true);
  mr->callback([=] { *call = {"DELETE", "/admin/v1/organizations/" + encode((*s)["org"]) + "/members/" + encode((*s)["user"]), {}, false}; });

  auto* keys = admin.add_subcommand("keys", "API keys")->require_subcommand(1);
  auto* kc = keys->add_subcommand("create", "POST /admin/v1/users/{user}/api-keys (the key is shown once)");
  opt(kc, "user", "user", "user id", true);
  kc->callback([=] { *call = {"POST", "/admin/v1/users/" + encode((*s)["user"]) + "/api-keys", {}, false}; });
  auto* kr = keys->add_subcommand("revoke", "DELETE /admin/v1/api-keys/{id}");
  opt(kr, "id", "kid", "key id", true);
  kr->callback([=] { *call = {"DELETE", "/admin/v1/api-keys/" + encode((*s)["kid"]), {}, false}; });

  auto* grants = admin.add_subcommand("grants", "credit grants")->require_subcommand(1);
  auto* gc = grants->add_subcommand("create", "POST /admin/v1/grants");
  opt(gc, "--owner", "owner", "user:ID or org:ID", true);
  opt(gc, "--amount-microdollars", "amount", "amount in µ$", true);
  opt(gc, "--idempotency-key", "key", "unique key; a retry with the same body returns the original", true);
  opt(gc, "--effective-at", "eff", "RFC 3339 time (default now)");
  opt(gc, "--expires-at", "exp", "RFC 3339 time (default never)");
  gc->callback([=] {
    *call = {"POST", "/admin/v1/grants", {}, true};
    call->body["owner"] = (*s)["owner"];
    // The number text goes as sent, so the server's range check applies.
    json::error_code ec;
    json::value amount = json::parse((*s)["amount"], ec);
    if (ec || !amount.is_number()) amount = json::string((*s)["amount"]);
    call->body["amount_microdollars"] = amount;
    call->body["idempotency_key"] = (*s)["key"];
    if (has("eff")) call->body["effective_at"] = (*s)["eff"];
    if (has("exp")) call->body["expires_at"] = (*s)["exp"];
  });

  auto* ext = admin.add_subcommand("record-usage", "POST /admin/v1/usage: usage metered elsewhere, debited from an owner");
  opt(ext, "--owner", "xowner", "user:ID or org:ID", true);
  opt(ext, "--amount-microdollars", "xamount", "amount in µ$", true);
  opt(ext, "--idempotency-key", "xkey", "unique key; a retry with the same body returns the original", true);
  opt(ext, "--at", "xat", "RFC 3339 time of the usage (default now)");
  ext->callback([=] {
    *call = {"POST", "/admin/v1/usage", {}, true};
    call->body["owner"] = (*s)["xowner"];
    json::error_code ec;
    json::value amount = json::parse((*s)["xamount"], ec);
    if (ec || !amount.is_number()) amount = json::string((*s)["xamount"]);
    call->body["amount_microdollars"] = amount;
    call->body["idempotency_key"] = (*s)["xkey"];
    if (has("xat")) call->body["at"] = (*s)["xat"];
  });

  auto* rc = admin.add_subcommand("recompute", "POST /admin/v1/recompute: check (or --fix) the books against the records");
  opt(rc, "--owner", "rowner", "only this owner: user:ID or org:ID");
  auto fix = std::make_shared<bool>(false);
  rc->add_flag("--fix", *fix, "write each drift as an adjustment entry and correct the stored figure");
  rc->callback([=] {
    *call = {"POST", "/admin/v1/recompute", {}, true};
    if (has("rowner")) call->body["owner"] = (*s)["rowner"];
    if (*fix) call->body["fix"] = true;
  });

  auto* sc = admin.add_subcommand("self-check", "GET /admin/v1/self-check: the server's last self-check");
  sc->callback([=] { *call = {"GET", "/admin/v1/self-check", {}, false}; });

  auto* acct = admin.add_subcommand("account", "GET /admin/v1/accounts/{owner}");
  opt(acct, "owner", "owner", "user:ID or org:ID", true);
  acct->callback([=] { *call = {"GET", "/admin/v1/accounts/" + encode((*s)["owner"]), {}, false}; });

  auto* usage = admin.add_subcommand("usage", "GET /admin/v1/users/{user}/usage");
  opt(usage, "user", "user", "user id", true);
  opt(usage, "--month", "month", "YYYY-MM (default: this month)");
  usage->callback([=] {
    std::string p = "/admin/v1/users/" + encode((*s)["user"]) + "/usage";
    if (has("month")) p += "?month=" + encode((*s)["month"]);
    *call = {"GET", p, {}, false};
  });

  auto* log = admin.add_subcommand("usage-log", "GET /admin/v1/usage-log");
  opt(log, "--user", "luser", "user id");
  opt(log, "--org", "lorg", "organization id");
  opt(log, "--month", "lmonth", "YYYY-MM");
  opt(log, "--limit", "llimit", "rows per page (1-1000)");
  opt(log, "--after", "lafter", "cursor from next_after");
  log->callback([=] {
    std::string q;
    for (auto [k, name] : {std::pair{"luser", "user"}, {"lorg", "org"}, {"lmonth", "month"}, {"llimit", "limit"},
                           {"lafter", "after"}}) {
      if (has(k)) q += (q.empty() ? "?" : "&") + std::string(name) + "=" + encode((*s)[k]);
    }
    *call = {"GET", "/admin/v1/usage-log" + q, {}, false};
  });

  return [url, call] { return send(*url, *call); };
}

}  // namespace tollgate::cli
