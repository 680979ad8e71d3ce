// HTTP(S) client for the upstream and for `tollgate admin`. The upstream
// client keeps a small pool of keep-alive connections; one deadline covers
// connect, write and read of each exchange; the response body is limited.
// Use from the io_context's thread only.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "http/message.h"

namespace tollgate::http {

struct ClientResponse {
  enum class Outcome {
    kOk,           // status/headers/body hold the answer
    kUnreachable,  // could not connect, or the connection failed before an answer
    kTimeout,      // no complete answer within the deadline
    kTooLarge,     // the body exceeded the limit; status and headers are valid
  };
  Outcome outcome = Outcome::kUnreachable;
  int status = 0;
  std::vector<Header> headers;
  std::string body;
  std::string error;  // for logs
};

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
  std::string base_path;  // without trailing '/'
  static Result<Url> parse(const std::string& text);
};

class UpstreamClient {
 public:
  UpstreamClient(boost::asio::io_context& io, Url base, int64_t response_bytes_max, size_t pool_max = 64);
  ~UpstreamClient();
  // POST base_path + path with these headers and body, within timeout_ms.
  boost::asio::awaitable<ClientResponse> post(std::string path, std::vector<Header> headers, std::string body,
                                              int64_t timeout_ms);

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Blocking one-shot request for the command line (plain HTTP only).
Result<ClientResponse> blocking_request(const std::string& url, const std::string& method,
                                        const std::vector<Header>& headers, const std::string& body,
                                        int64_t timeout_ms);

}  // namespace tollgate::http
