// Monthly partitions of the PostgreSQL audit log (see pg_store.h).
//
// A partition is created in one transaction that serializes with other
// instances' maintenance (advisory lock) and with writes routed to the
// default partition (EXCLUSIVE lock on it, which leaves reads and writes of
// the other partitions alone): create the table, move the month's rows out
// of the default partition into it, then ATTACH it. A CHECK constraint that
// matches the range lets ATTACH skip scanning the new table; ATTACH takes
// only SHARE UPDATE EXCLUSIVE on audit_log, so requests keep settling.
// lock_timeout keeps maintenance from queueing the hot path behind it; a run
// that times out is repeated by the next one.
#include <fmt/format.h>

#include <set>

#include "storage/postgres/pg_conn.h"
#include "storage/postgres/pg_store.h"
#include "storage/postgres/schema.h"

namespace tollgate::storage {
namespace {

constexpr int kMonthsAheadMax = 120;
constexpr int kDefaultMonthsMax = 1200;  // bound on the months found waiting in the default partition

std::string partition_name(Month m) { return fmt::format("audit_log_{:04}_{:02}", m.year, m.month); }

// Creates one month's partition unless it exists. Returns whether it created
// it, and adds the rows it moved.
Result<bool> ensure_month(pg::Connection& c, Month m, int64_t& rows_moved) {
  const std::string name = partition_name(m);
  const int64_t lo = m.start().micros;
  const int64_t hi = m.next().start().micros;
  TG_TRY(c.exec(fmt::format("BEGIN; SET LOCAL lock_timeout = 2000; SELECT pg_advisory_xact_lock({})",
                            pg_schema::kPartitionLockKey)));
  auto rollback = [&c](Status s) {
    (void)c.exec("ROLLBACK");
    return s;
  };
  auto exists = c.query_once(
      "SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
      "WHERE i.inhparent = 'audit_log'::regclass AND c.relname = $1",
      pg::Params().text(name));
  if (!exists.ok()) return rollback(exists.status());
  if (exists->rows() > 0) {
    TG_TRY(c.exec("COMMIT"));
    return false;
  }
  // Identifiers and bounds are made here from integers; DDL takes no
  // parameters. The data move below is parameterized.
  const std::string table = pg::quote_ident(name);
  const std::string check = pg::quote_ident(name + "_range");
  Status s = c.exec(fmt::format(
      "LOCK TABLE audit_log_default IN EXCLUSIVE MODE; "
      "CREATE TABLE {0} (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS); "
      "ALTER TABLE {0} ADD CONSTRAINT {1} CHECK (arrived_at_us >= {2} AND arrived_at_us < {3})",
      table, check, lo, hi));
  if (!s.ok()) return rollback(s);
  auto moved = c.query_once(fmt::format("WITH moved AS (DELETE FROM audit_log_default "
                                        "WHERE arrived_at_us >= $1 AND arrived_at_us < $2 RETURNING *) "
                                        "INSERT INTO {} SELECT * FROM moved",
                                        table),
                            pg::Params().i64(lo).i64(hi));
  if (!moved.ok()) return rollback(moved.status());
  const std::string tag = moved->command();  // "INSERT 0 <n>"
  const int64_t n = tag.rfind(' ') == std::string::npos ? 0 : std::stoll(tag.substr(tag.rfind(' ') + 1));
  s = c.exec(fmt::format("ALTER TABLE audit_log ATTACH PARTITION {0} FOR VALUES FROM ({2}) TO ({3}); "
                         "ALTER TABLE {0} DROP CONSTRAINT {1}; COMMIT",
                         table, check, lo, hi));
  if (!s.ok()) return rollback(s);
  rows_moved += n;
  return true;
}

// Months of the rows waiting in the default partition, oldest first.
Result<std::set<Month>> months_in_default(pg::Connection& c) {
  std::set<Month> out;
  int64_t from = INT64_MIN;
  for (int i = 0; i < kDefaultMonthsMax; ++i) {
    TG_ASSIGN(auto r, c.query_once("SELECT MIN(arrived_at_us) FROM audit_log_default WHERE arrived_at_us >= $1",
                                   pg::Params().i64(from)));
    if (r.null(0, 0)) break;
    Month m = month_of(Timestamp{r.i64(0, 0)});
    out.insert(m);
    from = m.next().start().micros;
  }
  return out;
}

}  // namespace

Result<PartitionReport> ensure_pg_partitions(const std::string& url, Month first, int months_ahead) {
  if (months_ahead < 0 || months_ahead > kMonthsAheadMax) {
    return InvalidArgument(fmt::format("months ahead must be 0..{}", kMonthsAheadMax));
  }
  TG_ASSIGN(auto conn, pg::Connection::open(url, pg::SessionSettings{}));
  std::set<Month> months;
  Month m = first;
  for (int i = 0; i <= months_ahead; ++i, m = m.next()) months.insert(m);
  std::set<Month> requested = months;
  TG_ASSIGN(auto waiting, months_in_default(*conn));
  months.insert(waiting.begin(), waiting.end());

  PartitionReport report;
  for (Month month : months) {
    TG_ASSIGN(bool created, ensure_month(*conn, month, report.rows_moved));
    if (created) {
      report.created.push_back(partition_name(month));
    } else if (requested.count(month)) {
      report.present.push_back(partition_name(month));
    }
  }
  return report;
}

}  // namespace tollgate::storage
