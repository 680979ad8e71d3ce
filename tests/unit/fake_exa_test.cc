// Tests of the simulated Exa upstream: answers, test controls and the record
// of received requests, driving the handler's coroutine directly (no network).
#include "fake_exa/fake_exa.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/json.hpp>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <exception>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace tollgate::fake_exa {
namespace {

namespace json = boost::json;
using http::Request;
using http::Response;

constexpr Microdollars kMax{100'000'000};

Request Post(std::string path, std::string body, std::string api_key = "upstream-key") {
  Request r;
  r.method = "POST";
  r.target = std::move(path);
  r.body = std::move(body);
  r.headers.push_back({"Content-Type", "application/json"});
  if (!api_key.empty()) r.headers.push_back({"X-Api-Key", std::move(api_key)});
  return r;
}

Request Get(std::string path) {
  Request r;
  r.method = "GET";
  r.target = std::move(path);
  return r;
}

Response Serve(FakeExa& fake, Request request) {
  boost::asio::io_context io;
  std::optional<Response> out;
  boost::asio::co_spawn(io, fake.handle(std::move(request)), [&](std::exception_ptr e, Response r) {
    if (e) std::rethrow_exception(e);
    out = std::move(r);
  });
  io.run();
  EXPECT_TRUE(out.has_value());
  return out.value_or(Response{});
}

std::string HeaderOf(const Response& r, std::string_view name) {
  for (const auto& h : r.headers) {
    if (http::iequals(h.name, name)) return h.value;
  }
  return "<absent>";
}

json::object Object(const Response& r) { return json::parse(r.body).as_object(); }

int64_t Cost(const Response& r) {
  exa::ParsedCost c = exa::read_cost(r.body, kMax);
  EXPECT_EQ(c.reading, exa::CostReading::kValid) << r.body.substr(0, 500);
  return c.cost.value();
}

exa::CostReading Reading(const Response& r) { return exa::read_cost(r.body, kMax).reading; }

// ---------------------------------------------------------------------------
// Default answers
// ---------------------------------------------------------------------------

TEST(FakeExa, SearchAnswersLikeExa) {
  FakeExa fake;
  Response r = Serve(fake, Post("/search", R"({"query":"q"})"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(HeaderOf(r, "content-type"), "application/json");
  json::object o = Object(r);
  std::string id(o.at("requestId").as_string());
  EXPECT_EQ(id.size(), 32u);
  EXPECT_EQ(id.find_first_not_of("0123456789abcdef"), std::string::npos);
  EXPECT_EQ(HeaderOf(r, "request-id"), id);
  EXPECT_EQ(o.at("resolvedSearchType").as_string(), "neural");
  const json::array& results = o.at("results").as_array();
  ASSERT_EQ(results.size(), 10u);
  for (const json::value& v : results) {
    const json::object& e = v.as_object();
    for (auto k : {"id", "url", "title", "publishedDate", "author"})
      EXPECT_TRUE(e.contains(k)) << k;
    for (auto k : {"text", "highlights", "summary"}) EXPECT_FALSE(e.contains(k)) << k;
  }
  const json::object& cost = o.at("costDollars").as_object();
  EXPECT_TRUE(cost.contains("search"));
  EXPECT_TRUE(cost.contains("contents"));
  EXPECT_NE(r.body.find(R"("total":0.007,)"), std::string::npos) << r.body;
  EXPECT_EQ(Cost(r), 7000);
}

TEST(FakeExa, SearchWithContentsAndMoreResults) {
  FakeExa fake;
  Response r = Serve(fake, Post("/search", R"({"query":"q","numResults":3,"type":"keyword",
      "text":true,"contents":{"highlights":{"numSentences":1},"summary":true}})"));
  ASSERT_EQ(r.status, 200);
  json::object o = Object(r);
  EXPECT_EQ(o.at("resolvedSearchType").as_string(), "keyword");
  const json::array& results = o.at("results").as_array();
  ASSERT_EQ(results.size(), 3u);
  for (const json::value& v : results) {
    EXPECT_TRUE(v.as_object().at("text").is_string());
    EXPECT_TRUE(v.as_object().at("highlights").is_array());
    EXPECT_TRUE(v.as_object().at("summary").is_string());
  }
  EXPECT_EQ(Cost(r), 7000 + 3 * 1000);
  EXPECT_NE(r.body.find(R"("search":{"keyword":0.007},"contents":{"summary":0.003})"),
            std::string::npos)
      << r.body;

  r = Serve(fake, Post("/search", R"({"query":"q","numResults":500})"));
  EXPECT_EQ(Object(r).at("results").as_array().size(), 100u);  // capped
  EXPECT_EQ(Cost(r), 7000 + 490 * 1000);                       // priced as asked
}

TEST(FakeExa, FindSimilar) {
  FakeExa fake;
  Response r =
      Serve(fake, Post("/findSimilar", R"({"url":"https://example.com","numResults":12})"));
  ASSERT_EQ(r.status, 200);
  EXPECT_EQ(Object(r).at("results").as_array().size(), 12u);
  EXPECT_EQ(Cost(r), 9000);
}

TEST(FakeExa, Contents) {
  FakeExa fake;
  Response r = Serve(fake, Post("/contents", R"({"urls":["https://a","https://b"],"ids":["c"]})"));
  ASSERT_EQ(r.status, 200);
  json::object o = Object(r);
  const json::array& results = o.at("results").as_array();
  ASSERT_EQ(results.size(), 3u);
  EXPECT_EQ(results[0].as_object().at("url").as_string(), "https://a");
  EXPECT_EQ(results[2].as_object().at("id").as_string(), "c");
  EXPECT_TRUE(results[0].as_object().at("text").is_string());  // text is the default
  const json::array& statuses = o.at("statuses").as_array();
  ASSERT_EQ(statuses.size(), 3u);
  EXPECT_EQ(statuses[1].as_object().at("status").as_string(), "success");
  EXPECT_EQ(Cost(r), 3000);

  r = Serve(fake, Post("/contents",
                       R"({"urls":["https://a","https://b"],"text":true,"highlights":true})"));
  EXPECT_EQ(Cost(r), 4000);
  EXPECT_NE(r.body.find(R"("contents":{"text":0.002,"highlights":0.002})"), std::string::npos)
      << r.body;
}

TEST(FakeExa, Answer) {
  FakeExa fake;
  Response r = Serve(fake, Post("/answer", R"({"query":"why","stream":false})"));
  ASSERT_EQ(r.status, 200);
  json::object o = Object(r);
  EXPECT_TRUE(o.at("answer").is_string());
  EXPECT_FALSE(o.at("citations").as_array().empty());
  EXPECT_EQ(Cost(r), 5000);
}

TEST(FakeExa, ContextGivesCostDollarsAsAString) {
  FakeExa fake;
  Response r = Serve(fake, Post("/context", R"({"query":"how"})"));
  ASSERT_EQ(r.status, 200);
  json::object o = Object(r);
  EXPECT_TRUE(o.at("response").is_string());
  ASSERT_TRUE(o.at("costDollars").is_string());
  json::object inner = json::parse(o.at("costDollars").as_string()).as_object();
  EXPECT_TRUE(inner.contains("total"));
  EXPECT_EQ(Cost(r), 5000);
}

TEST(FakeExa, DefaultCostEqualsEstimate) {
  const exa::PriceTable prices;
  FakeExa fake(prices);
  const std::pair<const char*, const char*> cases[] = {
      {"search", R"({"query":"q"})"},
      {"search", R"({"query":"q","numResults":42,"contents":{"summary":true}})"},
      {"search", R"({"query":"q","type":"deep","summary":true})"},
      {"search", R"({"query":"q","type":"deep-reasoning"})"},
      {"search", R"({"query":"q","numResults":0})"},  // unpriceable: the ceiling
      {"findSimilar", R"({"url":"u","numResults":1000})"},
      {"contents", R"({"urls":["a","b","c"],"summary":{},"highlights":true,"text":false})"},
      {"contents", R"({"ids":[]})"},
      {"answer", R"({"query":"q"})"},
      {"context", R"({"query":"q"})"},
  };
  for (const auto& [path, body] : cases) {
    Response r = Serve(fake, Post(std::string("/") + path, body));
    ASSERT_EQ(r.status, 200) << path << body;
    EXPECT_EQ(Cost(r), exa::estimate(prices, path, json::parse(body).as_object()).value())
        << path << " " << body;
  }
}

TEST(FakeExa, UsesItsPriceTable) {
  exa::PriceTable prices;
  prices.search_microdollars = 1234567;
  prices.answer_microdollars = 1;
  FakeExa fake(prices);
  Response r = Serve(fake, Post("/search", R"({"query":"q"})"));
  EXPECT_NE(r.body.find(R"("total":1.234567,)"), std::string::npos) << r.body;
  EXPECT_EQ(Cost(r), 1234567);
  EXPECT_EQ(Cost(Serve(fake, Post("/answer", "{}"))), 1);
}

TEST(FakeExa, RequestIdsAreUnique) {
  FakeExa fake;
  std::set<std::string> ids;
  for (int i = 0; i < 100; ++i) {
    ids.insert(std::string(Object(Serve(fake, Post("/answer", "{}"))).at("requestId").as_string()));
  }
  EXPECT_EQ(ids.size(), 100u);
}

// ---------------------------------------------------------------------------
// Refusals
// ---------------------------------------------------------------------------

TEST(FakeExa, RequiresAnApiKey) {
  FakeExa fake;
  Response r = Serve(fake, Post("/search", R"({"query":"q"})", ""));
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(r.body, R"({"error":"missing x-api-key"})");
  Request empty_key = Post("/search", R"({"query":"q"})", "");
  empty_key.headers.push_back({"x-api-key", ""});
  EXPECT_EQ(Serve(fake, empty_key).status, 401);
  // The caller's bearer token is no substitute for the upstream key.
  Request bearer = Post("/search", R"({"query":"q"})", "");
  bearer.headers.push_back({"Authorization", "Bearer x"});
  EXPECT_EQ(Serve(fake, bearer).status, 401);
}

TEST(FakeExa, BodyMustBeAJsonObject) {
  FakeExa fake;
  for (const char* body : {"", "not json", "[]", "5", R"("s")", R"({"query":)"}) {
    Response r = Serve(fake, Post("/search", body));
    EXPECT_EQ(r.status, 400) << body;
    EXPECT_EQ(HeaderOf(r, "content-type"), "application/json");
    EXPECT_TRUE(Object(r).contains("error"));
  }
}

TEST(FakeExa, UnknownPathsAndMethods) {
  FakeExa fake;
  for (const char* path : {"/", "/api/exa/search", "/search/", "/websets", "/_fake/nope"}) {
    Response r = Serve(fake, Post(path, "{}"));
    EXPECT_EQ(r.status, 404) << path;
    EXPECT_TRUE(Object(r).contains("error"));
  }
  EXPECT_EQ(Serve(fake, Get("/search")).status, 405);
  EXPECT_EQ(Serve(fake, Post("/_fake/calls", "{}")).status, 405);
  EXPECT_EQ(Serve(fake, Get("/_fake/reset")).status, 405);
  EXPECT_EQ(fake.calls(), 0);  // none of these was a metered POST
  // A query string does not change the path.
  EXPECT_EQ(Serve(fake, Post("/search?x=1", R"({"query":"q"})")).status, 200);
}

// ---------------------------------------------------------------------------
// Test controls
// ---------------------------------------------------------------------------

TEST(FakeExaControls, Status) {
  FakeExa fake;
  Response r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"status":500}})"));
  EXPECT_EQ(r.status, 500);
  EXPECT_TRUE(Object(r).contains("error"));
  EXPECT_EQ(Reading(r), exa::CostReading::kMissing);  // an error carries no cost unless asked

  r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"status":429,"cost":"0.003"}})"));
  EXPECT_EQ(r.status, 429);
  EXPECT_EQ(Cost(r), 3000);

  r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"status":201}})"));
  EXPECT_EQ(r.status, 201);
  EXPECT_EQ(Cost(r), 7000);
}

