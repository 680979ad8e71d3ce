// The Exa upstream: its metered paths, the price table that estimates a
// request's cost before it is forwarded, and exact parsing of the cost Exa
// reports in `costDollars`. Pure functions; no I/O.
#pragma once

#include <boost/json/value.hpp>

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "common/money.h"

namespace tollgate::exa {

// The paths under /api/exa/ that are metered and forwarded.
inline constexpr std::array<std::string_view, 5> kPaths = {"search", "contents", "findSimilar",
                                                           "answer", "context"};
bool is_metered_path(std::string_view path);

// µ$ prices; the defaults follow Exa's published prices. Keys of [prices] in
// the config file have the same names.
struct PriceTable {
  int64_t search_microdollars = 7000;                  // up to 10 results, text+highlights included
  int64_t search_extra_result_microdollars = 1000;     // each result past 10
  int64_t summary_per_result_microdollars = 1000;      // contents.summary, per result/page
  int64_t contents_per_page_per_type_microdollars = 1000;
  int64_t answer_microdollars = 5000;
  int64_t deep_search_microdollars = 12000;            // type "deep"
  int64_t deep_reasoning_search_microdollars = 15000;  // type "deep-reasoning"
  int64_t context_microdollars = 5000;
  int64_t unknown_request_microdollars = 100000;       // shapes it cannot price
};

// Estimated cost of a request with this JSON object body on this path.
// search / findSimilar: by `type` ("deep", "deep-reasoning", else the search
// price plus each result past 10 of `numResults`), plus summaries per result.
// contents: pages (`urls` + `ids`) x content types asked for (text,
// highlights, summary; at least 1). answer, context: flat. A shape it cannot
// price (bad numResults, over 1000 results or pages, a wrong type for one of
// these fields, an unknown path) gets unknown_request_microdollars.
Microdollars estimate(const PriceTable& prices, std::string_view path, const boost::json::object& body);

// The same estimate split the way Exa splits costDollars: the search (or
// answer / context) part and the contents part (pages x types, or summaries).
// An unpriceable shape has priced == false and search == the ceiling
// (unknown_request_microdollars), contents == 0. estimate() is their sum.
struct CostEstimate {
  Microdollars search;
  Microdollars contents;
  bool priced = true;
};
CostEstimate estimate_parts(const PriceTable& prices, std::string_view path,
                            const boost::json::object& body);

// Exact decimal dollars of an amount, for writing costs as JSON numbers:
// 7000 -> "0.007", 1001 -> "0.001001", 10000000 -> "10", -5000 -> "-0.005".
std::string format_decimal_dollars(Microdollars amount);

// Exact conversion of a JSON number's text to µ$: nearest µ$, ties away from
// zero, no floating point. nullopt if not a JSON number or beyond int64.
std::optional<Microdollars> parse_decimal_microdollars(std::string_view number_text);

enum class CostReading {
  kValid,    // cost holds the upstream's figure
  kMissing,  // no costDollars / no total
  kInvalid,  // present but unusable (not a number, negative, unparsable, too large)
};
struct ParsedCost {
  CostReading reading = CostReading::kMissing;
  Microdollars cost;
};
// True if the whole text is one valid JSON value (numbers of any size).
bool is_valid_json(std::string_view text);

// Reads costDollars.total from an upstream response body. costDollars may be an
// object or a JSON string that encodes the object. A cost above max_cost is
// kInvalid. Never throws.
ParsedCost read_cost(std::string_view response_body, Microdollars max_cost);

}  // namespace tollgate::exa
