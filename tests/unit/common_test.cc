// Money formatting, UTC months and RFC 3339 text.
#include <gtest/gtest.h>

#include "common/ids.h"
#include "common/money.h"
#include "common/time.h"

namespace tollgate {
namespace {

TEST(Money, DollarsRoundToNearestCentTiesUp) {
  EXPECT_EQ(format_dollars_cents(Microdollars(10'000'000)), "$10.00");
  EXPECT_EQ(format_dollars_cents(Microdollars(0)), "$0.00");
  EXPECT_EQ(format_dollars_cents(Microdollars(4'999)), "$0.00");
  EXPECT_EQ(format_dollars_cents(Microdollars(5'000)), "$0.01");
  EXPECT_EQ(format_dollars_cents(Microdollars(9'995'000)), "$10.00");
  EXPECT_EQ(format_dollars_cents(Microdollars(9'994'999)), "$9.99");
  EXPECT_EQ(format_dollars_cents(Microdollars(-200'000)), "-$0.20");
  EXPECT_EQ(format_dollars_cents(Microdollars(-5'000)), "$0.00");  // tie rounds up, toward zero
  EXPECT_EQ(format_dollars_cents(Microdollars(-5'001)), "-$0.01");
}

TEST(Money, CheckedArithmeticReportsOverflow) {
  auto max = Microdollars(INT64_MAX);
  EXPECT_FALSE(Microdollars::checked_add(max, Microdollars(1)).has_value());
  EXPECT_FALSE(Microdollars::checked_sub(Microdollars(INT64_MIN), Microdollars(1)).has_value());
  EXPECT_EQ(Microdollars::checked_add(Microdollars(2), Microdollars(3))->value(), 5);
}

Timestamp at(const char* text) {
  auto t = parse_rfc3339(text);
  EXPECT_TRUE(t.has_value()) << text;
  return t.value_or(Timestamp{});
}

TEST(Time, MonthIsTheUtcCalendarMonth) {
  EXPECT_EQ(month_of(at("2025-03-31T23:59:59.999999Z")).to_string(), "2025-03");
  EXPECT_EQ(month_of(at("2025-04-01T00:00:00Z")).to_string(), "2025-04");
  // An offset is converted to UTC before the month is taken.
  EXPECT_EQ(month_of(at("2025-04-01T00:30:00+09:00")).to_string(), "2025-03");
  EXPECT_EQ(month_of(at("2025-03-31T17:00:00-07:00")).to_string(), "2025-04");
  EXPECT_EQ(month_of(at("2024-12-31T23:59:59Z")).to_string(), "2024-12");
  EXPECT_EQ(month_of(at("2025-01-01T00:00:00Z")).to_string(), "2025-01");
  EXPECT_EQ(month_of(Timestamp{-1}).to_string(), "1969-12");
}

TEST(Time, MonthBoundaries) {
  auto m = Month::parse("2025-02");
  ASSERT_TRUE(m);
  EXPECT_EQ(format_rfc3339(m->start()), "2025-02-01T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(m->next().start()), "2025-03-01T00:00:00.000Z");
  EXPECT_EQ(Month::parse("2025-12")->next().to_string(), "2026-01");
  EXPECT_FALSE(Month::parse("2025-13"));
  EXPECT_FALSE(Month::parse("2025-1"));
  EXPECT_FALSE(Month::parse("25-01-01"));
}

TEST(Time, Rfc3339RoundTripsWithMilliseconds) {
  EXPECT_EQ(format_rfc3339(at("2025-10-15T00:00:00Z")), "2025-10-15T00:00:00.000Z");
  EXPECT_EQ(format_rfc3339(at("2025-09-09T23:59:59.999Z")), "2025-09-09T23:59:59.999Z");
  EXPECT_EQ(at("2025-09-09T23:59:59.999999Z").micros + 1, at("2025-09-10T00:00:00Z").micros);
  EXPECT_EQ(format_rfc3339(at("2025-10-15T02:00:00+02:00")), "2025-10-15T00:00:00.000Z");
  for (const char* bad : {"2025-10-15", "2025-10-15T00:00:00", "2025-02-30T00:00:00Z", "2025-10-15T24:00:00Z",
                          "2025-10-15T00:00:00.Z", "2025-10-15T00:00:00Zjunk", "", "2025-10-15T00:00:00+9:00"}) {
    EXPECT_FALSE(parse_rfc3339(bad).has_value()) << bad;
  }
}

TEST(Ids, ValidIdsAndOwners) {
  EXPECT_TRUE(valid_id("u1"));
  EXPECT_TRUE(valid_id("a.b_c:d@e-f"));
  EXPECT_TRUE(valid_id(std::string(128, 'x')));
  EXPECT_FALSE(valid_id(std::string(129, 'x')));
  EXPECT_FALSE(valid_id(""));
  EXPECT_FALSE(valid_id("a b"));
  EXPECT_FALSE(valid_id("a/b"));
  EXPECT_EQ(Owner::parse("user:u1")->to_string(), "user:u1");
  EXPECT_EQ(Owner::parse("org:o1")->kind, Owner::Kind::kOrg);
  EXPECT_FALSE(Owner::parse("team:x"));
  EXPECT_FALSE(Owner::parse("user:"));
}

TEST(Ids, RequestIdsAreUuidV7) {
  auto id = new_request_id(at("2025-03-01T08:00:00Z"));
  ASSERT_EQ(id.size(), 36u);
  EXPECT_EQ(id[14], '7');
  EXPECT_NE(id, new_request_id(at("2025-03-01T08:00:00Z")));
  // Ids sort by time.
  EXPECT_LT(new_request_id(at("2025-03-01T08:00:00Z")), new_request_id(at("2025-03-01T08:00:01Z")));
}

TEST(Ids, ApiKeysSplitIntoIdAndSecret) {
  auto k = parse_api_key("tg_key_0123abcd_deadbeef");
  ASSERT_TRUE(k);
  EXPECT_EQ(k->key_id, "key_0123abcd");
  EXPECT_EQ(k->secret, "deadbeef");
  EXPECT_FALSE(parse_api_key("key_0123abcd_deadbeef"));
  EXPECT_FALSE(parse_api_key("tg_"));
  EXPECT_FALSE(parse_api_key("tg_abc_"));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "ab"));
}

}  // namespace
}  // namespace tollgate

namespace tollgate {
namespace {

TEST(Time, OnlyInstantsWithFourDigitYearsAfter1970) {
  EXPECT_FALSE(parse_rfc3339("9999-12-31T23:59:59.999999-23:59").has_value());
  EXPECT_FALSE(parse_rfc3339("1969-12-31T23:59:59Z").has_value());
  EXPECT_TRUE(parse_rfc3339("9999-12-31T23:59:59Z").has_value());
}

}  // namespace
}  // namespace tollgate
