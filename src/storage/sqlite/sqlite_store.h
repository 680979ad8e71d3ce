// The embedded SQLite store: one file in WAL mode, one writer thread that
// groups queued operations into one transaction per batch (group commit).
// A running server is the file's only writer (an advisory lock enforces it);
// read-only openings (reports) may run beside it.
#pragma once

#include <memory>
#include <string>

#include "storage/store.h"

namespace tollgate::storage {

Result<std::unique_ptr<Store>> open_sqlite_store(const std::string& path, const StoreOptions& options);

}  // namespace tollgate::storage
