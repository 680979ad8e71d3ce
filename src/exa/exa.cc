// The Exa upstream's pure logic: which paths are metered, what a request is
// estimated to cost from its body, and the exact µ$ figure of the cost an
// Exa response reports. Integer arithmetic only; nothing here throws out.
#include "exa/exa.h"

#include <boost/json/basic_parser_impl.hpp>

#include <boost/json.hpp>
#include <simdjson.h>

#include <algorithm>
#include <limits>
#include <utility>

namespace tollgate::exa {

bool is_metered_path(std::string_view path) {
  return std::find(kPaths.begin(), kPaths.end(), path) != kPaths.end();
}

// ---------------------------------------------------------------------------
// Estimate
// ---------------------------------------------------------------------------
namespace {

namespace json = boost::json;

// Largest numResults and urls/ids count we price; beyond that the shape is
// not one Exa accepts and gets the ceiling.
constexpr int64_t kNumResultsMax = 1000;
constexpr size_t kPagesMax = 1000;
constexpr int64_t kDefaultNumResults = 10;
constexpr int64_t kResultsIncludedInSearch = 10;

std::optional<int64_t> checked_mul(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r)) return std::nullopt;
  return r;
}

std::optional<int64_t> checked_add(int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_add_overflow(a, b, &r)) return std::nullopt;
  return r;
}

// A content-type flag (text / highlights / summary): absent, null or false
// is "not requested"; true or an options object is "requested"; any other
// type makes the shape unpriceable (nullopt).
std::optional<bool> flag_requested(const json::object& o, std::string_view key) {
  const json::value* v = o.if_contains(key);
  if (v == nullptr || v->is_null()) return false;
  if (v->is_bool()) return v->get_bool();
  if (v->is_object()) return true;
  return std::nullopt;
}

struct ContentTypes {
  bool text = false;
  bool highlights = false;
  bool summary = false;
  int64_t count() const { return int64_t{text} + int64_t{highlights} + int64_t{summary}; }
};

// Content types requested at the top level or under "contents".
std::optional<ContentTypes> requested_types(const json::object& body) {
  const json::object* contents = nullptr;
  if (const json::value* c = body.if_contains("contents"); c != nullptr && !c->is_null()) {
    if (!c->is_object()) return std::nullopt;
    contents = &c->get_object();
  }
  ContentTypes types;
  for (auto [key, slot] :
       {std::pair{"text", &types.text}, std::pair{"highlights", &types.highlights},
        std::pair{"summary", &types.summary}}) {
    std::optional<bool> top = flag_requested(body, key);
    if (!top) return std::nullopt;
    bool nested = false;
    if (contents != nullptr) {
      std::optional<bool> n = flag_requested(*contents, key);
      if (!n) return std::nullopt;
      nested = *n;
    }
    *slot = *top || nested;
  }
  return types;
}

// numResults: absent or null -> 10; otherwise an integer in [1, 1000].
std::optional<int64_t> num_results(const json::object& body) {
  const json::value* v = body.if_contains("numResults");
  if (v == nullptr || v->is_null()) return kDefaultNumResults;
  if (!v->is_int64()) return std::nullopt;  // uint64 kind only holds values > int64 max
  int64_t n = v->get_int64();
  if (n < 1 || n > kNumResultsMax) return std::nullopt;
  return n;
}

// Entries of an optional array of strings (urls / ids); nullopt if malformed.
std::optional<size_t> string_array_size(const json::object& body, std::string_view key) {
  const json::value* v = body.if_contains(key);
  if (v == nullptr || v->is_null()) return 0;
  if (!v->is_array()) return std::nullopt;
  const json::array& a = v->get_array();
  if (a.size() > kPagesMax) return std::nullopt;
  for (const json::value& e : a) {
    if (!e.is_string()) return std::nullopt;
  }
  return a.size();
}

CostEstimate unpriced(const PriceTable& prices) {
  return CostEstimate{Microdollars(prices.unknown_request_microdollars), kZero, false};
}

