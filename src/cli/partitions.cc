// `tollgate partitions ensure` and PartitionMaintenance (see partitions.h).
#include "cli/partitions.h"

#include <fmt/format.h>

#include <chrono>

#include "common/log.h"
#include "storage/partitions.h"

namespace tollgate::cli {
namespace {

constexpr auto kMaintenanceInterval = std::chrono::hours(24);

Result<storage::PartitionReport> ensure(const Config& config, Timestamp now, int64_t months_ahead) {
  return storage::ensure_partitions(config.database_url, month_of(now), static_cast<int>(months_ahead));
}

}  // namespace

int partitions_ensure(const ConfigOverrides& overrides, int64_t months_ahead) {
  auto config = load_config(overrides);
  if (!config.ok()) {
    fmt::print(stderr, "error: {}\n", config.status().message());
    return 2;
  }
  if (months_ahead < 0) months_ahead = config->partition_months_ahead;
  const Month first = month_of(SystemClock().now());
  Month last = first;
  for (int64_t i = 0; i < months_ahead; ++i) last = last.next();
  auto report = ensure(*config, SystemClock().now(), months_ahead);
  if (!report.ok()) {
    fmt::print(stderr, "error: {}\n", report.status().message());
    return 2;
  }
  if (!report->partitioned) {
    fmt::print("this database (SQLite) keeps the audit log in one table: no partitions to create\n");
    return 0;
  }
  for (const auto& name : report->created) fmt::print("created {}\n", name);
  fmt::print("audit_log partitions for {} .. {} are in place ({} created, {} already present); "
             "{} rows moved out of audit_log_default\n",
             first.to_string(), last.to_string(), report->created.size(), report->present.size(),
             report->rows_moved);
  return 0;
}

PartitionMaintenance::PartitionMaintenance(const Config& config, const Clock& clock)
    : config_(config), clock_(clock) {
  if (config_.database_url.starts_with("sqlite:")) return;
  run_once();
  thread_ = std::thread([this] {
    std::unique_lock lk(mu_);
    while (!cv_.wait_for(lk, kMaintenanceInterval, [this] { return stopping_; })) {
      lk.unlock();
      run_once();
      lk.lock();
    }
  });
}

PartitionMaintenance::~PartitionMaintenance() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void PartitionMaintenance::run_once() {
  auto report = ensure(config_, clock_.now(), config_.partition_months_ahead);
  if (!report.ok()) {
    log::Event("partitions_failed").str("error", report.status().message()).emit(log::Level::kError);
    return;
  }
  for (const auto& name : report->created) log::Event("partition_created").str("name", name).emit(log::Level::kInfo);
  if (report->rows_moved > 0) {
    log::Event("partition_rows_moved").num("rows", report->rows_moved).emit(log::Level::kWarn);
  }
}

}  // namespace tollgate::cli
