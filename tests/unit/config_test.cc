// Configuration files: defaults, precedence, and refusals with a message that
// names the offending key.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "common/ids.h"
#include "config/config.h"

namespace tollgate {
namespace {

std::string write_config(const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / ("tollgate-config-" + random_hex(6) + ".toml");
  std::ofstream(path) << text;
  return path.string();
}

TEST(Config, DefaultsAreTheSpecs) {
  auto c = load_config({});
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->listen, "127.0.0.1:8080");
  EXPECT_EQ(c->admin_listen, "127.0.0.1:8081");
  EXPECT_EQ(c->allowance_default_microdollars, 10'000'000);
  EXPECT_EQ(c->hold_timeout_ms, 120'000);
  EXPECT_EQ(c->upstream_timeout_ms, 30'000);
  EXPECT_EQ(c->prices.search_microdollars, 7000);
  EXPECT_TRUE(validate_config(*c).ok());
}

TEST(Config, FileValuesAndTiersAndFlagsOverride) {
  auto path = write_config(
      "[allowance]\ndefault_microdollars = 5000000\n[allowance.tiers]\npro_microdollars = 50000000\n"
      "[admission]\npolicy = \"cover_estimate\"\n[server]\nlisten = \"127.0.0.1:9000\"\n");
  ConfigOverrides o;
  o.config_file = path;
  o.listen = "127.0.0.1:9100";
  auto c = load_config(o);
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->allowance_for_tier(std::nullopt).value(), 5'000'000);
  EXPECT_EQ(c->allowance_for_tier(std::string("pro")).value(), 50'000'000);
  EXPECT_EQ(c->allowance_for_tier(std::string("unknown")).value(), 5'000'000);
  EXPECT_EQ(c->admission_policy, AdmissionPolicy::kCoverEstimate);
  EXPECT_EQ(c->listen, "127.0.0.1:9100");  // the flag wins over the file
  std::filesystem::remove(path);
}

TEST(Config, UnknownOrMistypedSettingsAreRefusedByName) {
  for (auto [text, fragment] : std::vector<std::pair<std::string, std::string>>{
           {"[upstrem]\ntimeout_ms = 5\n", "[upstrem] timeout_ms"},
           {"[holds]\ntimeout = 5\n", "[holds] timeout"},
           {"[holds]\ntimeout_ms = \"5\"\n", "[holds] timeout_ms"},
           {"[admission]\npolicy = \"sometimes\"\n", "[admission] policy"},
           {"[allowance.tiers]\npro = 5\n", "pro"},
           {"[allowance]\ndefault_microdollars = -1\n", "default_microdollars"},
           {"listen = \"x\"\n", "listen"},
           {"[server\n", "line"},
       }) {
    auto path = write_config(text);
    ConfigOverrides o;
    o.config_file = path;
    auto c = load_config(o);
    ASSERT_FALSE(c.ok()) << text;
    EXPECT_NE(c.status().message().find(fragment), std::string::npos) << c.status().message();
    std::filesystem::remove(path);
  }
}

TEST(Config, HoldTimeoutMustExceedUpstreamTimeout) {
  Config c;
  c.upstream_timeout_ms = 5000;
  c.hold_timeout_ms = 5000;
  auto s = validate_config(c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("[holds] timeout_ms"), std::string::npos);
}

}  // namespace
}  // namespace tollgate