std::optional<CostEstimate> estimate_search(const PriceTable& prices, const json::object& body) {
  std::string_view type = "auto";
  if (const json::value* t = body.if_contains("type"); t != nullptr && !t->is_null()) {
    if (!t->is_string()) return std::nullopt;
    type = t->get_string();
  }
  std::optional<int64_t> n = num_results(body);
  std::optional<ContentTypes> types = requested_types(body);
  if (!n || !types) return std::nullopt;

  std::optional<int64_t> search;
  if (type == "deep") {
    search = prices.deep_search_microdollars;
  } else if (type == "deep-reasoning") {
    search = prices.deep_reasoning_search_microdollars;
  } else {
    int64_t extra_results = std::max<int64_t>(0, *n - kResultsIncludedInSearch);
    std::optional<int64_t> extra =
        checked_mul(extra_results, prices.search_extra_result_microdollars);
    if (!extra) return std::nullopt;
    search = checked_add(prices.search_microdollars, *extra);
  }
  std::optional<int64_t> contents = int64_t{0};
  if (types->summary) contents = checked_mul(*n, prices.summary_per_result_microdollars);
  if (!search || !contents) return std::nullopt;
  return CostEstimate{Microdollars(*search), Microdollars(*contents), true};
}

std::optional<CostEstimate> estimate_contents(const PriceTable& prices, const json::object& body) {
  std::optional<size_t> urls = string_array_size(body, "urls");
  std::optional<size_t> ids = string_array_size(body, "ids");
  std::optional<ContentTypes> types = requested_types(body);
  if (!urls || !ids || !types) return std::nullopt;
  // No page list at all is not a request Exa can serve; don't guess its size.
  if (!body.contains("urls") && !body.contains("ids")) return std::nullopt;
  int64_t pages = static_cast<int64_t>(*urls + *ids);         // each <= 1000
  int64_t type_count = std::max<int64_t>(1, types->count());  // text is the default
  std::optional<int64_t> per_page =
      checked_mul(type_count, prices.contents_per_page_per_type_microdollars);
  if (!per_page) return std::nullopt;
  std::optional<int64_t> contents = checked_mul(pages, *per_page);
  if (!contents) return std::nullopt;
  return CostEstimate{kZero, Microdollars(*contents), true};
}

}  // namespace

CostEstimate estimate_parts(const PriceTable& prices, std::string_view path,
                            const json::object& body) {
  std::optional<CostEstimate> e;
  if (path == "search" || path == "findSimilar") {
    e = estimate_search(prices, body);
  } else if (path == "contents") {
    e = estimate_contents(prices, body);
  } else if (path == "answer") {
    e = CostEstimate{Microdollars(prices.answer_microdollars), kZero, true};
  } else if (path == "context") {
    e = CostEstimate{Microdollars(prices.context_microdollars), kZero, true};
  }
  // The parts must also add up without overflow for estimate() to be exact.
  if (!e || !Microdollars::checked_add(e->search, e->contents)) return unpriced(prices);
  return *e;
}

Microdollars estimate(const PriceTable& prices, std::string_view path, const json::object& body) {
  CostEstimate e = estimate_parts(prices, path, body);
  return e.search + e.contents;  // estimate_parts checked this sum
}

