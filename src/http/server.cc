#include "http/server.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include <chrono>
#include <list>
#include "common/log.h"

namespace tollgate::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

bool split_host_port(const std::string& address, std::string& host, std::string& port) {
  auto colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return false;
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);
  if (host.empty()) host = "0.0.0.0";
  if (port.size() > 5) return false;
  for (char c : port) {
    if (c < '0' || c > '9') return false;
  }
  return std::stoi(port) <= 65535;
}

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(asio::io_context& io, ListenerOptions o, Handler& h) : io(io), options(std::move(o)), handler(h), acceptor(io) {}

  asio::io_context& io;
  ListenerOptions options;
  Handler& handler;
  tcp::acceptor acceptor;
  std::atomic<int64_t> connections{0};
  std::atomic<int64_t> in_flight{0};
  bool stopping = false;
  bool accept_failing = false;
  // Streams of idle connections, closed on stop so shutdown does not wait for them.
  std::list<beast::tcp_stream*> idle;

  asio::awaitable<void> accept_loop() {
    auto self = shared_from_this();
    while (!stopping) {
      beast::error_code ec;
      tcp::socket socket = co_await acceptor.async_accept(asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (stopping || ec == asio::error::operation_aborted) co_return;
        // Out of file descriptors (or a similar resource): back off instead of
        // spinning, and log once per episode.
        if (!accept_failing) log::Event("accept_failed").str("error", ec.message()).emit(log::Level::kWarn);
        accept_failing = true;
        asio::steady_timer pause(io, std::chrono::milliseconds(50));
        co_await pause.async_wait(asio::redirect_error(asio::use_awaitable, ec));
        continue;
      }
      accept_failing = false;
      if (connections.load() >= options.connections_max) {
        socket.close(ec);  // over the limit: refuse rather than queue without bound
        continue;
      }
      asio::co_spawn(io, session(std::move(socket)), asio::detached);
    }
  }

  static Response error_response(int status, std::string_view message) {
    Response r = Response::json(status, std::string("{\"error\":\"") + std::string(message) + "\"}");
    r.close = true;
    return r;
  }

  asio::awaitable<void> session(tcp::socket socket) {
    auto self = shared_from_this();
    connections.fetch_add(1);
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    std::string remote;
    {
      beast::error_code ec;
      auto ep = stream.socket().remote_endpoint(ec);
      if (!ec) remote = ep.address().to_string();
    }
    for (;;) {
      beast::error_code ec;
      bhttp::request_parser<bhttp::string_body> parser;
      parser.header_limit(static_cast<uint32_t>(options.header_bytes_max));
      parser.body_limit(static_cast<uint64_t>(options.body_bytes_max));
      // Idle wait for the next request's headers.
      stream.expires_after(std::chrono::milliseconds(buffer.size() ? options.read_timeout_ms : options.idle_timeout_ms));
      auto idle_it = idle.insert(idle.end(), &stream);
      co_await bhttp::async_read_header(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
      idle.erase(idle_it);
      // A Content-Length over the limit fails already at the header; the
      // handler still answers (auth errors take precedence over 413).
      bool too_large = ec == bhttp::error::body_limit;
      if (too_large) ec = {};
      if (ec) {
        if (ec == bhttp::error::header_limit) {
          co_await write(stream, error_response(431, "request headers too large"), 11);
        } else if (ec != bhttp::error::end_of_stream && ec != beast::error::timeout &&
                   ec != asio::error::operation_aborted && ec != asio::error::connection_reset &&
                   ec != asio::error::eof) {
          co_await write(stream, error_response(400, "malformed HTTP request"), 11);
        }
        break;
      }
      if (stopping) break;
      auto& hdr = parser.get();
      if (auto it = hdr.find(bhttp::field::expect); it != hdr.end() && iequals(it->value(), "100-continue")) {
        bhttp::response<bhttp::empty_body> cont{bhttp::status::continue_, 11};
        co_await bhttp::async_write(stream, cont, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
      }
      Request req;
      if (!too_large && !parser.is_done()) {
        stream.expires_after(std::chrono::milliseconds(options.read_timeout_ms));
        co_await bhttp::async_read(stream, buffer, parser, asio::redirect_error(asio::use_awaitable, ec));
        if (ec == bhttp::error::body_limit) {
          too_large = true;
        } else if (ec) {
          if (ec != beast::error::timeout && ec != bhttp::error::end_of_stream && ec != asio::error::eof &&
              ec != asio::error::connection_reset) {
            co_await write(stream, error_response(400, "malformed HTTP request"), 11);
          }
          break;
        }
      }
      auto msg = parser.release();
      unsigned version = msg.version();
      bool keep_alive = msg.keep_alive() && !too_large;
      req.method = std::string(msg.method_string());
      req.target = std::string(msg.target());
      req.headers.reserve(16);
      for (const auto& f : msg) req.headers.push_back({std::string(f.name_string()), std::string(f.value())});
      req.body = std::move(msg.body());
      req.body_too_large = too_large;
      req.remote = remote;
      stream.expires_never();  // the handler may wait on the upstream for long
      in_flight.fetch_add(1);
      Response res;
      try {
        res = co_await handler.handle(std::move(req));
      } catch (const std::exception& e) {
        // A handler bug must not take the connection bookkeeping down with it.
        log::Event("handler_exception").str("error", e.what()).emit(log::Level::kError);
        res = error_response(500, "internal error");
      }
      in_flight.fetch_sub(1);
      if (res.close || stopping) keep_alive = false;
      res.close = !keep_alive;
      bool ok = co_await write(stream, std::move(res), version);
      if (!ok || !keep_alive) break;
    }
    beast::error_code ec;
    stream.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream.close();
    connections.fetch_sub(1);
  }

  asio::awaitable<bool> write(beast::tcp_stream& stream, Response res, unsigned version) {
    bhttp::response<bhttp::string_body> out{static_cast<bhttp::status>(res.status), version};
    out.set(bhttp::field::server, "tollgate");
    for (auto& h : res.headers) out.set(h.name, h.value);
    out.body() = std::move(res.body);
    out.keep_alive(!res.close);
    out.prepare_payload();
    beast::error_code ec;
    stream.expires_after(std::chrono::milliseconds(options.read_timeout_ms));
    co_await bhttp::async_write(stream, out, asio::redirect_error(asio::use_awaitable, ec));
    co_return !ec;
  }
};

Server::Server(asio::io_context& io, ListenerOptions options, Handler& handler)
    : impl_(std::make_shared<Impl>(io, std::move(options), handler)) {}

Server::~Server() = default;

Status Server::start() {
  std::string host, port;
  if (!split_host_port(impl_->options.address, host, port)) {
    return InvalidArgument("listen address must be HOST:PORT, got '" + impl_->options.address + "'");
  }
  beast::error_code ec;
  auto addr = asio::ip::make_address(host, ec);
  if (ec) return InvalidArgument("listen address must be a numeric IP, got '" + host + "'");
  tcp::endpoint ep(addr, static_cast<uint16_t>(std::stoi(port)));
  auto& a = impl_->acceptor;
  a.open(ep.protocol(), ec);
  if (!ec) a.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) a.bind(ep, ec);
  if (!ec) a.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Unavailable("cannot listen on " + impl_->options.address + ": " + ec.message());
  asio::co_spawn(impl_->io, impl_->accept_loop(), asio::detached);
  return Status::Ok();
}

void Server::stop() {
  auto impl = impl_;
  asio::post(impl->io, [impl] {
    impl->stopping = true;
    beast::error_code ec;
    impl->acceptor.close(ec);
    for (auto* s : impl->idle) s->socket().close(ec);
  });
}

uint16_t Server::port() const {
  beast::error_code ec;
  auto ep = impl_->acceptor.local_endpoint(ec);
  return ec ? 0 : ep.port();
}

int64_t Server::in_flight() const { return impl_->in_flight.load(); }

}  // namespace tollgate::http
