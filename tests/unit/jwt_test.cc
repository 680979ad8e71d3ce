// HS256 JWT verification: signature, algorithm, expiry, user claim.
#include <gtest/gtest.h>

#include "auth/jwt.h"

namespace tollgate::auth {
namespace {

const Timestamp kNow{1'750'000'000LL * 1'000'000};  // 2025-06-15T15:06:40Z

TEST(Jwt, AcceptsAValidTokenAndReadsTheConfiguredClaim) {
  JwtConfig c{"s3cret", "sub"};
  auto t = sign_hs256(R"({"sub":"u1","exp":1750000001})", "s3cret");
  auto r = verify_hs256(t, c, kNow);
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r.value(), "u1");
  c.user_claim = "kiloUserId";
  auto t2 = sign_hs256(R"({"sub":"x","kiloUserId":"user-42","exp":1750000001})", "s3cret");
  EXPECT_EQ(verify_hs256(t2, c, kNow).value(), "user-42");
}

TEST(Jwt, RefusesBadSignaturesExpiryAlgorithmsAndClaims) {
  JwtConfig c{"s3cret", "sub"};
  EXPECT_FALSE(verify_hs256(sign_hs256(R"({"sub":"u1","exp":1750000001})", "other"), c, kNow).ok());
  EXPECT_FALSE(verify_hs256(sign_hs256(R"({"sub":"u1","exp":1750000000})", "s3cret"), c, kNow).ok());  // exp is exclusive
  EXPECT_FALSE(verify_hs256(sign_hs256(R"({"sub":"u1"})", "s3cret"), c, kNow).ok());
  EXPECT_FALSE(verify_hs256(sign_hs256(R"({"sub":"u1","exp":1.75e9})", "s3cret"), c, kNow).ok());
  EXPECT_FALSE(verify_hs256(sign_hs256(R"({"sub":"bad id!","exp":1750000001})", "s3cret"), c, kNow).ok());
  EXPECT_FALSE(verify_hs256(sign_hs256(R"({"sub":7,"exp":1750000001})", "s3cret"), c, kNow).ok());
  EXPECT_FALSE(verify_hs256("a.b", c, kNow).ok());
  EXPECT_FALSE(verify_hs256("a.b.c.d", c, kNow).ok());
  EXPECT_FALSE(verify_hs256("!!.??.**", c, kNow).ok());
  // With JWTs switched off, even a valid token is refused.
  auto t = sign_hs256(R"({"sub":"u1","exp":1750000001})", "s3cret");
  EXPECT_TRUE(verify_hs256(t, c, kNow).ok());
  JwtConfig off{"", "sub"};
  EXPECT_FALSE(verify_hs256(t, off, kNow).ok());
  // Tampering with the payload breaks the signature.
  auto dot = t.find('.');
  std::string tampered = t;
  tampered[dot + 2] = tampered[dot + 2] == 'A' ? 'B' : 'A';
  EXPECT_FALSE(verify_hs256(tampered, c, kNow).ok());
}

}  // namespace
}  // namespace tollgate::auth
