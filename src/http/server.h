// An HTTP/1.1 listener: accept loop plus one coroutine per connection, with a
// deadline on every read and write and explicit header/body limits. Requests
// are handed to a Handler one at a time per connection (keep-alive).
// Runs on the io_context given; all members are used from that context.
#pragma once

#include <boost/asio/io_context.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "http/message.h"

namespace tollgate::http {

struct ListenerOptions {
  std::string address;  // "host:port"; port 0 picks a free one
  int64_t body_bytes_max = 1'048'576;
  int64_t header_bytes_max = 16 * 1024;
  int64_t read_timeout_ms = 30'000;     // per request, headers and body
  int64_t idle_timeout_ms = 60'000;     // keep-alive idle connections
  int64_t connections_max = 10'000;
};

class Server {
 public:
  Server(boost::asio::io_context& io, ListenerOptions options, Handler& handler);
  ~Server();
  Status start();      // binds and starts accepting
  void stop();         // stops accepting and closes idle connections
  uint16_t port() const;
  // Requests being handled right now (the handler has not answered yet).
  int64_t in_flight() const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Splits "host:port" (also "[v6]:port"); false if malformed.
bool split_host_port(const std::string& address, std::string& host, std::string& port);

}  // namespace tollgate::http
