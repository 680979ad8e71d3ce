// The simulated Exa upstream: request routing, test controls, Exa-shaped
// answers and the record of what it received. See fake_exa.h.
#include "fake_exa/fake_exa.h"

#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/json.hpp>
#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <exception>
#include <optional>
#include <random>
#include <utility>

#include "common/status.h"

namespace tollgate::fake_exa {
namespace {

namespace json = boost::json;

constexpr int64_t kDefaultNumResults = 10;
constexpr std::string_view kPublishedDate = "2025-01-01T00:00:00.000Z";
constexpr std::string_view kPaddingField = ",\"fake_exa_padding\":\"\"";

http::Response error(int status, std::string_view message) {
  json::object o{{"error", message}};
  return http::Response::json(status, json::serialize(o));
}

std::string lowercase(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// splitmix64's finalizer: a bijection, so distinct counters give distinct ids.
uint64_t mix(uint64_t x) {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// ---------------------------------------------------------------------------
// Controls
// ---------------------------------------------------------------------------

struct Controls {
  int64_t delay_ms = 0;
  int status = 200;
  std::optional<std::string> cost;          // raw costDollars.total
  std::optional<std::string> cost_dollars;  // raw costDollars
  bool omit_cost = false;
  std::optional<std::string> body;  // raw response body
  int64_t body_bytes = 0;
  bool reject_stream = false;
};

std::optional<int64_t> as_int(const json::value& v) {
  if (v.is_int64()) return v.get_int64();
  return std::nullopt;  // uint64 kind: beyond every bound below anyway
}

Result<Controls> parse_controls(const json::object& body) {
  Controls c;
  const json::value* v = body.if_contains("fake_exa");
  if (v == nullptr || v->is_null()) return c;
  if (!v->is_object()) return InvalidArgument("fake_exa must be an object");
  for (const auto& [key, value] : v->get_object()) {
    if (key == "delay_ms") {
      std::optional<int64_t> ms = as_int(value);
      if (!ms || *ms < 0 || *ms > kDelayMsMax) {
        return InvalidArgument(
            fmt::format("fake_exa.delay_ms must be an integer in 0..{}", kDelayMsMax));
      }
      c.delay_ms = *ms;
    } else if (key == "status") {
      std::optional<int64_t> s = as_int(value);
      if (!s || *s < 200 || *s > 599) {
        return InvalidArgument("fake_exa.status must be an integer in 200..599");
      }
      c.status = static_cast<int>(*s);
    } else if (key == "cost" || key == "cost_dollars" || key == "body") {
      if (!value.is_string()) {
        return InvalidArgument(fmt::format("fake_exa.{} must be a string", std::string_view(key)));
      }
      std::string text(value.get_string());
      (key == "cost" ? c.cost : key == "cost_dollars" ? c.cost_dollars : c.body) = std::move(text);
    } else if (key == "omit_cost" || key == "reject_stream") {
      if (!value.is_bool()) {
        return InvalidArgument(fmt::format("fake_exa.{} must be a boolean", std::string_view(key)));
      }
      (key == "omit_cost" ? c.omit_cost : c.reject_stream) = value.get_bool();
    } else if (key == "body_bytes") {
      std::optional<int64_t> n = as_int(value);
      if (!n || *n < 0 || *n > kBodyBytesMax) {
        return InvalidArgument(
            fmt::format("fake_exa.body_bytes must be an integer in 0..{}", kBodyBytesMax));
      }
      c.body_bytes = *n;
    } else {
      return InvalidArgument(fmt::format("unknown fake_exa control: {}", std::string_view(key)));
    }
  }
  return c;
}

// ---------------------------------------------------------------------------
// Exa-shaped answers
// ---------------------------------------------------------------------------

// Content requested at the top level or under "contents" (true or options).
struct Wanted {
  bool text = false;
  bool highlights = false;
  bool summary = false;
  int count() const { return int{text} + int{highlights} + int{summary}; }
};

bool wants(const json::object& body, std::string_view key) {
  auto on = [&](const json::object& o) {
    const json::value* v = o.if_contains(key);
    return v != nullptr && ((v->is_bool() && v->get_bool()) || v->is_object());
  };
  if (on(body)) return true;
  const json::value* c = body.if_contains("contents");
  return c != nullptr && c->is_object() && on(c->get_object());
}

Wanted wanted(const json::object& body) {
  return Wanted{wants(body, "text"), wants(body, "highlights"), wants(body, "summary")};
}

std::string string_field(const json::object& body, std::string_view key) {
  const json::value* v = body.if_contains(key);
  return v != nullptr && v->is_string() ? std::string(v->get_string()) : std::string();
}

// The search type Exa reports having run; a fixed set, so it is safe to use as a JSON key.
std::string_view resolved_search_type(const json::object& body) {
  std::string t = string_field(body, "type");
  for (std::string_view known : {"keyword", "fast", "instant", "deep", "deep-reasoning"}) {
    if (t == known) return known;
  }
  return "neural";
}

json::object result(std::string_view url, std::string_view title, const Wanted& want, size_t i) {
  json::object r{{"id", url},
                 {"url", url},
                 {"title", title},
                 {"publishedDate", kPublishedDate},
                 {"author", "fake-exa"}};
  if (want.text) {
    r["text"] = fmt::format("Text of fake page {} at {}. Nothing here is real.", i, url);
  }
  if (want.highlights) {
    r["highlights"] = json::array{fmt::format("A highlight from fake page {}.", i)};
  }
  if (want.summary) r["summary"] = fmt::format("A summary of fake page {}.", i);
  return r;
}

json::array search_results(std::string_view path, const json::object& body, const Wanted& want) {
  int64_t n = kDefaultNumResults;
  if (const json::value* v = body.if_contains("numResults"); v != nullptr && v->is_int64()) {
    n = std::clamp<int64_t>(v->get_int64(), 0, kResultsMax);
  }
  std::string query = string_field(body, "query");
  json::array results;
  results.reserve(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    std::string url = fmt::format("https://example.com/fake-exa/{}/{}", path, i);
    results.push_back(
        result(url, fmt::format("Fake result {} for: {}", i, query), want, static_cast<size_t>(i)));
  }
  return results;
}

// The answer without costDollars, which is appended as raw text.
json::object answer_body(std::string_view path, const json::object& body,
                         const std::string& request_id) {
  json::object out{{"requestId", request_id}};
  Wanted want = wanted(body);
  std::string query = string_field(body, "query");
  if (path == "search" || path == "findSimilar") {
    out["resolvedSearchType"] = resolved_search_type(body);
    out["results"] = search_results(path, body, want);
  } else if (path == "contents") {
    if (want.count() == 0) want.text = true;  // text is the default
    json::array results, statuses;
    for (std::string_view key : {"urls", "ids"}) {
      const json::value* list = body.if_contains(key);
      if (list == nullptr || !list->is_array()) continue;
      for (const json::value& e : list->get_array()) {
        if (!e.is_string() || results.size() >= kContentsPagesMax) continue;
        std::string_view url = e.get_string();
        results.push_back(
            result(url, fmt::format("Fake page {}", results.size()), want, results.size()));
        statuses.push_back(json::object{{"id", url}, {"status", "success"}});
      }
    }
    out["results"] = std::move(results);
    out["statuses"] = std::move(statuses);
  } else if (path == "answer") {
    out["answer"] = fmt::format("A fake answer to: {}", query);
    json::array citations;
    for (size_t i = 0; i < 3; ++i) {
      citations.push_back(result(fmt::format("https://example.com/fake-exa/answer/{}", i),
                                 fmt::format("Fake citation {}", i), Wanted{}, i));
    }
    out["citations"] = std::move(citations);
  } else {  // context
    out["response"] = fmt::format("Fake context for: {}. Nothing here is real.", query);
    out["resultsCount"] = kDefaultNumResults;
  }
  return out;
}

// {"total": ..., "search": {...}, "contents": {...}} priced like the proxy's
// estimate; total_text replaces the computed total when given.
std::string cost_dollars_text(const exa::PriceTable& prices, std::string_view path,
                              const json::object& body,
                              const std::optional<std::string>& total_text) {
  exa::CostEstimate e = exa::estimate_parts(prices, path, body);
  auto dollars = [](Microdollars m) { return exa::format_decimal_dollars(m); };
  std::string search = "{}";
  std::string contents = "{}";
  if (!e.priced) {
    search = fmt::format("{{\"unpriced\":{}}}", dollars(e.search));
  } else if (path == "contents") {
    Wanted want = wanted(body);
    if (want.count() == 0) want.text = true;
    // Each requested type costs the same pages x price.
    std::string per_type = dollars(Microdollars(e.contents.value() / want.count()));
    contents.clear();
    for (auto [on, name] : {std::pair{want.text, "text"}, std::pair{want.highlights, "highlights"},
                            std::pair{want.summary, "summary"}}) {
      if (!on) continue;
      contents += contents.empty() ? "{" : ",";
      contents += fmt::format("\"{}\":{}", name, per_type);
    }
    contents += "}";
  } else {
    std::string_view kind =
        (path == "search" || path == "findSimilar") ? resolved_search_type(body) : path;
    search = fmt::format("{{\"{}\":{}}}", kind, dollars(e.search));
    if (e.contents.value() > 0) contents = fmt::format("{{\"summary\":{}}}", dollars(e.contents));
  }
  std::string total = total_text ? *total_text : dollars(e.search + e.contents);
  return fmt::format("{{\"total\":{},\"search\":{},\"contents\":{}}}", total, search, contents);
}

// Appends `"key":raw` to a serialized, non-empty JSON object.
void append_raw_field(std::string& object_text, std::string_view key, std::string_view raw) {
  object_text.pop_back();  // '}'
  object_text += fmt::format(",\"{}\":{}}}", key, raw);
}

void pad_to(std::string& object_text, int64_t body_bytes) {
  auto target = static_cast<size_t>(body_bytes);
  if (object_text.size() >= target) return;
  size_t filler = target - object_text.size();
  filler = filler > kPaddingField.size() ? filler - kPaddingField.size() : 0;
  append_raw_field(object_text, "fake_exa_padding", "\"" + std::string(filler, 'x') + "\"");
}

}  // namespace

// ---------------------------------------------------------------------------
// FakeExa
// ---------------------------------------------------------------------------

FakeExa::FakeExa(exa::PriceTable prices)
    : prices_(prices),
      request_id_seed_((uint64_t{std::random_device{}()} << 32) ^ std::random_device{}()) {}

int64_t FakeExa::calls() const {
  std::lock_guard lock(mu_);
  return calls_;
}

void FakeExa::reset() {
  std::lock_guard lock(mu_);
  calls_ = 0;
  recent_.clear();
}

std::string FakeExa::next_request_id() {
  uint64_t n = request_counter_.fetch_add(1, std::memory_order_relaxed);
  return fmt::format("{:016x}{:016x}", mix(request_id_seed_), mix(request_id_seed_ + n));
}

void FakeExa::record(const http::Request& request) {
  Recorded r;
  r.path = std::string(request.path());
  r.headers.reserve(request.headers.size());
  for (const http::Header& h : request.headers) r.headers.push_back({lowercase(h.name), h.value});
  r.body_bytes = request.body.size();
  r.body = request.body.substr(0, kRecordedBodyBytesMax);
  std::lock_guard lock(mu_);
  ++calls_;
  recent_.push_back(std::move(r));
  if (recent_.size() > kRecordedRequestsMax) recent_.pop_front();
}

std::string FakeExa::requests_json() const {
  std::lock_guard lock(mu_);
  json::array requests;
  requests.reserve(recent_.size());
  for (const Recorded& r : recent_) {
    json::object headers;
    for (const http::Header& h : r.headers)
      headers[h.name] = h.value;  // a repeated name: last wins
    requests.push_back(json::object{{"path", r.path},
                                    {"headers", std::move(headers)},
                                    {"body", r.body},
                                    {"body_bytes", r.body_bytes}});
  }
  return json::serialize(json::object{{"calls", calls_}, {"requests", std::move(requests)}});
}

boost::asio::awaitable<http::Response> FakeExa::handle(http::Request request) {
  Planned planned = plan(request);
  if (planned.delay_ms > 0) {
    boost::asio::steady_timer timer(co_await boost::asio::this_coro::executor,
                                    std::chrono::milliseconds(planned.delay_ms));
    boost::system::error_code ec;  // cancelled (shutting down): answer at once
    co_await timer.async_wait(boost::asio::redirect_error(boost::asio::use_awaitable, ec));
  }
  co_return std::move(planned.response);
}

FakeExa::Planned FakeExa::plan(const http::Request& request) {
  try {
    std::string_view path = request.path();
    if (path == "/_fake/calls" || path == "/_fake/requests") {
      if (request.method != "GET") return {error(405, "use GET"), 0};
      if (path == "/_fake/calls") {
        return {http::Response::json(200, json::serialize(json::object{{"calls", calls()}})), 0};
      }
      return {http::Response::json(200, requests_json()), 0};
    }
    if (path == "/_fake/reset") {
      if (request.method != "POST") return {error(405, "use POST"), 0};
      reset();
      return {http::Response::json(200, R"({"reset":true})"), 0};
    }
    if (path.starts_with('/') && exa::is_metered_path(path.substr(1))) {
      if (request.method != "POST") return {error(405, "use POST"), 0};
      record(request);
      return plan_metered(request, path.substr(1));
    }
    return {error(404, fmt::format("no such path: {}", path)), 0};
  } catch (const std::exception& e) {
    // Allocation failure, in practice: answer as a broken upstream would.
    return {error(500, fmt::format("fake-exa internal error: {}", e.what())), 0};
  }
}

FakeExa::Planned FakeExa::plan_metered(const http::Request& request, std::string_view path) {
  std::optional<std::string_view> key = request.header("x-api-key");
  if (!key || key->empty()) return {error(401, "missing x-api-key"), 0};
  if (request.body_too_large) return {error(413, "request body too large"), 0};

  boost::system::error_code ec;
  json::value parsed = json::parse(request.body, ec);
  if (ec || !parsed.is_object()) return {error(400, "request body must be a JSON object"), 0};
  const json::object& body = parsed.get_object();

  Result<Controls> controls_or = parse_controls(body);
  if (!controls_or.ok()) return {error(400, controls_or.status().message()), 0};
  const Controls& c = controls_or.value();
  Planned planned{http::Response{}, c.delay_ms};

  if (c.reject_stream && body.contains("stream")) {
    planned.response = error(400, "stream field present");
    return planned;
  }
  std::string request_id = next_request_id();
  if (c.body) {
    planned.response = http::Response::json(c.status, *c.body);
  } else {
    bool success = c.status >= 200 && c.status <= 299;
    std::string text;
    if (success) {
      text = json::serialize(answer_body(path, body, request_id));
    } else {
      text = json::serialize(
          json::object{{"requestId", request_id},
                       {"error", fmt::format("fake-exa: answering with status {}", c.status)}});
    }
    // An error body carries a cost only when the test asks for one.
    bool with_cost = !c.omit_cost && (success || c.cost || c.cost_dollars);
    if (with_cost) {
      std::string cost =
          c.cost_dollars ? *c.cost_dollars : cost_dollars_text(prices_, path, body, c.cost);
      // /context gives costDollars as a JSON-encoded string, as the real one does.
      if (!c.cost_dollars && path == "context") cost = json::serialize(json::string_view(cost));
      append_raw_field(text, "costDollars", cost);
    }
    pad_to(text, c.body_bytes);
    planned.response = http::Response::json(c.status, std::move(text));
  }
  planned.response.set("request-id", request_id);
  return planned;
}

}  // namespace tollgate::fake_exa
