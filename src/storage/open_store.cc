// Chooses the backend from the database URL: sqlite:PATH or postgresql://.
#include <fmt/format.h>

#include "storage/partitions.h"
#include "storage/postgres/pg_store.h"
#include "storage/sqlite/sqlite_store.h"
#include "storage/store.h"

namespace tollgate::storage {
namespace {

bool is_postgres(const std::string& url) {
  return url.starts_with("postgresql://") || url.starts_with("postgres://");
}

}  // namespace

Result<std::unique_ptr<Store>> open_store(const std::string& url, const StoreOptions& options) {
  if (url.starts_with("sqlite:")) {
    std::string path = url.substr(7);
    if (path.starts_with("//")) path = path.substr(2);
    if (path.empty()) return InvalidArgument("database url sqlite: needs a path, e.g. sqlite:tollgate.db");
    return open_sqlite_store(path, options);
  }
  if (is_postgres(url)) return open_pg_store(url, options);
  return InvalidArgument(
      fmt::format("unsupported database url '{}': use sqlite:PATH or postgresql://USER@HOST:PORT/DBNAME", url));
}

Result<PartitionReport> ensure_partitions(const std::string& url, Month first, int months_ahead) {
  if (is_postgres(url)) return ensure_pg_partitions(url, first, months_ahead);
  if (url.starts_with("sqlite:")) {
    PartitionReport r;
    r.partitioned = false;
    return r;
  }
  return InvalidArgument(fmt::format("unsupported database url '{}'", url));
}

}  // namespace tollgate::storage