TEST(FakeExaControls, CostIsWrittenVerbatim) {
  FakeExa fake;
  struct Case {
    const char* cost_json;  // the control's value, as JSON
    const char* expect_in_body;
    exa::CostReading reading;
    int64_t microdollars;
  };
  const Case cases[] = {
      {R"("0.0070000000000000001")", R"("total":0.0070000000000000001,)", exa::CostReading::kValid,
       7000},
      {R"("0.001001")", R"("total":0.001001,)", exa::CostReading::kValid, 1001},
      {R"("0")", R"("total":0,)", exa::CostReading::kValid, 0},
      {R"("-0")", R"("total":-0,)", exa::CostReading::kValid, 0},
      {R"("1e400")", R"("total":1e400,)", exa::CostReading::kInvalid, 0},
      {R"("null")", R"("total":null,)", exa::CostReading::kInvalid, 0},
      {R"("\"n/a\"")", R"("total":"n/a",)", exa::CostReading::kInvalid, 0},
      {R"("-0.005")", R"("total":-0.005,)", exa::CostReading::kInvalid, 0},
  };
  for (const Case& c : cases) {
    std::string body = std::string(R"({"query":"q","fake_exa":{"cost":)") + c.cost_json + "}}";
    Response r = Serve(fake, Post("/search", body));
    EXPECT_EQ(r.status, 200);
    EXPECT_NE(r.body.find(c.expect_in_body), std::string::npos) << r.body;
    exa::ParsedCost parsed = exa::read_cost(r.body, kMax);
    EXPECT_EQ(parsed.reading, c.reading) << c.cost_json;
    if (c.reading == exa::CostReading::kValid) {
      EXPECT_EQ(parsed.cost.value(), c.microdollars);
    }
  }
}