std::string format_decimal_dollars(Microdollars amount) {
  int64_t v = amount.value();
  // Magnitude as unsigned so that INT64_MIN has one too.
  uint64_t mag = v < 0 ? uint64_t{0} - static_cast<uint64_t>(v) : static_cast<uint64_t>(v);
  std::string out = v < 0 ? "-" : "";
  out += std::to_string(mag / 1'000'000);
  uint64_t frac = mag % 1'000'000;
  if (frac != 0) {
    std::string digits = std::to_string(frac);
    digits.insert(0, 6 - digits.size(), '0');
    digits.erase(digits.find_last_not_of('0') + 1);
    out += '.';
    out += digits;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Decimal text -> µ$
// ---------------------------------------------------------------------------
namespace {

// Positions below are int64; a bound on the text keeps them far from overflow.
// No JSON number a real upstream writes comes anywhere near it.
constexpr size_t kNumberTextBytesMax = size_t{1} << 32;
// Exponents saturate here: past it the value is 0 or beyond int64 whatever
// the digits are (the text has fewer than 2^32 of them).
constexpr int64_t kExponentSaturation = int64_t{1} << 40;
// 10^19 > int64 max, so a result with more integer digits cannot fit.
constexpr int64_t kInt64DigitsMax = 19;
constexpr int kMicrosPerDollarDigits = 6;

bool is_digit(char c) { return c >= '0' && c <= '9'; }

}  // namespace

std::optional<Microdollars> parse_decimal_microdollars(std::string_view s) {
  if (s.size() > kNumberTextBytesMax) return std::nullopt;
  size_t i = 0;
  const size_t end = s.size();
  bool negative = false;
  if (i < end && s[i] == '-') {
    negative = true;
    ++i;
  }
  // Integer part: 0 | [1-9][0-9]*
  if (i >= end || !is_digit(s[i])) return std::nullopt;
  const size_t int_begin = i;
  if (s[i] == '0') {
    ++i;
  } else {
    while (i < end && is_digit(s[i])) ++i;
  }
  const size_t int_len = i - int_begin;
  // Fraction: (\.[0-9]+)?
  size_t frac_begin = i;
  size_t frac_len = 0;
  if (i < end && s[i] == '.') {
    ++i;
    frac_begin = i;
    while (i < end && is_digit(s[i])) ++i;
    frac_len = i - frac_begin;
    if (frac_len == 0) return std::nullopt;
  }
  // Exponent: ([eE][+-]?[0-9]+)?, saturating so that any number of digits is safe.
  int64_t exponent = 0;
  if (i < end && (s[i] == 'e' || s[i] == 'E')) {
    ++i;
    bool exponent_negative = false;
    if (i < end && (s[i] == '+' || s[i] == '-')) {
      exponent_negative = s[i] == '-';
      ++i;
    }
    const size_t exp_begin = i;
    while (i < end && is_digit(s[i])) {
      if (exponent < kExponentSaturation) exponent = exponent * 10 + (s[i] - '0');
      ++i;
    }
    if (i == exp_begin) return std::nullopt;
    if (exponent_negative) exponent = -exponent;
  }
  if (i != end) return std::nullopt;

  // The significant digits D = integer digits then fraction digits, read as
  // one integer; the value in µ$ is D * 10^(exponent - frac_len + 6).
  const int64_t n_digits = static_cast<int64_t>(int_len + frac_len);
  auto digit = [&](int64_t j) -> int {
    size_t at = j < static_cast<int64_t>(int_len) ? int_begin + static_cast<size_t>(j)
                                                  : frac_begin + static_cast<size_t>(j) - int_len;
    return s[at] - '0';
  };
  int64_t first = 0;  // first non-zero digit
  while (first < n_digits && digit(first) == 0) ++first;
  if (first == n_digits) return Microdollars(0);  // any zero, "-0" included
  const int64_t significant = n_digits - first;
  const int64_t shift = exponent - static_cast<int64_t>(frac_len) + kMicrosPerDollarDigits;
  // Number of digits of the result's integer part (its first digit is non-zero).
  const int64_t int_digits = significant + shift;
  if (int_digits > kInt64DigitsMax) return std::nullopt;
  if (int_digits < 0) return Microdollars(0);  // below half a µ$

  uint64_t magnitude = 0;  // < 10^19 < 2^64
  for (int64_t k = 0; k < int_digits; ++k) {
    magnitude = magnitude * 10 + static_cast<uint64_t>(k < significant ? digit(first + k) : 0);
  }
  // Ties away from zero: the first dropped digit alone decides (>= 5 rounds
  // the magnitude up, whatever follows it).
  if (int_digits < significant && digit(first + int_digits) >= 5) ++magnitude;

  constexpr uint64_t kInt64Max = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  if (negative) {
    if (magnitude > kInt64Max + 1) return std::nullopt;
    if (magnitude == kInt64Max + 1) return Microdollars(std::numeric_limits<int64_t>::min());
    return Microdollars(-static_cast<int64_t>(magnitude));
  }
  if (magnitude > kInt64Max) return std::nullopt;
  return Microdollars(static_cast<int64_t>(magnitude));
}

// ---------------------------------------------------------------------------
// costDollars.total from a response body
// ---------------------------------------------------------------------------
namespace {

namespace od = simdjson::ondemand;

// Bodies up to this size reuse one parser and buffer per thread; larger ones
// get their own, freed afterwards, so a rare big response doesn't pin memory.
constexpr size_t kReusedBufferBytesMax = size_t{1} << 20;

struct Scratch {
  od::parser parser;
  std::string buffer;  // the body plus simdjson's padding
};

constexpr ParsedCost kMissingCost{CostReading::kMissing, kZero};
constexpr ParsedCost kInvalidCost{CostReading::kInvalid, kZero};

// Copies text into the scratch buffer with the padding simdjson reads past the end.
simdjson::padded_string_view padded(std::string& buffer, std::string_view text) {
  buffer.reserve(text.size() + simdjson::SIMDJSON_PADDING);
  buffer.assign(text.data(), text.size());
  return simdjson::padded_string_view(buffer.data(), buffer.size(), buffer.capacity());
}

// True once every token of the document has been read (anything after the
// top-level value means the text was not one JSON document).
bool at_document_end(od::document& doc) {
  return doc.current_location().error() == simdjson::OUT_OF_BOUNDS;
}

ParsedCost cost_from_total(od::value& total, Microdollars max_cost) {
  od::json_type type;
  if (total.type().get(type) != simdjson::SUCCESS || type != od::json_type::number) {
    return kInvalidCost;
  }
  // The number's own text: simdjson would round it through a double, or
  // refuse 1e400 outright.
  std::string_view text = total.raw_json_token();
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t' || text.back() == '\n' ||
                           text.back() == '\r')) {
    text.remove_suffix(1);
  }
  std::optional<Microdollars> cost = parse_decimal_microdollars(text);
  if (!cost || cost->value() < 0 || *cost > max_cost) return kInvalidCost;
  return ParsedCost{CostReading::kValid, *cost};
}

// Reads `total` from a costDollars object. As with JSON.parse, the last of
// duplicate keys wins. nullopt if the document proves not to be JSON.
std::optional<ParsedCost> cost_from_object(od::object& object, Microdollars max_cost) {
  ParsedCost result = kMissingCost;
  for (auto field_result : object) {
    od::field field;
    if (std::move(field_result).get(field) != simdjson::SUCCESS) return std::nullopt;
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return std::nullopt;
    if (key != "total") continue;  // the iterator skips the unread value
    result = cost_from_total(field.value(), max_cost);
  }
  return result;
}

// costDollars given as a string holding the JSON object (as /context answers).
ParsedCost cost_from_encoded(std::string_view encoded, Microdollars max_cost) {
  Scratch inner;  // small; the outer parser is still in use
  od::document doc;
  if (inner.parser.iterate(padded(inner.buffer, encoded)).get(doc) != simdjson::SUCCESS) {
    return kInvalidCost;
  }
  od::object object;
  if (doc.get_object().get(object) != simdjson::SUCCESS) return kInvalidCost;
  std::optional<ParsedCost> cost = cost_from_object(object, max_cost);
  if (!cost || !at_document_end(doc)) return kInvalidCost;
  return *cost;
}

ParsedCost cost_from_body(Scratch& scratch, std::string_view body, Microdollars max_cost) {
  od::document doc;
  if (scratch.parser.iterate(padded(scratch.buffer, body)).get(doc) != simdjson::SUCCESS) {
    return kMissingCost;
  }
  od::object top;
  if (doc.get_object().get(top) != simdjson::SUCCESS) return kMissingCost;
  ParsedCost result = kMissingCost;
  for (auto field_result : top) {
    od::field field;
    if (std::move(field_result).get(field) != simdjson::SUCCESS) return kMissingCost;
    std::string_view key;
    if (field.unescaped_key().get(key) != simdjson::SUCCESS) return kMissingCost;
    if (key != "costDollars") continue;
    od::value& value = field.value();
    od::json_type type;
    if (value.type().get(type) != simdjson::SUCCESS) return kMissingCost;
    if (type == od::json_type::object) {
      od::object object;
      if (value.get_object().get(object) != simdjson::SUCCESS) return kMissingCost;
      std::optional<ParsedCost> cost = cost_from_object(object, max_cost);
      if (!cost) return kMissingCost;
      result = *cost;
    } else if (type == od::json_type::string) {
      std::string_view encoded;
      if (value.get_string().get(encoded) != simdjson::SUCCESS) return kMissingCost;
      result = cost_from_encoded(encoded, max_cost);
    } else {
      result = kInvalidCost;  // null, a number, an array: present but unusable
    }
  }
  // Trailing content after the object: the body is not JSON after all.
  if (!at_document_end(doc)) return kMissingCost;
  return result;
}

}  // namespace

