// HS256 JSON Web Tokens, as an alternative credential to tollgate API keys:
// the signature is checked in constant time with a shared secret, `exp` is
// enforced, and the user id comes from a configured claim. Pure function.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/status.h"
#include "common/time.h"

namespace tollgate::auth {

struct JwtConfig {
  std::string secret;             // empty: JWTs are not accepted
  std::string user_claim = "sub";
};

// The user id a valid token names, or an error saying why it is not valid.
Result<std::string> verify_hs256(std::string_view token, const JwtConfig& config, Timestamp now);

// For tests and tools: a signed token over this JSON payload.
std::string sign_hs256(std::string_view payload_json, std::string_view secret);

}  // namespace tollgate::auth
