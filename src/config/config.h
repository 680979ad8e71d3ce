// Configuration: the TOML keys of SPEC section 7, with their defaults, and the
// precedence flags > environment > file > defaults. Loaded once at start-up;
// immutable afterwards (safe to share across threads).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/money.h"
#include "common/status.h"
#include "auth/jwt.h"
#include "exa/exa.h"

namespace tollgate {

enum class AdmissionPolicy { kAnyRemaining, kCoverEstimate };
enum class HoldRecovery { kChargeEstimate, kRelease };
enum class StreamPolicy { kReject, kStrip };
enum class Durability { kProcess, kPower };

struct Config {
  std::string listen = "127.0.0.1:8080";
  std::string admin_listen = "127.0.0.1:8081";
  std::string database_url = "sqlite:tollgate.db";
  Durability durability = Durability::kProcess;
  std::string upstream_url = "https://api.exa.ai";
  int64_t upstream_timeout_ms = 30000;
  int64_t upstream_response_bytes_max = 8 * 1024 * 1024;
  std::string upstream_api_key;  // EXA_API_KEY; never logged
  int64_t allowance_default_microdollars = 10'000'000;
  std::map<std::string, int64_t> allowance_tiers_microdollars;  // tier name -> µ$
  AdmissionPolicy admission_policy = AdmissionPolicy::kAnyRemaining;
  int64_t hold_timeout_ms = 120000;
  HoldRecovery hold_recovery = HoldRecovery::kChargeEstimate;
  StreamPolicy stream_policy = StreamPolicy::kReject;
  int64_t request_body_bytes_max = 1'048'576;
  int64_t cost_microdollars_max = 100'000'000;
  std::string admin_token;  // TOLLGATE_ADMIN_TOKEN; empty = admin API refuses all calls
  exa::PriceTable prices;
  auth::JwtConfig jwt;  // [auth] jwt_secret (or TOLLGATE_JWT_SECRET), jwt_user_claim
  // Background ledger work in the server.
  int64_t sweep_interval_ms = 10'000;        // grants taking effect / expiring for owners nobody touches
  int64_t self_check_interval_ms = 60'000;   // recompute a sample of owners, export the drift
  int64_t self_check_owners = 20;            // owners per self-check run
  // Limits that are not in SPEC's table but exist so nothing is unbounded.
  int64_t connections_max = 10000;
  int64_t store_batch_max = 256;  // operations per group-commit transaction
  int64_t store_pool_size = 4;    // PostgreSQL connections (each with a worker thread)
  int64_t partition_months_ahead = 3;  // PostgreSQL audit-log partitions made ahead of the current month

  Microdollars allowance_for_tier(const std::optional<std::string>& tier) const;
};

// Command-line values that override everything else (empty = not given).
struct ConfigOverrides {
  std::string config_file;
  std::string listen;
  std::string admin_listen;
  std::string database_url;
  std::string upstream_url;
};

// Builds the effective config. `env` is consulted for TOLLGATE_* and
// EXA_API_KEY. Errors name the offending key.
Result<Config> load_config(const ConfigOverrides& overrides);

// Checks cross-field rules (hold timeout > upstream timeout, positive limits).
Status validate_config(const Config& config);

}  // namespace tollgate
