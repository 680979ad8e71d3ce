// The metered proxy: the request lifecycle of SPEC section 2 for
// POST /api/exa/{path}. Authenticates, validates, estimates, admits with a
// durable hold, forwards with the operator's key, reads the cost, settles
// exactly once and answers with receipt headers. Runs on the server's
// io_context; the upstream call and settlement complete even if the client
// goes away (the handler coroutine is never cancelled by the session).
#pragma once

#include "common/time.h"
#include "config/config.h"
#include "http/client.h"
#include "http/message.h"
#include "http/metrics.h"
#include "storage/store.h"

namespace tollgate::http {

class ProxyHandler final : public Handler {
 public:
  ProxyHandler(const Config& config, storage::Store& store, UpstreamClient& upstream, const Clock& clock,
               Metrics& metrics);
  boost::asio::awaitable<Response> handle(Request request) override;

 private:
  const Config& config_;
  storage::Store& store_;
  UpstreamClient& upstream_;
  const Clock& clock_;
  Metrics& metrics_;
};

// Answers /healthz and /readyz (both listeners); nullopt for other paths.
boost::asio::awaitable<std::optional<Response>> health_check(const Request& request, storage::Store& store);

}  // namespace tollgate::http