namespace {

// Validates a whole JSON text without building it: simdjson's on-demand
// parser only checks what it visits, and a body that is not JSON has no
// usable cost, however its costDollars field looks. Numbers are not
// converted, so 1e400 stays valid JSON.
struct ValidatingHandler {
  constexpr static std::size_t max_object_size = std::size_t(-1);
  constexpr static std::size_t max_array_size = std::size_t(-1);
  constexpr static std::size_t max_key_size = std::size_t(-1);
  constexpr static std::size_t max_string_size = std::size_t(-1);
  using ec_t = boost::json::error_code;
  using sv = boost::json::string_view;
  bool on_document_begin(ec_t&) { return true; }
  bool on_document_end(ec_t&) { return true; }
  bool on_object_begin(ec_t&) { return true; }
  bool on_object_end(std::size_t, ec_t&) { return true; }
  bool on_array_begin(ec_t&) { return true; }
  bool on_array_end(std::size_t, ec_t&) { return true; }
  bool on_key_part(sv, std::size_t, ec_t&) { return true; }
  bool on_key(sv, std::size_t, ec_t&) { return true; }
  bool on_string_part(sv, std::size_t, ec_t&) { return true; }
  bool on_string(sv, std::size_t, ec_t&) { return true; }
  bool on_number_part(sv, ec_t&) { return true; }
  bool on_int64(std::int64_t, sv, ec_t&) { return true; }
  bool on_uint64(std::uint64_t, sv, ec_t&) { return true; }
  bool on_double(double, sv, ec_t&) { return true; }
  bool on_bool(bool, ec_t&) { return true; }
  bool on_null(ec_t&) { return true; }
  bool on_comment_part(sv, ec_t&) { return true; }
  bool on_comment(sv, ec_t&) { return true; }
};

bool is_json_text(std::string_view text) {
  boost::json::parse_options options;
  options.max_depth = 512;
  boost::json::basic_parser<ValidatingHandler> parser(options);
  boost::json::error_code ec;
  size_t n = parser.write_some(false, text.data(), text.size(), ec);
  return !ec && n == text.size() && parser.done();
}

}  // namespace

bool is_valid_json(std::string_view text) { return is_json_text(text); }

ParsedCost read_cost(std::string_view response_body, Microdollars max_cost) {
  try {
    if (!is_json_text(response_body)) return kMissingCost;
    if (response_body.size() <= kReusedBufferBytesMax) {
      thread_local Scratch scratch;
      return cost_from_body(scratch, response_body, max_cost);
    }
    Scratch scratch;
    return cost_from_body(scratch, response_body, max_cost);
  } catch (...) {
    // Only allocation can throw here; without a readable cost the caller
    // falls back to the estimate.
    return kMissingCost;
  }
}

}  // namespace tollgate::exa
