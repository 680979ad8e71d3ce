// Tests of the Exa module: metered paths, the request estimate, exact decimal
// parsing of costs and reading costDollars.total from response bodies.
#include "exa/exa.h"

#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <limits>
#include <string>

namespace tollgate::exa {
namespace {

namespace json = boost::json;

// ---------------------------------------------------------------------------
// parse_decimal_microdollars
// ---------------------------------------------------------------------------

std::optional<int64_t> Parse(std::string_view text) {
  std::optional<Microdollars> m = parse_decimal_microdollars(text);
  if (!m) return std::nullopt;
  return m->value();
}

struct DecimalCase {
  const char* text;
  int64_t microdollars;
};

class DecimalValid : public ::testing::TestWithParam<DecimalCase> {};

TEST_P(DecimalValid, ConvertsExactly) {
  EXPECT_EQ(Parse(GetParam().text), GetParam().microdollars) << GetParam().text;
}

INSTANTIATE_TEST_SUITE_P(
    Examples, DecimalValid,
    ::testing::Values(DecimalCase{"0.001001", 1001}, DecimalCase{"0.002018", 2018},
                      DecimalCase{"0.0123456", 12346}, DecimalCase{"8.984636", 8984636},
                      DecimalCase{"10.000000", 10000000}, DecimalCase{"7E-3", 7000},
                      DecimalCase{"1.2345675e-2", 12346}, DecimalCase{"0.0000005", 1},
                      DecimalCase{"0.0000025", 3}, DecimalCase{"0.0001245", 125},
                      DecimalCase{"0.0000004999", 0}, DecimalCase{"-0.0000005", -1},
                      DecimalCase{"0", 0}, DecimalCase{"-0", 0}, DecimalCase{"1e-400", 0},
                      DecimalCase{"0.0070000000000000001", 7000}, DecimalCase{"0.005", 5000},
                      DecimalCase{"1", 1000000}, DecimalCase{"0.007", 7000},
                      DecimalCase{"-0.005", -5000}));

INSTANTIATE_TEST_SUITE_P(Ties, DecimalValid,
                         ::testing::Values(
                             // Exactly half a µ$ rounds away from zero, on either side of zero.
                             DecimalCase{"0.0000015", 2}, DecimalCase{"0.0000035", 4},
                             DecimalCase{"-0.0000025", -3}, DecimalCase{"-0.0000015", -2},
                             DecimalCase{"0.0070005", 7001}, DecimalCase{"0.00700050", 7001},
                             DecimalCase{"0.00700049999999", 7000},
                             DecimalCase{"0.00700050000001", 7001}, DecimalCase{"5e-7", 1},
                             DecimalCase{"-5e-7", -1}, DecimalCase{"4.9999999e-7", 0},
                             DecimalCase{"0.00000049", 0}, DecimalCase{"0.0000004", 0},
                             DecimalCase{"-0.0000004", 0}, DecimalCase{"0.0000006", 1}));

INSTANTIATE_TEST_SUITE_P(
    ExponentForms, DecimalValid,
    ::testing::Values(DecimalCase{"7e-3", 7000}, DecimalCase{"7E-03", 7000},
                      DecimalCase{"0.7e-2", 7000}, DecimalCase{"70e-4", 7000},
                      DecimalCase{"7000e-6", 7000}, DecimalCase{"1e0", 1000000},
                      DecimalCase{"1E+0", 1000000}, DecimalCase{"1e+2", 100000000},
                      DecimalCase{"1e2", 100000000}, DecimalCase{"0e400", 0},
                      DecimalCase{"0.000e999999999999999999999", 0}, DecimalCase{"-0e-5", 0},
                      DecimalCase{"1e-0000000000000000000000000006", 1}, DecimalCase{"1e-6", 1},
                      DecimalCase{"1e-7", 0}, DecimalCase{"5e-7", 1}, DecimalCase{"12345e-10", 1},
                      DecimalCase{"1e12", 1000000000000000000},
                      DecimalCase{"1e-99999999999999999999999999", 0},
                      DecimalCase{"100000000000000000000000e-24", 100000}));

INSTANTIATE_TEST_SUITE_P(
    Limits, DecimalValid,
    ::testing::Values(
        // int64 max µ$ = 9223372036854.775807 dollars.
        DecimalCase{"9223372036854.775807", std::numeric_limits<int64_t>::max()},
        DecimalCase{"9223372036854.7758074", std::numeric_limits<int64_t>::max()},
        DecimalCase{"-9223372036854.775808", std::numeric_limits<int64_t>::min()},
        DecimalCase{"9223372036854775807e-6", std::numeric_limits<int64_t>::max()},
        DecimalCase{"0.9223372036854775807e13", std::numeric_limits<int64_t>::max()}));

TEST(Decimal, VeryLongDigitStrings) {
  std::string text = "0.007" + std::string(100000, '0') + "1";
  EXPECT_EQ(Parse(text), 7000);
  std::string half = "0.0000005" + std::string(100000, '0');
  EXPECT_EQ(Parse(half), 1);
  std::string just_below = "0.0000004" + std::string(100000, '9');
  EXPECT_EQ(Parse(just_below), 0);
  std::string many_leading_zeros = "0." + std::string(100000, '0') + "7e99998";
  EXPECT_EQ(Parse(many_leading_zeros), 7000);
  std::string long_integer = std::string(1, '1') + std::string(30, '0') + "e-30";
  EXPECT_EQ(Parse(long_integer), 1000000);
}

class DecimalRejected : public ::testing::TestWithParam<const char*> {};

TEST_P(DecimalRejected, IsNullopt) { EXPECT_EQ(Parse(GetParam()), std::nullopt) << GetParam(); }

INSTANTIATE_TEST_SUITE_P(NotJsonNumbers, DecimalRejected,
                         ::testing::Values("", "-", "+1", "+0.5", "01", "-01", "00", ".5", "5.",
                                           "-.5", "1.e3", "1e", "1e+", "1e-", "e5", "1 ", " 1",
                                           "1. 5", "1 .5", "0x10", "1,5", "NaN", "Infinity",
                                           "-Infinity", "null", "\"0.005\"", "1.5.2", "1e5e5",
                                           "--1", "0.00 1", "1E", "٣", "1\n", "1e5.5"));

INSTANTIATE_TEST_SUITE_P(TooLarge, DecimalRejected,
                         ::testing::Values("1e400", "1e13", "-1e13", "9223372036854.775808",
                                           "9223372036854.7758075", "-9223372036854.775809",
                                           "99999999999999999999999999999",
                                           "1e99999999999999999999999999",
                                           "0.1e99999999999999999999"));

// ---------------------------------------------------------------------------
// format_decimal_dollars
// ---------------------------------------------------------------------------

TEST(FormatDecimalDollars, WritesExactDecimal) {
  EXPECT_EQ(format_decimal_dollars(Microdollars(7000)), "0.007");
  EXPECT_EQ(format_decimal_dollars(Microdollars(1001)), "0.001001");
  EXPECT_EQ(format_decimal_dollars(Microdollars(10000000)), "10");
  EXPECT_EQ(format_decimal_dollars(Microdollars(0)), "0");
  EXPECT_EQ(format_decimal_dollars(Microdollars(1)), "0.000001");
  EXPECT_EQ(format_decimal_dollars(Microdollars(-5000)), "-0.005");
  EXPECT_EQ(format_decimal_dollars(Microdollars(8984636)), "8.984636");
  EXPECT_EQ(format_decimal_dollars(Microdollars(std::numeric_limits<int64_t>::min())),
            "-9223372036854.775808");
}

TEST(FormatDecimalDollars, RoundTripsThroughParse) {
  for (int64_t v :
       {int64_t{0}, int64_t{1}, int64_t{999999}, int64_t{1000000}, int64_t{123456789}, int64_t{-42},
        std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}) {
    EXPECT_EQ(Parse(format_decimal_dollars(Microdollars(v))), v) << v;
  }
}

// ---------------------------------------------------------------------------
// Paths and estimates
// ---------------------------------------------------------------------------

TEST(MeteredPath, KnowsTheFivePaths) {
  for (auto p : {"search", "contents", "findSimilar", "answer", "context"}) {
    EXPECT_TRUE(is_metered_path(p)) << p;
  }
  for (auto p : {"", "Search", "/search", "search/", "findsimilar", "research", "websets"}) {
    EXPECT_FALSE(is_metered_path(p)) << p;
  }
}

int64_t Estimate(std::string_view path, std::string_view body, const PriceTable& prices = {}) {
  json::value v = json::parse(body);
  return estimate(prices, path, v.as_object()).value();
}

struct EstimateCase {
  const char* path;
  const char* body;
  int64_t microdollars;
};

class EstimateShapes : public ::testing::TestWithParam<EstimateCase> {};

TEST_P(EstimateShapes, PricesBody) {
  EXPECT_EQ(Estimate(GetParam().path, GetParam().body), GetParam().microdollars)
      << GetParam().path << " " << GetParam().body;
}

INSTANTIATE_TEST_SUITE_P(
    Search, EstimateShapes,
    ::testing::Values(
        EstimateCase{"search", R"({"query":"q"})", 7000}, EstimateCase{"search", R"({})", 7000},
        EstimateCase{"search", R"({"query":"q","numResults":10})", 7000},
        EstimateCase{"search", R"({"query":"q","numResults":1})", 7000},
        EstimateCase{"search", R"({"query":"q","numResults":11})", 8000},
        EstimateCase{"search", R"({"query":"q","numResults":25})", 22000},
        EstimateCase{"search", R"({"query":"q","numResults":1000})", 997000},
        EstimateCase{"search", R"({"query":"q","numResults":null})", 7000},
        EstimateCase{"search", R"({"query":"q","type":"auto"})", 7000},
        EstimateCase{"search", R"({"query":"q","type":"neural"})", 7000},
        EstimateCase{"search", R"({"query":"q","type":"keyword"})", 7000},
        EstimateCase{"search", R"({"query":"q","type":"fast"})", 7000},
        EstimateCase{"search", R"({"query":"q","type":"instant"})", 7000},
        EstimateCase{"search", R"({"query":"q","type":"deep"})", 12000},
        EstimateCase{"search", R"({"query":"q","type":"deep-reasoning"})", 15000},
        EstimateCase{"search", R"({"query":"q","type":"deep","numResults":50})", 12000},
        // Text and highlights are included in the search price.
        EstimateCase{"search", R"({"query":"q","contents":{"text":true,"highlights":true}})", 7000},
        EstimateCase{"search", R"({"query":"q","text":true})", 7000},
        // Summaries cost per result.
        EstimateCase{"search", R"({"query":"q","contents":{"summary":true}})", 17000},
        EstimateCase{"search", R"({"query":"q","summary":{"query":"x"}})", 17000},
        EstimateCase{"search", R"({"query":"q","numResults":5,"contents":{"summary":true}})",
                     12000},
        EstimateCase{"search", R"({"query":"q","numResults":20,"summary":true})", 37000},
        EstimateCase{"search", R"({"query":"q","contents":{"summary":false}})", 7000},
        EstimateCase{"search", R"({"query":"q","type":"deep","contents":{"summary":true}})", 22000},
        EstimateCase{"search", R"({"query":"q","stream":false,"other":[1,2,{}]})", 7000},
        EstimateCase{"findSimilar", R"({"url":"https://example.com"})", 7000},
        EstimateCase{"findSimilar", R"({"url":"https://example.com","numResults":12})", 9000}));

INSTANTIATE_TEST_SUITE_P(
    Contents, EstimateShapes,
    ::testing::Values(
        EstimateCase{"contents", R"({"urls":["a"]})", 1000},
        EstimateCase{"contents", R"({"urls":["a","b","c"]})", 3000},
        EstimateCase{"contents", R"({"ids":["a","b"]})", 2000},
        EstimateCase{"contents", R"({"urls":[]})", 0},
        EstimateCase{"contents", R"({"urls":["a","b"],"text":true})", 2000},
        EstimateCase{"contents", R"({"urls":["a","b"],"text":true,"highlights":true})", 4000},
        EstimateCase{
            "contents",
            R"({"urls":["a","b"],"text":true,"highlights":{"numSentences":2},"summary":{}})", 6000},
        EstimateCase{"contents",
                     R"({"urls":["a","b"],"contents":{"highlights":true,"summary":true}})", 4000},
        // A type asked for in both places counts once.
        EstimateCase{"contents", R"({"urls":["a"],"text":true,"contents":{"text":true}})", 1000},
        EstimateCase{"contents", R"({"urls":["a"],"text":false,"highlights":false})", 1000},
        EstimateCase{"contents", R"({"urls":["a"],"text":false,"highlights":true})", 1000}));

INSTANTIATE_TEST_SUITE_P(
    AnswerAndContext, EstimateShapes,
    ::testing::Values(EstimateCase{"answer", R"({"query":"q"})", 5000},
                      EstimateCase{"answer", R"({"query":"q","stream":false,"text":true})", 5000},
                      EstimateCase{"context", R"({"query":"q"})", 5000},
                      EstimateCase{"context", R"({"query":"q","tokensNum":5000})", 5000}));

INSTANTIATE_TEST_SUITE_P(
    Unpriceable, EstimateShapes,
    ::testing::Values(
        EstimateCase{"search", R"({"query":"q","numResults":0})", 100000},
        EstimateCase{"search", R"({"query":"q","numResults":-3})", 100000},
        EstimateCase{"search", R"({"query":"q","numResults":1001})", 100000},
        EstimateCase{"search", R"({"query":"q","numResults":18446744073709551615})", 100000},
        EstimateCase{"search", R"({"query":"q","numResults":10.0})", 100000},
        EstimateCase{"search", R"({"query":"q","numResults":1e1})", 100000},
        EstimateCase{"search", R"({"query":"q","numResults":"10"})", 100000},
        EstimateCase{"search", R"({"query":"q","type":5})", 100000},
        EstimateCase{"search", R"({"query":"q","contents":true})", 100000},
        EstimateCase{"search", R"({"query":"q","contents":"text"})", 100000},
        EstimateCase{"search", R"({"query":"q","contents":{"summary":"yes"}})", 100000},
        EstimateCase{"search", R"({"query":"q","text":1})", 100000},
        EstimateCase{"contents", R"({})", 100000},
        EstimateCase{"contents", R"({"urls":"https://a"})", 100000},
        EstimateCase{"contents", R"({"urls":["a",1]})", 100000},
        EstimateCase{"contents", R"({"ids":{"a":1}})", 100000},
        EstimateCase{"contents", R"({"urls":["a"],"highlights":[]})", 100000},
        EstimateCase{"unknownPath", R"({"query":"q"})", 100000}));

TEST(Estimate, TooManyUrlsIsUnpriceable) {
  json::array urls;
  for (int i = 0; i < 1000; ++i) urls.emplace_back("u");
  json::object body{{"urls", urls}};
  EXPECT_EQ(estimate(PriceTable{}, "contents", body).value(), 1000000);
  body["urls"].as_array().emplace_back("one more");
  EXPECT_EQ(estimate(PriceTable{}, "contents", body).value(), 100000);
}

TEST(Estimate, FollowsTheConfiguredPrices) {
  PriceTable p;
  p.search_microdollars = 1;
  p.search_extra_result_microdollars = 2;
  p.summary_per_result_microdollars = 3;
  p.contents_per_page_per_type_microdollars = 4;
  p.answer_microdollars = 5;
  p.deep_search_microdollars = 6;
  p.deep_reasoning_search_microdollars = 7;
  p.context_microdollars = 8;
  p.unknown_request_microdollars = 9;
  EXPECT_EQ(Estimate("search", R"({"numResults":12,"summary":true})", p), 1 + 2 * 2 + 3 * 12);
  EXPECT_EQ(Estimate("search", R"({"type":"deep"})", p), 6);
  EXPECT_EQ(Estimate("search", R"({"type":"deep-reasoning"})", p), 7);
  EXPECT_EQ(Estimate("contents", R"({"urls":["a","b"],"text":true,"summary":true})", p), 16);
  EXPECT_EQ(Estimate("answer", "{}", p), 5);
  EXPECT_EQ(Estimate("context", "{}", p), 8);
  EXPECT_EQ(Estimate("search", R"({"numResults":0})", p), 9);
}

TEST(Estimate, OverflowingPricesGiveTheCeiling) {
  PriceTable p;
  p.search_extra_result_microdollars = std::numeric_limits<int64_t>::max() / 2;
  EXPECT_EQ(Estimate("search", R"({"numResults":10})", p), 7000);
  EXPECT_EQ(Estimate("search", R"({"numResults":13})", p), 100000);
  p = PriceTable{};
  p.contents_per_page_per_type_microdollars = std::numeric_limits<int64_t>::max() / 2;
  EXPECT_EQ(
      Estimate("contents", R"({"urls":["a"],"text":true,"summary":true,"highlights":true})", p),
      100000);
  p = PriceTable{};
  p.search_microdollars = std::numeric_limits<int64_t>::max();
  EXPECT_EQ(Estimate("search", R"({"summary":true})", p), 100000);
}

TEST(Estimate, PartsSplitSearchAndContents) {
  PriceTable p;
  json::object body = json::parse(R"({"numResults":20,"contents":{"summary":true}})").as_object();
  CostEstimate e = estimate_parts(p, "search", body);
  EXPECT_TRUE(e.priced);
  EXPECT_EQ(e.search.value(), 17000);
  EXPECT_EQ(e.contents.value(), 20000);
  e = estimate_parts(p, "contents", json::parse(R"({"urls":["a"]})").as_object());
  EXPECT_EQ(e.search.value(), 0);
  EXPECT_EQ(e.contents.value(), 1000);
  e = estimate_parts(p, "search", json::parse(R"({"numResults":0})").as_object());
  EXPECT_FALSE(e.priced);
  EXPECT_EQ(e.search.value(), 100000);
  EXPECT_EQ(e.contents.value(), 0);
}

// ---------------------------------------------------------------------------
// read_cost
// ---------------------------------------------------------------------------

constexpr Microdollars kMax{100'000'000};

struct CostCase {
  std::string body;
  CostReading reading;
  int64_t microdollars;
};

class ReadCost : public ::testing::TestWithParam<CostCase> {};

TEST_P(ReadCost, Reads) {
  ParsedCost c = read_cost(GetParam().body, kMax);
  EXPECT_EQ(c.reading, GetParam().reading) << GetParam().body;
  if (GetParam().reading == CostReading::kValid) {
    EXPECT_EQ(c.cost.value(), GetParam().microdollars) << GetParam().body;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Bodies, ReadCost,
    ::testing::Values(
        CostCase{R"({"costDollars":{"total":0}})", CostReading::kValid, 0},
        CostCase{R"({"costDollars":{"total":-0}})", CostReading::kValid, 0},
        CostCase{R"({"costDollars":{"total":0.005}})", CostReading::kValid, 5000},
        CostCase{R"({"requestId":"x","results":[{"a":[1,2,{"costDollars":5}]}],)"
                 R"("costDollars":{"search":{"neural":0.005},"total":0.005,"contents":{}}})",
                 CostReading::kValid, 5000},
        CostCase{R"({"costDollars":{"total":0.0070000000000000001}})", CostReading::kValid, 7000},
        CostCase{"{\"costDollars\" : { \"total\" : 0.007 \n\t } }", CostReading::kValid, 7000},
        CostCase{R"({"costDollars":{"total":7E-3}})", CostReading::kValid, 7000},
        CostCase{R"({"costDollars":{"total":100}})", CostReading::kValid, 100000000},
        CostCase{R"({"costDollars":"{\"total\":0.001001}"})", CostReading::kValid, 1001},
        CostCase{R"({"costDollars":"{\"total\":0.001001,\"search\":{\"x\":1}}"})",
                 CostReading::kValid, 1001},
        CostCase{R"({"cost\u0044ollars":{"tot\u0061l":0.002}})", CostReading::kValid, 2000},
        // Duplicate keys: the last wins, as the client's JSON.parse sees it.
        CostCase{R"({"costDollars":{"total":0.001,"total":0.002}})", CostReading::kValid, 2000},
        CostCase{R"({"costDollars":{"total":0.001},"costDollars":{"total":0.003}})",
                 CostReading::kValid, 3000},
        // Missing.
        CostCase{R"({})", CostReading::kMissing, 0},
        CostCase{R"({"results":[]})", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":{}})", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":{"search":0.005}})", CostReading::kMissing, 0},
        CostCase{R"({"nested":{"costDollars":{"total":0.005}}})", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":"{}"})", CostReading::kMissing, 0},
        // Present but unusable.
        CostCase{R"({"costDollars":{"total":null}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":-0.005}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":"n/a"}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":"0.005"}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":1e400}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":1e13}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":100.000001}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":true}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":[0.005]}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":{"v":0.005}}})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":{"total":01}})", CostReading::kMissing, 0},  // not JSON at all
        CostCase{R"({"costDollars":null})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":0.005})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":[{"total":0.005}]})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":"n/a"})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":"{\"total\":-1}"})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":"{\"total\":1e400}"})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":"[1]"})", CostReading::kInvalid, 0},
        CostCase{R"({"costDollars":"{\"total\":0.001} x"})", CostReading::kInvalid, 0},
        // Not JSON (or not an object) at all.
        CostCase{"", CostReading::kMissing, 0}, CostCase{"not json", CostReading::kMissing, 0},
        CostCase{"<html>502 Bad Gateway</html>", CostReading::kMissing, 0},
        CostCase{"[]", CostReading::kMissing, 0}, CostCase{"0.005", CostReading::kMissing, 0},
        CostCase{R"("costDollars")", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":{"total":0.005}} trailing)", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":{"total":0.005}}})", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":{"total":0.005})", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":{"total":0.005},"x":[)", CostReading::kMissing, 0},
        CostCase{R"({"costDollars":{"total":0.005}, "x": "unterminated})", CostReading::kMissing,
                 0}));

