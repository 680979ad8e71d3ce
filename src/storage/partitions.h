// Maintenance of the audit log's monthly partitions (`tollgate partitions
// ensure`, and the server at start-up and daily). Only PostgreSQL partitions
// the audit log; for SQLite this reports that there is nothing to do.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "common/time.h"

namespace tollgate::storage {

struct PartitionReport {
  bool partitioned = true;             // false: this backend has no partitions
  std::vector<std::string> created;    // partitions made by this run, oldest first
  std::vector<std::string> present;    // partitions of the requested months that existed already
  int64_t rows_moved = 0;              // rows moved out of the default partition
};

// For `first` and the `months_ahead` months after it (and any month with rows
// waiting in the default partition). Dispatches on the database URL.
Result<PartitionReport> ensure_partitions(const std::string& url, Month first, int months_ahead);

}  // namespace tollgate::storage
