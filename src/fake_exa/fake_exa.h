// A simulated Exa upstream (`tollgate fake-exa`) for demos, integration tests
// and benchmarks. It answers the five metered paths (POST /search, /contents,
// /findSimilar, /answer, /context) with Exa-shaped JSON whose costDollars is
// priced by the same PriceTable the proxy estimates with, so that by default
// the reported cost equals exa::estimate().
//
// Test controls ride in the request body under "fake_exa" (an object; every
// field optional), applied to that request only:
//   delay_ms (int)       wait this long (a timer, not a blocked thread) first
//   status (int)         HTTP status, 200..599 (default 200). A non-2xx answer
//                        is an error body, with costDollars only if cost or
//                        cost_dollars is given too
//   cost (string)        raw JSON text written as costDollars.total, verbatim
//   cost_dollars (string) raw JSON text written as the whole costDollars value
//   omit_cost (bool)     no costDollars at all
//   body (string)        the whole response body, verbatim
//   body_bytes (int)     pad the generated body to at least this many bytes
//   reject_stream (bool) a body with a "stream" field at all gets 400
// A malformed control is answered 400 so that a broken test is obvious.
//
// Observability: GET /_fake/calls -> {"calls": N}, GET /_fake/requests -> the
// count and the last 200 requests received on metered paths (path, headers
// with lowercased names, body as text), POST /_fake/reset clears both. Every
// POST to a metered path counts, whatever it is answered, from its arrival.
//
// Thread-safety: handle() may run concurrently on any number of threads.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <atomic>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "exa/exa.h"
#include "http/message.h"

namespace tollgate::fake_exa {

// Bounds on what a control may ask for and on what is kept per request.
inline constexpr int64_t kDelayMsMax = 600'000;
inline constexpr int64_t kBodyBytesMax = int64_t{64} << 20;
inline constexpr size_t kRecordedRequestsMax = 200;
inline constexpr size_t kRecordedBodyBytesMax = size_t{64} << 10;  // longer bodies are cut
inline constexpr int64_t kResultsMax = 100;
inline constexpr size_t kContentsPagesMax = 1000;

class FakeExa final : public http::Handler {
 public:
  explicit FakeExa(exa::PriceTable prices = {});

  boost::asio::awaitable<http::Response> handle(http::Request request) override;

  // The figures /_fake/calls reports, for in-process tests.
  int64_t calls() const;
  void reset();

 private:
  struct Recorded {
    std::string path;
    std::vector<http::Header> headers;  // names lowercased
    std::string body;                   // at most kRecordedBodyBytesMax bytes
    size_t body_bytes = 0;              // size of the body as received
  };
  // A response decided without I/O, and how long to wait before sending it.
  struct Planned {
    http::Response response;
    int64_t delay_ms = 0;
  };

  Planned plan(const http::Request& request);
  Planned plan_metered(const http::Request& request, std::string_view path);
  void record(const http::Request& request);
  std::string requests_json() const;
  std::string next_request_id();

  const exa::PriceTable prices_;
  const uint64_t request_id_seed_;
  std::atomic<uint64_t> request_counter_{0};

  mutable std::mutex mu_;
  int64_t calls_ = 0;            // guarded by mu_
  std::deque<Recorded> recent_;  // guarded by mu_; newest last
};

}  // namespace tollgate::fake_exa
