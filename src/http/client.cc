#include "http/client.h"

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/redirect_error.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include <chrono>
#include <deque>
#include <map>
#include <sys/socket.h>
#include <fmt/format.h>
#include <variant>

namespace tollgate::http {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = asio::ip::tcp;

Result<Url> Url::parse(const std::string& text) {
  Url u;
  std::string rest;
  if (text.starts_with("http://")) {
    rest = text.substr(7);
  } else if (text.starts_with("https://")) {
    u.tls = true;
    rest = text.substr(8);
  } else {
    return InvalidArgument("url must start with http:// or https://: '" + text + "'");
  }
  auto slash = rest.find('/');
  std::string hostport = rest.substr(0, slash);
  u.base_path = slash == std::string::npos ? "" : rest.substr(slash);
  while (!u.base_path.empty() && u.base_path.back() == '/') u.base_path.pop_back();
  u.port = u.tls ? "443" : "80";
  if (hostport.starts_with('[')) {  // [v6]:port
    auto close = hostport.find(']');
    if (close == std::string::npos) return InvalidArgument("url has an unclosed '[': '" + text + "'");
    u.host = hostport.substr(1, close - 1);
    if (close + 1 < hostport.size()) {
      if (hostport[close + 1] != ':') return InvalidArgument("url has junk after ']': '" + text + "'");
      u.port = hostport.substr(close + 2);
    }
  } else if (auto colon = hostport.rfind(':'); colon != std::string::npos) {
    u.host = hostport.substr(0, colon);
    u.port = hostport.substr(colon + 1);
  } else {
    u.host = hostport;
  }
  if (u.host.empty() || u.port.empty()) return InvalidArgument("url has no host: '" + text + "'");
  return u;
}

namespace {

using PlainStream = beast::tcp_stream;
using TlsStream = beast::ssl_stream<beast::tcp_stream>;

beast::tcp_stream& lowest(PlainStream& s) { return s; }
beast::tcp_stream& lowest(TlsStream& s) { return beast::get_lowest_layer(s); }

}  // namespace

struct UpstreamClient::Impl : std::enable_shared_from_this<UpstreamClient::Impl> {
  Impl(asio::io_context& io, Url base, int64_t limit, size_t pool_max)
      : io(io), base(std::move(base)), limit(limit), pool_max(pool_max), tls_ctx(ssl::context::tls_client) {
    tls_ctx.set_default_verify_paths();
    tls_ctx.set_verify_mode(ssl::verify_peer);
  }

  asio::io_context& io;
  Url base;
  int64_t limit;
  size_t pool_max;
  ssl::context tls_ctx;
  std::deque<std::unique_ptr<PlainStream>> plain_pool;
  std::deque<std::unique_ptr<TlsStream>> tls_pool;

  // Idle keep-alive connections older than this are not reused: servers close
  // idle connections after a while, and a request must not race that close.
  static constexpr auto kIdleMax = std::chrono::seconds(15);
  std::map<const beast::tcp_stream*, std::chrono::steady_clock::time_point> idle_since;

  bool usable(beast::tcp_stream& s) {
    auto it = idle_since.find(&s);
    bool fresh = it != idle_since.end() && std::chrono::steady_clock::now() - it->second < kIdleMax;
    if (it != idle_since.end()) idle_since.erase(it);
    if (!fresh || !s.socket().is_open()) return false;
    // Nothing may be readable on an idle connection; 0 bytes means the peer closed it.
    char probe;
    ssize_t n = ::recv(s.socket().native_handle(), &probe, 1, MSG_PEEK | MSG_DONTWAIT);
    return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
  }

  asio::awaitable<void> connect(beast::tcp_stream& s, beast::error_code& ec) {
    tcp::resolver resolver(io);
    auto results = co_await resolver.async_resolve(base.host, base.port, asio::redirect_error(asio::use_awaitable, ec));
    if (ec) co_return;
    co_await s.async_connect(results, asio::redirect_error(asio::use_awaitable, ec));
    if (!ec) s.socket().set_option(tcp::no_delay(true), ec);
  }

  template <typename Stream>
  asio::awaitable<ClientResponse> exchange(std::deque<std::unique_ptr<Stream>>& pool, std::string path,
                                           std::vector<Header> headers, std::string body, int64_t timeout_ms) {
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, base.base_path + path, 11};
    req.set(bhttp::field::host, base.host);
    for (auto& h : headers) req.set(h.name, h.value);
    req.body() = std::move(body);
    req.keep_alive(true);
    req.prepare_payload();
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);

