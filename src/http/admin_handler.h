// The admin API of SPEC section 7 on its own listener, behind the admin token:
// users, organizations, members, API keys, grants, accounts, usage, the usage
// log and metrics. Validates every input before anything is written.
#pragma once

#include "common/time.h"
#include "config/config.h"
#include "http/message.h"
#include "http/metrics.h"
#include "ledger/self_check.h"
#include "storage/store.h"

namespace tollgate::http {

class AdminHandler final : public Handler {
 public:
  AdminHandler(const Config& config, storage::Store& store, const Clock& clock, Metrics& metrics,
               ledger::SelfCheck& self_check);
  boost::asio::awaitable<Response> handle(Request request) override;

 private:
  boost::asio::awaitable<Response> route(Request& request);
  const Config& config_;
  storage::Store& store_;
  const Clock& clock_;
  Metrics& metrics_;
  ledger::SelfCheck& self_check_;
};

}  // namespace tollgate::http
