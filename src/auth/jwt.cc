#include "auth/jwt.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <boost/json.hpp>

#include "common/ids.h"

namespace tollgate::auth {

namespace {

constexpr size_t kTokenBytesMax = 8192;

std::optional<std::string> base64url_decode(std::string_view in) {
  std::string s(in);
  for (char& c : s) {
    if (c == '-') c = '+';
    else if (c == '_') c = '/';
    else if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '/')) return std::nullopt;
  }
  while (s.size() % 4) s.push_back('=');
  std::string out(s.size() / 4 * 3, '\0');
  int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(s.data()),
                          static_cast<int>(s.size()));
  if (n < 0) return std::nullopt;
  size_t pad = 0;
  for (size_t i = s.size(); i > 0 && s[i - 1] == '='; --i) ++pad;
  out.resize(static_cast<size_t>(n) - pad);
  return out;
}

std::string base64url_encode(std::string_view in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), reinterpret_cast<const unsigned char*>(in.data()),
                          static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  while (!out.empty() && out.back() == '=') out.pop_back();
  for (char& c : out) {
    if (c == '+') c = '-';
    else if (c == '/') c = '_';
  }
  return out;
}

std::string hmac_sha256(std::string_view key, std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()), reinterpret_cast<const unsigned char*>(data.data()),
       data.size(), md, &len);
  return std::string(reinterpret_cast<const char*>(md), len);
}

}  // namespace

Result<std::string> verify_hs256(std::string_view token, const JwtConfig& config, Timestamp now) {
  if (config.secret.empty()) return InvalidArgument("JWTs are not accepted");
  if (token.size() > kTokenBytesMax) return InvalidArgument("token too long");
  auto dot1 = token.find('.');
  auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return InvalidArgument("not a JWT");
  }
  auto header = base64url_decode(token.substr(0, dot1));
  auto payload = base64url_decode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  auto signature = base64url_decode(token.substr(dot2 + 1));
  if (!header || !payload || !signature) return InvalidArgument("JWT is not base64url");
  // The signature is checked before anything in the token is believed.
  std::string expected = hmac_sha256(config.secret, token.substr(0, dot2));
  if (!constant_time_equal(expected, *signature)) return InvalidArgument("JWT signature does not match");
  boost::json::error_code ec;
  auto h = boost::json::parse(*header, ec);
  if (ec || !h.is_object()) return InvalidArgument("JWT header is not a JSON object");
  auto* alg = h.as_object().if_contains("alg");
  if (!alg || !alg->is_string() || alg->as_string() != "HS256") return InvalidArgument("JWT alg must be HS256");
  auto p = boost::json::parse(*payload, ec);
  if (ec || !p.is_object()) return InvalidArgument("JWT payload is not a JSON object");
  auto& claims = p.as_object();
  auto* exp = claims.if_contains("exp");
  if (!exp || !exp->is_number()) return InvalidArgument("JWT has no exp");
  // exp is seconds since the epoch; compare in whole seconds, no floating point.
  int64_t exp_s = exp->is_int64() ? exp->as_int64() : exp->is_uint64() ? INT64_MAX : -1;
  if (exp->is_double()) return InvalidArgument("JWT exp must be an integer");
  if (now.micros / 1'000'000 >= exp_s) return InvalidArgument("JWT has expired");
  auto* user = claims.if_contains(config.user_claim);
  if (!user || !user->is_string() || !valid_id(user->as_string())) {
    return InvalidArgument("JWT claim '" + config.user_claim + "' must be a user id");
  }
  return std::string(user->as_string());
}

std::string sign_hs256(std::string_view payload_json, std::string_view secret) {
  std::string head = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." + base64url_encode(payload_json);
  return head + "." + base64url_encode(hmac_sha256(secret, head));
}

}  // namespace tollgate::auth