TEST(FakeExaControls, CostOnContextStaysStringEncoded) {
  FakeExa fake;
  Response r = Serve(fake, Post("/context", R"({"query":"q","fake_exa":{"cost":"1e400"}})"));
  json::object o = Object(r);
  ASSERT_TRUE(o.at("costDollars").is_string());
  EXPECT_NE(std::string(o.at("costDollars").as_string()).find(R"("total":1e400)"),
            std::string::npos);
  EXPECT_EQ(Reading(r), exa::CostReading::kInvalid);

  r = Serve(fake, Post("/context", R"({"query":"q","fake_exa":{"cost":"0.002018"}})"));
  EXPECT_EQ(Cost(r), 2018);
}

TEST(FakeExaControls, CostDollarsIsWrittenVerbatim) {
  FakeExa fake;
  Response r = Serve(
      fake, Post("/search", R"({"query":"q","fake_exa":{"cost_dollars":"{\"total\":0.002}"}})"));
  EXPECT_NE(r.body.find(R"("costDollars":{"total":0.002})"), std::string::npos) << r.body;
  EXPECT_EQ(Cost(r), 2000);

  r = Serve(fake,
            Post("/search",
                 R"({"query":"q","fake_exa":{"cost_dollars":"\"{\\\"total\\\":0.001001}\""}})"));
  EXPECT_NE(r.body.find(R"("costDollars":"{\"total\":0.001001}")"), std::string::npos) << r.body;
  EXPECT_EQ(Cost(r), 1001);

  r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"cost_dollars":"null"}})"));
  EXPECT_EQ(Reading(r), exa::CostReading::kInvalid);
  r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"cost_dollars":"{}"}})"));
  EXPECT_EQ(Reading(r), exa::CostReading::kMissing);
}

