// Plain HTTP request/response values passed between the Beast session code
// (http/server.cc, the only place that knows Beast's types) and the handlers.
#pragma once

#include <boost/asio/awaitable.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tollgate::http {

struct Header {
  std::string name;  // as received; compare case-insensitively
  std::string value;
};

bool iequals(std::string_view a, std::string_view b);

struct Request {
  std::string method;  // "POST", "GET", ...
  std::string target;  // path and query, as received
  std::vector<Header> headers;
  std::string body;
  bool body_too_large = false;  // the body exceeded the listener's limit; body is partial
  std::string remote;           // peer address, for logs

  std::optional<std::string_view> header(std::string_view name) const;
  std::string_view path() const;   // target without the query
  std::string_view query() const;  // after '?', or empty
};

struct Response {
  int status = 200;
  std::vector<Header> headers;  // content-length is added by the server
  std::string body;
  bool close = false;  // close the connection after this response

  void set(std::string name, std::string value);
  static Response json(int status, std::string body);
};

// Value of one query parameter (percent-decoded), if present.
std::optional<std::string> query_param(std::string_view query, std::string_view name);
// False if any parameter's percent-encoding is malformed.
bool query_well_formed(std::string_view query);

// A handler answers one request. It runs on the server's io_context; it must
// not block the thread (store and upstream calls are awaited).
class Handler {
 public:
  virtual ~Handler() = default;
  virtual boost::asio::awaitable<Response> handle(Request request) = 0;
};

}  // namespace tollgate::http
