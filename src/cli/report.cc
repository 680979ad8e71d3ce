#include <boost/json.hpp>

#include <fmt/format.h>

#include "cli/commands.h"
#include "common/ids.h"
#include "ledger/recompute.h"
#include "storage/store.h"

namespace tollgate::cli {

int report(const ConfigOverrides& overrides, const ReportOptions& options) {
  auto month = Month::parse(options.month);
  if (!month) {
    fmt::print(stderr, "error: --month must be YYYY-MM\n");
    return 2;
  }
  if (options.format != "table" && options.format != "csv" && options.format != "json") {
    fmt::print(stderr, "error: --format must be table, csv or json\n");
    return 2;
  }
  auto config = load_config(overrides);
  if (!config.ok()) {
    fmt::print(stderr, "error: {}\n", config.status().message());
    return 2;
  }
  storage::StoreOptions so;
  so.read_only = true;  // a report may run beside a serving process
  auto store = storage::open_store(config->database_url, so);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return 2;
  }
  std::vector<storage::CounterRow> rows;
  Status s = store.value()->run([&](storage::Transaction& tx) -> Status {
    TG_ASSIGN(rows, tx.list_counters_for_month(month->to_string()));
    return Status::Ok();
  });
  if (!s.ok()) {
    fmt::print(stderr, "error: {}\n", s.message());
    return 2;
  }
  if (options.format == "json") {
    boost::json::object o;
    o["month"] = month->to_string();
    boost::json::array arr;
    for (const auto& r : rows) {
      boost::json::object j;
      j["user"] = r.user_id;
      j["context"] = r.context;
      j["request_count"] = r.request_count;
      j["total_cost_microdollars"] = r.total_cost.value();
      j["total_free_microdollars"] = r.total_free.value();
      j["total_charged_microdollars"] = r.total_charged.value();
      arr.push_back(std::move(j));
    }
    o["rows"] = std::move(arr);
    fmt::print("{}\n", boost::json::serialize(o));
  } else if (options.format == "csv") {
    fmt::print("user,context,request_count,total_cost_microdollars,total_free_microdollars,total_charged_microdollars\n");
    for (const auto& r : rows) {
      fmt::print("{},{},{},{},{},{}\n", r.user_id, r.context, r.request_count, r.total_cost.value(),
                 r.total_free.value(), r.total_charged.value());
    }
  } else {
    fmt::print("{:<24} {:<24} {:>10} {:>16} {:>16} {:>16}\n", "user", "context", "requests", "cost_µ$", "free_µ$",
               "charged_µ$");
    int64_t n = 0, cost = 0, free = 0, charged = 0;
    for (const auto& r : rows) {
      fmt::print("{:<24} {:<24} {:>10} {:>16} {:>16} {:>16}\n", r.user_id, r.context, r.request_count,
                 r.total_cost.value(), r.total_free.value(), r.total_charged.value());
      n += r.request_count;
      cost += r.total_cost.value();
      free += r.total_free.value();
      charged += r.total_charged.value();
    }
    fmt::print("{:<24} {:<24} {:>10} {:>16} {:>16} {:>16}\n", "total", "", n, cost, free, charged);
  }
  return 0;
}

int recompute(const ConfigOverrides& overrides, const std::string& owner, bool fix) {
  if (!owner.empty() && !Owner::parse(owner)) {
    fmt::print(stderr, "error: --owner must be user:<id> or org:<id>\n");
    return 2;
  }
  auto config = load_config(overrides);
  if (!config.ok()) {
    fmt::print(stderr, "error: {}\n", config.status().message());
    return 2;
  }
  storage::StoreOptions so;
  so.read_only = !fix;  // checking only may run beside a serving process; fixing writes
  auto store = storage::open_store(config->database_url, so);
  if (!store.ok()) {
    fmt::print(stderr, "error: {}\n", store.status().message());
    return 2;
  }
  ledger::RecomputeReport report;
  Status s = store.value()->run(ledger::recompute(owner.empty() ? std::nullopt : std::optional<std::string>(owner),
                                                  SystemClock().now(), fix, report));
  if (!s.ok()) {
    fmt::print(stderr, "error: {}\n", s.message());
    return 2;
  }
  fmt::print("{}\n", ledger::recompute_report_json(report));
  // After --fix the adjustments are written: the books balance again.
  return report.drift.empty() || fix ? 0 : 1;
}

}  // namespace tollgate::cli
