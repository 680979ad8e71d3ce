#include "common/ids.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include <array>
#include <cassert>
#include <cstdio>

namespace tollgate {

bool valid_id(std::string_view id) {
  if (id.empty() || id.size() > 128) return false;
  for (char c : id) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == ':' || c == '@' || c == '-';
    if (!ok) return false;
  }
  return true;
}

std::optional<Owner> Owner::parse(std::string_view text) {
  if (text.starts_with("user:") && valid_id(text.substr(5))) {
    return Owner{Kind::kUser, std::string(text.substr(5))};
  }
  if (text.starts_with("org:") && valid_id(text.substr(4))) {
    return Owner{Kind::kOrg, std::string(text.substr(4))};
  }
  return std::nullopt;
}

namespace {
constexpr char kHex[] = "0123456789abcdef";

void fill_random(unsigned char* buf, size_t n) {
  int rc = RAND_bytes(buf, static_cast<int>(n));
  assert(rc == 1);
  (void)rc;
}

std::string to_hex(const unsigned char* p, size_t n) {
  std::string out;
  out.reserve(n * 2);
  for (size_t i = 0; i < n; ++i) {
    out.push_back(kHex[p[i] >> 4]);
    out.push_back(kHex[p[i] & 15]);
  }
  return out;
}
}  // namespace

std::string new_request_id(Timestamp now) {
  std::array<unsigned char, 16> b{};
  fill_random(b.data(), b.size());
  uint64_t ms = static_cast<uint64_t>(now.micros / 1000);
  for (int i = 0; i < 6; ++i) b[i] = static_cast<unsigned char>(ms >> (40 - 8 * i));
  b[6] = static_cast<unsigned char>(0x70 | (b[6] & 0x0F));
  b[8] = static_cast<unsigned char>(0x80 | (b[8] & 0x3F));
  std::string h = to_hex(b.data(), b.size());
  return h.substr(0, 8) + "-" + h.substr(8, 4) + "-" + h.substr(12, 4) + "-" + h.substr(16, 4) +
         "-" + h.substr(20);
}

std::string random_hex(size_t n_bytes) {
  std::string raw(n_bytes, '\0');
  fill_random(reinterpret_cast<unsigned char*>(raw.data()), n_bytes);
  return to_hex(reinterpret_cast<const unsigned char*>(raw.data()), n_bytes);
}

std::string sha256_hex(std::string_view data) {
  unsigned char md[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(data.data()), data.size(), md);
  return to_hex(md, sizeof md);
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<ParsedApiKey> parse_api_key(std::string_view token) {
  // tg_<key id>_<64 hex secret>, key ids being key_<16 hex>
  if (token.size() > 256 || !token.starts_with("tg_")) return std::nullopt;
  auto rest = token.substr(3);
  auto sep = rest.rfind('_');  // key ids may hold '_'; the hex secret never does
  if (sep == std::string_view::npos || sep == 0 || sep + 1 >= rest.size()) return std::nullopt;
  auto id = rest.substr(0, sep);
  if (!valid_id(id)) return std::nullopt;
  return ParsedApiKey{std::string(id), std::string(rest.substr(sep + 1))};
}

}  // namespace tollgate
