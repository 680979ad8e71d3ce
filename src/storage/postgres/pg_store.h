// The PostgreSQL store (postgresql:// URLs): the production backend, shared
// by any number of stateless tollgate instances.
//
// A bounded pool of connections, each with a worker thread, takes batches of
// queued operations and runs each batch in one READ COMMITTED transaction
// with a savepoint per operation (group commit). Operations lock the rows
// they read (pg_transaction.h), so SPEC §6 is enforced by the database across
// processes, not by this one's memory. When the server is unreachable,
// operations fail fast with kUnavailable and the pool reconnects by itself.
//
// Thread-safety: Store methods are thread-safe; done callbacks run on a
// worker thread (read-only stores: on the caller's).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/time.h"
#include "storage/partitions.h"
#include "storage/store.h"

namespace tollgate::storage {

// Connects, applies pending migrations (unless read_only) and starts the pool.
Result<std::unique_ptr<Store>> open_pg_store(const std::string& url, const StoreOptions& options);

// Creates the audit-log partitions of `first` and the `months_ahead` months
// after it, and of every month whose rows wait in the default partition,
// moving those rows into place. Idempotent; safe beside running instances.
Result<PartitionReport> ensure_pg_partitions(const std::string& url, Month first, int months_ahead);

namespace pg_admin {
// `url` with its database name replaced by `dbname`.
std::string with_database(const std::string& url, const std::string& dbname);
// CREATE / DROP DATABASE on the server of `url` (for tests and tools).
Status create_database(const std::string& url, const std::string& dbname);
Status drop_database(const std::string& url, const std::string& dbname);
}  // namespace pg_admin

}  // namespace tollgate::storage