TEST(FakeExaControls, OmitCost) {
  FakeExa fake;
  Response r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"omit_cost":true}})"));
  EXPECT_EQ(r.status, 200);
  EXPECT_FALSE(Object(r).contains("costDollars"));
  EXPECT_EQ(Reading(r), exa::CostReading::kMissing);
  r = Serve(fake, Post("/context", R"({"query":"q","fake_exa":{"omit_cost":true,"cost":"0.1"}})"));
  EXPECT_FALSE(Object(r).contains("costDollars"));
}

TEST(FakeExaControls, BodyIsWrittenVerbatim) {
  FakeExa fake;
  Response r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"body":"not json {"}})"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, "not json {");
  EXPECT_EQ(HeaderOf(r, "content-type"), "application/json");
  EXPECT_EQ(Reading(r), exa::CostReading::kMissing);

  r = Serve(
      fake,
      Post(
          "/answer",
          R"({"fake_exa":{"status":503,"body":"{\"error\":\"busy\",\"costDollars\":{\"total\":0.001}}"}})"));
  EXPECT_EQ(r.status, 503);
  EXPECT_EQ(r.body, R"({"error":"busy","costDollars":{"total":0.001}})");
  EXPECT_EQ(Cost(r), 1000);
}

TEST(FakeExaControls, BodyBytesPads) {
  FakeExa fake;
  for (int64_t n : {int64_t{0}, int64_t{10}, int64_t{3000}, int64_t{100000}, int64_t{3} << 20}) {
    Response r = Serve(fake, Post("/search", R"({"query":"q","fake_exa":{"body_bytes":)" +
                                                 std::to_string(n) + "}}"));
    EXPECT_GE(r.body.size(), static_cast<size_t>(n));
    if (n >= 3000) {
      EXPECT_LE(r.body.size(), static_cast<size_t>(n) + 64);
    }
    EXPECT_NO_THROW((void)json::parse(r.body));
    EXPECT_EQ(Cost(r), 7000);
  }
}

