// `tollgate partitions ensure`, and the server's upkeep of the audit log's
// monthly partitions (PostgreSQL; with SQLite both do nothing).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "common/time.h"
#include "config/config.h"

namespace tollgate::cli {

// months_ahead < 0: [database] partition_months_ahead (default 3).
// Exit 0: the partitions are in place (or the backend has none); 2: error.
int partitions_ensure(const ConfigOverrides& overrides, int64_t months_ahead);

// Ensures the partitions once when constructed (before the server listens),
// then every 24 hours on its own thread, until destroyed. Failures are
// logged: a write never needs a partition (the default one takes it), and the
// next run moves such rows into place.
class PartitionMaintenance {
 public:
  PartitionMaintenance(const Config& config, const Clock& clock);
  ~PartitionMaintenance();
  PartitionMaintenance(const PartitionMaintenance&) = delete;
  PartitionMaintenance& operator=(const PartitionMaintenance&) = delete;

 private:
  void run_once();

  const Config& config_;
  const Clock& clock_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace tollgate::cli