TEST(ReadCost, AboveTheCeilingIsInvalid) {
  EXPECT_EQ(read_cost(R"({"costDollars":{"total":0.005}})", Microdollars(4999)).reading,
            CostReading::kInvalid);
  ParsedCost at = read_cost(R"({"costDollars":{"total":0.005}})", Microdollars(5000));
  EXPECT_EQ(at.reading, CostReading::kValid);
  EXPECT_EQ(at.cost.value(), 5000);
}

TEST(ReadCost, LargeBodies) {
  // Past the size that reuses the per-thread buffer.
  std::string filler(3 << 20, 'x');
  std::string body = R"({"results":[{"text":")" + filler + R"("}],"costDollars":{"total":0.012}})";
  ParsedCost c = read_cost(body, kMax);
  EXPECT_EQ(c.reading, CostReading::kValid);
  EXPECT_EQ(c.cost.value(), 12000);
  // And a small one afterwards still works on the reused buffer.
  c = read_cost(R"({"costDollars":{"total":0.001001}})", kMax);
  EXPECT_EQ(c.reading, CostReading::kValid);
  EXPECT_EQ(c.cost.value(), 1001);
}

TEST(ReadCost, ManyResultsBeforeTheCost) {
  std::string body = R"({"results":[)";
  for (int i = 0; i < 1000; ++i) {
    if (i) body += ',';
    body += R"({"id":"u)" + std::to_string(i) + R"(","score":0.5,"costDollars":{"total":9}})";
  }
  body += R"(],"costDollars":{"total":0.0123456}})";
  ParsedCost c = read_cost(body, kMax);
  EXPECT_EQ(c.reading, CostReading::kValid);
  EXPECT_EQ(c.cost.value(), 12346);
}