TEST(FakeExaControls, RejectStream) {
  FakeExa fake;
  Response r = Serve(
      fake, Post("/answer", R"({"query":"q","stream":false,"fake_exa":{"reject_stream":true}})"));
  EXPECT_EQ(r.status, 400);
  EXPECT_EQ(r.body, R"({"error":"stream field present"})");
  r = Serve(fake, Post("/answer", R"({"query":"q","fake_exa":{"reject_stream":true}})"));
  EXPECT_EQ(r.status, 200);
  r = Serve(fake, Post("/answer", R"({"query":"q","stream":true})"));
  EXPECT_EQ(r.status, 200);  // only rejected when asked to
}

TEST(FakeExaControls, MalformedControlsAre400) {
  FakeExa fake;
  for (const char* controls : {R"("x")", R"([])", R"({"delay_ms":-1})", R"({"delay_ms":"5"})",
                               R"({"delay_ms":600001})", R"({"status":"500"})", R"({"status":99})",
                               R"({"status":600})", R"({"cost":0.005})", R"({"cost_dollars":{}})",
                               R"({"body":1})", R"({"omit_cost":1})", R"({"reject_stream":"yes"})",
                               R"({"body_bytes":-1})", R"({"body_bytes":1e3})", R"({"bogus":1})"}) {
    Response r =
        Serve(fake, Post("/search", std::string(R"({"query":"q","fake_exa":)") + controls + "}"));
    EXPECT_EQ(r.status, 400) << controls;
    EXPECT_TRUE(Object(r).contains("error"));
  }
  EXPECT_EQ(Serve(fake, Post("/search", R"({"query":"q","fake_exa":null})")).status, 200);
  EXPECT_EQ(Serve(fake, Post("/search", R"({"query":"q","fake_exa":{}})")).status, 200);
}

TEST(FakeExaControls, DelayWaitsWithoutBlocking) {
  FakeExa fake;
  boost::asio::io_context io;
  std::vector<std::string> finished;
  auto spawn = [&](const std::string& name, const char* body) {
    boost::asio::co_spawn(io, fake.handle(Post("/search", body)), [&, name](std::exception_ptr e, Response r) {
      EXPECT_FALSE(e);
      EXPECT_EQ(r.status, 200);
      finished.push_back(name);
    });
  };
  // Three delayed requests first, then one without delay, all on one thread:
  // the last one answers first because the delays wait on timers, not the thread.
  for (int i = 0; i < 3; ++i) spawn("delayed", R"({"query":"q","fake_exa":{"delay_ms":200}})");
  spawn("immediate", R"({"query":"q"})");
  io.run();
  ASSERT_EQ(finished.size(), 4u);
  EXPECT_EQ(finished.front(), "immediate");
  // Counted on arrival, delayed or not.
  EXPECT_EQ(fake.calls(), 4);
}

// ---------------------------------------------------------------------------
// Observability
// ---------------------------------------------------------------------------