    // A pooled connection may have been closed by the peer. Such connections
    // are dropped before use (idle too long, or the peer's FIN already read);
    // a write that fails on a reused connection is retried once on a fresh
    // one. Once a request is written it is never sent again: the upstream may
    // have run (and billed) it.
    for (int attempt = 0; attempt < 2; ++attempt) {
      std::unique_ptr<Stream> s;
      bool reused = false;
      while (!pool.empty() && !s) {
        auto idle = std::move(pool.back());
        pool.pop_back();
        if (usable(lowest(*idle))) {
          s = std::move(idle);
          reused = true;
        }
      }
      if (!s) {
        if constexpr (std::is_same_v<Stream, TlsStream>) {
          s = std::make_unique<Stream>(io, tls_ctx);
        } else {
          s = std::make_unique<Stream>(io);
        }
      }
      ClientResponse out;
      beast::error_code ec;
      lowest(*s).expires_at(deadline);
      if (!reused) {
        co_await connect(lowest(*s), ec);
        if constexpr (std::is_same_v<Stream, TlsStream>) {
          if (!ec) {
            if (!SSL_set_tlsext_host_name(s->native_handle(), base.host.c_str())) {
              ec = beast::error_code(static_cast<int>(::ERR_get_error()), asio::error::get_ssl_category());
            } else {
              s->set_verify_callback(ssl::host_name_verification(base.host));
              co_await s->async_handshake(ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
            }
          }
        }
        if (ec) {
          out.outcome = ec == beast::error::timeout ? ClientResponse::Outcome::kTimeout
                                                    : ClientResponse::Outcome::kUnreachable;
          out.error = ec.message();
          co_return out;
        }
      }
      co_await bhttp::async_write(*s, req, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) {
        if (reused && ec != beast::error::timeout) continue;
        out.outcome = ec == beast::error::timeout ? ClientResponse::Outcome::kTimeout
                                                  : ClientResponse::Outcome::kUnreachable;
        out.error = ec.message();
        co_return out;
      }
      beast::flat_buffer buffer;
      std::optional<bhttp::response_parser<bhttp::string_body>> parser_slot;
      // Interim 1xx answers (100 Continue, 103 Early Hints) precede the real
      // one; the final answer is what gets charged and relayed.
      for (int interim = 0; interim < 8; ++interim) {
        parser_slot.emplace();
        parser_slot->body_limit(static_cast<uint64_t>(limit));
        parser_slot->header_limit(64 * 1024);
        co_await bhttp::async_read(*s, buffer, *parser_slot, asio::redirect_error(asio::use_awaitable, ec));
        if (ec) break;
        int st = static_cast<int>(parser_slot->get().result_int());
        if (st < 100 || st >= 200 || st == 101) break;
      }
      auto& parser = *parser_slot;
      if (ec == bhttp::error::body_limit) {
        out.outcome = ClientResponse::Outcome::kTooLarge;
        out.status = static_cast<int>(parser.get().result_int());
        co_return out;
      }
      if (ec) {
        out.outcome = ec == beast::error::timeout ? ClientResponse::Outcome::kTimeout
                                                  : ClientResponse::Outcome::kUnreachable;
        out.error = ec.message();
        co_return out;
      }
      auto msg = parser.release();
      out.outcome = ClientResponse::Outcome::kOk;
      out.status = static_cast<int>(msg.result_int());
      for (const auto& f : msg) out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
      out.body = std::move(msg.body());
      if (msg.keep_alive() && pool.size() < pool_max) {
        lowest(*s).expires_never();
        idle_since[&lowest(*s)] = std::chrono::steady_clock::now();
        pool.push_back(std::move(s));
      }
      co_return out;
    }
    ClientResponse out;
    out.outcome = ClientResponse::Outcome::kUnreachable;
    out.error = "connection closed";
    co_return out;
  }
};

UpstreamClient::UpstreamClient(asio::io_context& io, Url base, int64_t response_bytes_max, size_t pool_max)
    : impl_(std::make_shared<Impl>(io, std::move(base), response_bytes_max, pool_max)) {}

UpstreamClient::~UpstreamClient() = default;

asio::awaitable<ClientResponse> UpstreamClient::post(std::string path, std::vector<Header> headers, std::string body,
                                                     int64_t timeout_ms) {
  auto impl = impl_;
  if (impl->base.tls) {
    co_return co_await impl->exchange(impl->tls_pool, std::move(path), std::move(headers), std::move(body), timeout_ms);
  }
  co_return co_await impl->exchange(impl->plain_pool, std::move(path), std::move(headers), std::move(body), timeout_ms);
}

Result<ClientResponse> blocking_request(const std::string& url_text, const std::string& method,
                                        const std::vector<Header>& headers, const std::string& body,
                                        int64_t timeout_ms) {
  auto url = Url::parse(url_text);
  if (!url.ok()) return url.status();
  if (url->tls) return InvalidArgument("https is not supported here; use http://");
  asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  tcp::resolver resolver(io);
  auto results = resolver.resolve(url->host, url->port, ec);
  if (ec) return Unavailable(fmt::format("cannot resolve {}: {}", url->host, ec.message()));
  stream.expires_after(std::chrono::milliseconds(timeout_ms));
  stream.connect(results, ec);
  if (ec) return Unavailable(fmt::format("cannot connect to {}:{}: {}", url->host, url->port, ec.message()));
  bhttp::request<bhttp::string_body> req{bhttp::string_to_verb(method), url->base_path.empty() ? "/" : url->base_path,
                                         11};
  req.set(bhttp::field::host, url->host);
  for (const auto& h : headers) req.set(h.name, h.value);
  req.body() = body;
  req.keep_alive(false);
  req.prepare_payload();
  bhttp::write(stream, req, ec);
  if (ec) return Unavailable(fmt::format("write failed: {}", ec.message()));
  beast::flat_buffer buffer;
  bhttp::response_parser<bhttp::string_body> parser;
  parser.body_limit(64 * 1024 * 1024);
  bhttp::read(stream, buffer, parser, ec);
  if (ec) return Unavailable(fmt::format("read failed: {}", ec.message()));
  auto msg = parser.release();
  ClientResponse out;
  out.outcome = ClientResponse::Outcome::kOk;
  out.status = static_cast<int>(msg.result_int());
  for (const auto& f : msg) out.headers.push_back({std::string(f.name_string()), std::string(f.value())});
  out.body = std::move(msg.body());
  return out;
}

}  // namespace tollgate::http
