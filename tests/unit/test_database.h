// A fresh, empty database for one test on a given backend: a SQLite file in a
// temporary directory, or a PostgreSQL database of its own on the server named
// by TOLLGATE_TEST_PG_URL (scripts/test.sh starts one). Removed when destroyed.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

#include "common/ids.h"
#include "common/status.h"
#include "storage/postgres/pg_store.h"

namespace tollgate::testing {

class TestDatabase {
 public:
  // Why this backend cannot run here, if it cannot (the test should skip).
  static std::optional<std::string> unavailable(const std::string& backend) {
    if (backend == "postgres" && !std::getenv("TOLLGATE_TEST_PG_URL")) {
      return "needs PostgreSQL: set TOLLGATE_TEST_PG_URL to a server URL (scripts/test.sh starts one)";
    }
    return std::nullopt;
  }

  TestDatabase(const std::string& backend, const std::string& prefix) {
    dir_ = std::filesystem::temp_directory_path() / ("tollgate-" + prefix + "-" + random_hex(6));
    std::filesystem::create_directories(dir_);
    if (backend == "sqlite") {
      url_ = "sqlite:" + (dir_ / "t.db").string();
    } else if (backend == "postgres") {
      pg_server_ = std::getenv("TOLLGATE_TEST_PG_URL");
      pg_db_ = "tollgate_" + prefix + "_" + random_hex(6);
      status_ = storage::pg_admin::create_database(pg_server_, pg_db_);
      url_ = storage::pg_admin::with_database(pg_server_, pg_db_);
    } else {
      status_ = InvalidArgument("unknown backend " + backend);
    }
  }
  ~TestDatabase() {
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
    if (!pg_db_.empty() && status_.ok()) (void)storage::pg_admin::drop_database(pg_server_, pg_db_);
  }
  TestDatabase(const TestDatabase&) = delete;
  TestDatabase& operator=(const TestDatabase&) = delete;

  const Status& status() const { return status_; }
  const std::string& url() const { return url_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  Status status_;
  std::filesystem::path dir_;
  std::string pg_server_, pg_db_, url_;
};

}  // namespace tollgate::testing