TEST(FakeExaRecord, CountsEveryMeteredPost) {
  FakeExa fake;
  (void)Serve(fake, Post("/search", R"({"query":"q"})"));
  (void)Serve(fake, Post("/search", R"({"query":"q"})", ""));  // 401
  (void)Serve(fake, Post("/contents", "not json"));            // 400
  (void)Serve(fake, Post("/answer", R"({"fake_exa":{"status":500}})"));
  (void)Serve(fake, Post("/nope", "{}"));  // 404: not metered
  EXPECT_EQ(fake.calls(), 4);
  Response r = Serve(fake, Get("/_fake/calls"));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.body, R"({"calls":4})");
}

TEST(FakeExaRecord, KeepsRequests) {
  FakeExa fake;
  Request req =
      Post("/findSimilar?debug=1", R"({"url":"https://example.com"})", "secret-upstream-key");
  req.headers.push_back({"User-Agent", "tollgate/0.1"});
  (void)Serve(fake, req);
  Response r = Serve(fake, Get("/_fake/requests"));
  ASSERT_EQ(r.status, 200);
  json::object o = Object(r);
  EXPECT_EQ(o.at("calls").as_int64(), 1);
  const json::array& requests = o.at("requests").as_array();
  ASSERT_EQ(requests.size(), 1u);
  const json::object& first = requests[0].as_object();
  EXPECT_EQ(first.at("path").as_string(), "/findSimilar");
  EXPECT_EQ(first.at("body").as_string(), R"({"url":"https://example.com"})");
  const json::object& headers = first.at("headers").as_object();
  EXPECT_EQ(headers.at("x-api-key").as_string(), "secret-upstream-key");
  EXPECT_EQ(headers.at("user-agent").as_string(), "tollgate/0.1");
  EXPECT_EQ(headers.at("content-type").as_string(), "application/json");
  EXPECT_FALSE(headers.contains("User-Agent"));
}

TEST(FakeExaRecord, KeepsTheLast200AndResets) {
  FakeExa fake;
  for (int i = 0; i < 205; ++i) {
    (void)Serve(fake, Post("/answer", R"({"query":")" + std::to_string(i) + R"("})"));
  }
  json::object o = Object(Serve(fake, Get("/_fake/requests")));
  EXPECT_EQ(o.at("calls").as_int64(), 205);
  const json::array& requests = o.at("requests").as_array();
  ASSERT_EQ(requests.size(), 200u);
  EXPECT_EQ(requests.front().as_object().at("body").as_string(), R"({"query":"5"})");
  EXPECT_EQ(requests.back().as_object().at("body").as_string(), R"({"query":"204"})");

  Response r = Serve(fake, Post("/_fake/reset", ""));
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(fake.calls(), 0);
  o = Object(Serve(fake, Get("/_fake/requests")));
  EXPECT_EQ(o.at("calls").as_int64(), 0);
  EXPECT_TRUE(o.at("requests").as_array().empty());
}

TEST(FakeExaRecord, CutsLongBodies) {
  FakeExa fake;
  std::string big = R"({"query":")" + std::string(kRecordedBodyBytesMax * 2, 'q') + R"("})";
  EXPECT_EQ(Serve(fake, Post("/search", big)).status, 200);
  json::object o = Object(Serve(fake, Get("/_fake/requests")));
  const json::object& rec = o.at("requests").as_array()[0].as_object();
  EXPECT_EQ(rec.at("body").as_string().size(), kRecordedBodyBytesMax);
  EXPECT_EQ(rec.at("body_bytes").to_number<uint64_t>(), big.size());
}

TEST(FakeExaRecord, ConcurrentRequestsAreAllCounted) {
  FakeExa fake;
  boost::asio::io_context io;
  constexpr int kRequests = 400;
  std::atomic<int> ok{0};
  for (int i = 0; i < kRequests; ++i) {
    boost::asio::co_spawn(
        io, fake.handle(Post(i % 2 ? "/search" : "/contents", R"({"urls":["a"],"query":"q"})")),
        [&](std::exception_ptr e, Response r) {
          if (!e && r.status == 200) ++ok;
        });
  }
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back([&] { io.run(); });
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), kRequests);
  EXPECT_EQ(fake.calls(), kRequests);
  EXPECT_EQ(Object(Serve(fake, Get("/_fake/requests"))).at("requests").as_array().size(),
            kRecordedRequestsMax);
}

}  // namespace
}  // namespace tollgate::fake_exa
