// Identifiers: validation of user/org/key ids, owners ("user:ID" / "org:ID"),
// request ids (UUIDv7 text), API key material and its hash.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "common/time.h"

namespace tollgate {

// 1–128 characters of A-Z a-z 0-9 . _ : @ -
bool valid_id(std::string_view id);

struct Owner {
  enum class Kind { kUser, kOrg };
  Kind kind = Kind::kUser;
  std::string id;
  std::string to_string() const { return (kind == Kind::kUser ? "user:" : "org:") + id; }
  static std::optional<Owner> parse(std::string_view text);
  static Owner user(std::string id) { return Owner{Kind::kUser, std::move(id)}; }
  static Owner org(std::string id) { return Owner{Kind::kOrg, std::move(id)}; }
  bool operator==(const Owner&) const = default;
};

// The context written in reports: "personal" or "org:<id>".
inline std::string context_name(const std::optional<std::string>& org_id) {
  return org_id ? "org:" + *org_id : std::string("personal");
}

// UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Thread-safe.
std::string new_request_id(Timestamp now);

// Random lowercase hex of n bytes (2n characters), from the OS CSPRNG.
std::string random_hex(size_t n_bytes);

// Hex SHA-256 of the input.
std::string sha256_hex(std::string_view data);

// Constant-time equality for secrets of equal length.
bool constant_time_equal(std::string_view a, std::string_view b);

// API keys are "tg_<key id>_<secret>"; only the key id and SHA-256(secret) are
// stored. Parsing never looks at the secret beyond splitting it off.
struct ParsedApiKey {
  std::string key_id;
  std::string secret;
};
std::optional<ParsedApiKey> parse_api_key(std::string_view token);

}  // namespace tollgate
