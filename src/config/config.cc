#include "config/config.h"

#include <toml++/toml.h>

#include <cstdlib>
#include <set>
#include <fmt/format.h>

namespace tollgate {

Microdollars Config::allowance_for_tier(const std::optional<std::string>& tier) const {
  if (tier) {
    auto it = allowance_tiers_microdollars.find(*tier);
    if (it != allowance_tiers_microdollars.end()) return Microdollars(it->second);
  }
  return Microdollars(allowance_default_microdollars);
}

namespace {

const char* env(const char* name) {
  const char* v = std::getenv(name);
  return (v && *v) ? v : nullptr;
}

// Every key a reader looks at, so that unknown (misspelt) keys can be refused.
thread_local std::set<std::string>* g_known_keys = nullptr;
void note_key(const char* section, const char* key) {
  if (g_known_keys) g_known_keys->insert(std::string(section) + "." + key);
}

Status read_int(const toml::table& t, const char* section, const char* key, int64_t& out,
                int64_t min_value) {
  note_key(section, key);
  auto node = t[section][key];
  if (!node) return Status::Ok();
  auto v = node.value<int64_t>();
  if (!v || !node.is_integer()) {
    return InvalidArgument(fmt::format("config: [{}] {} must be an integer", section, key));
  }
  if (*v < min_value) {
    return InvalidArgument(fmt::format("config: [{}] {} must be at least {}", section, key, min_value));
  }
  out = *v;
  return Status::Ok();
}

Status read_string(const toml::table& t, const char* section, const char* key, std::string& out) {
  note_key(section, key);
  auto node = t[section][key];
  if (!node) return Status::Ok();
  auto v = node.value<std::string>();
  if (!v || !node.is_string()) {
    return InvalidArgument(fmt::format("config: [{}] {} must be a string", section, key));
  }
  out = *v;
  return Status::Ok();
}

Status apply_table(const toml::table& t, Config& c) {
  TG_TRY(read_string(t, "server", "listen", c.listen));
  TG_TRY(read_string(t, "server", "admin_listen", c.admin_listen));
  TG_TRY(read_int(t, "server", "connections_max", c.connections_max, 1));
  TG_TRY(read_string(t, "database", "url", c.database_url));
  std::string durability;
  TG_TRY(read_string(t, "database", "durability", durability));
  if (durability == "power") c.durability = Durability::kPower;
  else if (durability == "process" || durability.empty()) c.durability = Durability::kProcess;
  else return InvalidArgument("config: [database] durability must be \"process\" or \"power\"");
  TG_TRY(read_int(t, "database", "batch_max", c.store_batch_max, 1));
  TG_TRY(read_int(t, "database", "pool_size", c.store_pool_size, 1));
  TG_TRY(read_int(t, "database", "partition_months_ahead", c.partition_months_ahead, 0));
  TG_TRY(read_string(t, "upstream", "url", c.upstream_url));
  TG_TRY(read_int(t, "upstream", "timeout_ms", c.upstream_timeout_ms, 1));
  TG_TRY(read_int(t, "upstream", "response_bytes_max", c.upstream_response_bytes_max, 1024));
  TG_TRY(read_int(t, "allowance", "default_microdollars", c.allowance_default_microdollars, 0));
  if (auto tiers = t["allowance"]["tiers"].as_table()) {
    for (auto& [k, v] : *tiers) {
      std::string key(k.str());
      const std::string suffix = "_microdollars";
      if (key.size() <= suffix.size() || !key.ends_with(suffix) || !v.is_integer() ||
          *v.value<int64_t>() < 0) {
        return InvalidArgument(fmt::format(
            "config: [allowance.tiers] {} must be <tier>_microdollars = non-negative integer", key));
      }
      c.allowance_tiers_microdollars[key.substr(0, key.size() - suffix.size())] = *v.value<int64_t>();
    }
  }
  std::string policy;
  TG_TRY(read_string(t, "admission", "policy", policy));
  if (policy == "cover_estimate") c.admission_policy = AdmissionPolicy::kCoverEstimate;
  else if (policy == "any_remaining" || policy.empty()) c.admission_policy = AdmissionPolicy::kAnyRemaining;
  else return InvalidArgument("config: [admission] policy must be \"any_remaining\" or \"cover_estimate\"");
  TG_TRY(read_int(t, "holds", "timeout_ms", c.hold_timeout_ms, 1));
  std::string recovery;
  TG_TRY(read_string(t, "holds", "recovery", recovery));
  if (recovery == "release") c.hold_recovery = HoldRecovery::kRelease;
  else if (recovery == "charge_estimate" || recovery.empty()) c.hold_recovery = HoldRecovery::kChargeEstimate;
  else return InvalidArgument("config: [holds] recovery must be \"charge_estimate\" or \"release\"");
  std::string stream;
  TG_TRY(read_string(t, "proxy", "stream_policy", stream));
  if (stream == "strip") c.stream_policy = StreamPolicy::kStrip;
  else if (stream == "reject" || stream.empty()) c.stream_policy = StreamPolicy::kReject;
  else return InvalidArgument("config: [proxy] stream_policy must be \"reject\" or \"strip\"");
  TG_TRY(read_int(t, "proxy", "request_body_bytes_max", c.request_body_bytes_max, 1));
  TG_TRY(read_int(t, "proxy", "cost_microdollars_max", c.cost_microdollars_max, 0));
  TG_TRY(read_int(t, "ledger", "sweep_interval_ms", c.sweep_interval_ms, 10));
  TG_TRY(read_int(t, "ledger", "self_check_interval_ms", c.self_check_interval_ms, 10));
  TG_TRY(read_int(t, "ledger", "self_check_owners", c.self_check_owners, 1));
  TG_TRY(read_string(t, "auth", "jwt_secret", c.jwt.secret));
  TG_TRY(read_string(t, "auth", "jwt_user_claim", c.jwt.user_claim));
  auto& p = c.prices;
  TG_TRY(read_int(t, "prices", "search_microdollars", p.search_microdollars, 0));
  TG_TRY(read_int(t, "prices", "search_extra_result_microdollars", p.search_extra_result_microdollars, 0));
  TG_TRY(read_int(t, "prices", "summary_per_result_microdollars", p.summary_per_result_microdollars, 0));
  TG_TRY(read_int(t, "prices", "contents_per_page_per_type_microdollars",
                  p.contents_per_page_per_type_microdollars, 0));
  TG_TRY(read_int(t, "prices", "answer_microdollars", p.answer_microdollars, 0));
  TG_TRY(read_int(t, "prices", "deep_search_microdollars", p.deep_search_microdollars, 0));
  TG_TRY(read_int(t, "prices", "deep_reasoning_search_microdollars", p.deep_reasoning_search_microdollars, 0));
  TG_TRY(read_int(t, "prices", "context_microdollars", p.context_microdollars, 0));
  TG_TRY(read_int(t, "prices", "unknown_request_microdollars", p.unknown_request_microdollars, 0));
  return Status::Ok();
}

Status apply_file(const std::string& path, Config& c) {
  toml::table t;
  try {
    t = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    return InvalidArgument(fmt::format("config file {}: {} (line {})", path, e.description(),
                                       e.source().begin.line));
  }
  std::set<std::string> known;
  g_known_keys = &known;
  Status s = apply_table(t, c);
  g_known_keys = nullptr;
  TG_TRY(s);
  // A misspelt key would otherwise be ignored while the operator believes it applies.
  for (const auto& [section, node] : t) {
    const auto* table = node.as_table();
    if (!table) return InvalidArgument(fmt::format("config file {}: '{}' must be a [section]", path, section.str()));
    for (const auto& [key, value] : *table) {
      if (section.str() == "allowance" && key.str() == "tiers") continue;
      std::string name = std::string(section.str()) + "." + std::string(key.str());
      if (!known.count(name)) {
        return InvalidArgument(fmt::format("config file {}: unknown setting [{}] {}", path, section.str(), key.str()));
      }
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Config> load_config(const ConfigOverrides& o) {
  Config c;
  if (!o.config_file.empty()) {
    Status s = apply_file(o.config_file, c);
    if (!s.ok()) return s;
  }
  if (auto v = env("TOLLGATE_DATABASE_URL")) c.database_url = v;
  if (auto v = env("TOLLGATE_LISTEN")) c.listen = v;
  if (auto v = env("TOLLGATE_ADMIN_LISTEN")) c.admin_listen = v;
  if (auto v = env("TOLLGATE_UPSTREAM_URL")) c.upstream_url = v;
  if (auto v = env("TOLLGATE_ADMIN_TOKEN")) c.admin_token = v;
  if (auto v = env("EXA_API_KEY")) c.upstream_api_key = v;
  if (auto v = env("TOLLGATE_JWT_SECRET")) c.jwt.secret = v;
  if (!o.listen.empty()) c.listen = o.listen;
  if (!o.admin_listen.empty()) c.admin_listen = o.admin_listen;
  if (!o.database_url.empty()) c.database_url = o.database_url;
  if (!o.upstream_url.empty()) c.upstream_url = o.upstream_url;
  return c;
}

Status validate_config(const Config& c) {
  constexpr int64_t kDayMs = 86'400'000;
  if (c.upstream_timeout_ms > kDayMs || c.hold_timeout_ms > 7 * kDayMs) {
    return InvalidArgument("config: [upstream] timeout_ms must be at most a day and [holds] timeout_ms at most a week");
  }
  if (c.hold_timeout_ms <= c.upstream_timeout_ms) {
    return InvalidArgument(fmt::format(
        "config: [holds] timeout_ms ({}) must exceed [upstream] timeout_ms ({}), or holds of "
        "requests still waiting for the upstream would be recovered",
        c.hold_timeout_ms, c.upstream_timeout_ms));
  }
  if (c.cost_microdollars_max > kMaxAmount.value()) {
    return InvalidArgument("config: [proxy] cost_microdollars_max is too large");
  }
  if (c.store_pool_size > 64 || c.partition_months_ahead > 120) {
    return InvalidArgument("config: [database] pool_size must be at most 64 and partition_months_ahead at most 120");
  }
  return Status::Ok();
}

}  // namespace tollgate