TEST(ReadCost, DeepNestingDoesNotCrash) {
  std::string body = R"({"x":)" + std::string(5000, '[') + std::string(5000, ']') +
                     R"(,"costDollars":{"total":0.001}})";
  ParsedCost c = read_cost(body, kMax);
  // simdjson refuses documents deeper than its limit; either way nothing throws.
  EXPECT_NE(c.reading, CostReading::kInvalid);
}

}  // namespace
}  // namespace tollgate::exa

namespace tollgate::exa {
namespace {

TEST(ReadCostValidity, ABodyThatIsNotJsonHasNoUsableCost) {
  auto max = Microdollars(100'000'000);
  EXPECT_EQ(read_cost(R"({"results":[tru],"costDollars":{"total":0.002}})", max).reading, CostReading::kMissing);
  EXPECT_EQ(read_cost(R"({"results":[],"costDollars":{"total":0.002}} trailing)", max).reading, CostReading::kMissing);
  auto ok = read_cost(R"({"results":[1e400],"costDollars":{"total":0.002}})", max);
  EXPECT_EQ(ok.reading, CostReading::kValid);
  EXPECT_EQ(ok.cost.value(), 2000);
  EXPECT_TRUE(is_valid_json(R"({"a":[1,2,{"b":null}]})"));
  EXPECT_FALSE(is_valid_json(R"({"a":)"));
}

}  // namespace
}  // namespace tollgate::exa
