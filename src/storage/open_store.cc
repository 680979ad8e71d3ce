// Chooses the backend from the database URL: sqlite:PATH or postgresql://.
#include <fmt/format.h>

#include <algorithm>

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

std::string redacted_url(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return url;
  std::string out = url;
  // scheme://user:password@host...: the password ends at the last '@' of the authority.
  const size_t authority = scheme_end + 3;
  const size_t authority_end = std::min(out.find('/', authority), out.find('?', authority));
  const size_t at = out.rfind('@', authority_end);
  const size_t colon = out.find(':', authority);
  if (at != std::string::npos && at >= authority && colon != std::string::npos && colon < at) {
    out = out.substr(0, colon + 1) + "***" + out.substr(at);
  }
  // ...?password=secret&...
  const size_t query = out.find('?');
  for (size_t p = query; p != std::string::npos && p < out.size(); p = out.find('&', p + 1)) {
    if (out.compare(p + 1, 9, "password=") == 0) {
      const size_t value = p + 10;
      out = out.substr(0, value) + "***" + out.substr(std::min(out.find('&', value), out.size()));
    }
  }
  return out;
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
