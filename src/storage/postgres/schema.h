// Versioned migrations of the PostgreSQL schema: the tables of the SQLite
// store (docs/SCHEMA.md) with PostgreSQL types, and the audit log
// range-partitioned by month on arrival. Each migration is applied once, in
// order, in a transaction holding an advisory lock, so instances starting
// together do not race; it is recorded in schema_migrations.
//
// Text columns use the "C" collation: ids sort and compare bytewise, exactly
// as in SQLite, whatever the database's locale.
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace tollgate::storage::pg_schema {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// pg_advisory_xact_lock keys ("tollgate" in ASCII, + 0 / + 1).
inline constexpr int64_t kMigrationLockKey = 0x746f6c6c67617465;
inline constexpr int64_t kPartitionLockKey = 0x746f6c6c67617466;

inline constexpr std::array<Migration, 1> kMigrations = {{
    {1, "initial", R"SQL(
CREATE TABLE users (
  id TEXT COLLATE "C" PRIMARY KEY,
  tier TEXT COLLATE "C",
  blocked BOOLEAN NOT NULL DEFAULT false,
  created_at_us BIGINT NOT NULL
);
CREATE TABLE organizations (
  id TEXT COLLATE "C" PRIMARY KEY,
  name TEXT NOT NULL DEFAULT '',
  created_at_us BIGINT NOT NULL
);
CREATE TABLE org_members (
  org_id TEXT COLLATE "C" NOT NULL REFERENCES organizations(id),
  user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
  added_at_us BIGINT NOT NULL,
  PRIMARY KEY (org_id, user_id)
);
CREATE TABLE api_keys (
  id TEXT COLLATE "C" PRIMARY KEY,
  user_id TEXT COLLATE "C" NOT NULL REFERENCES users(id),
  secret_sha256 TEXT COLLATE "C" NOT NULL,
  created_at_us BIGINT NOT NULL,
  revoked_at_us BIGINT
);
CREATE TABLE accounts (
  owner TEXT COLLATE "C" PRIMARY KEY,
  debt_microdollars BIGINT NOT NULL DEFAULT 0 CHECK (debt_microdollars >= 0),
  held_microdollars BIGINT NOT NULL DEFAULT 0 CHECK (held_microdollars >= 0),
  created_at_us BIGINT NOT NULL,
  latest_event_at_us BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE grants (
  id TEXT COLLATE "C" PRIMARY KEY,
  owner TEXT COLLATE "C" NOT NULL REFERENCES accounts(owner),
  amount_microdollars BIGINT NOT NULL CHECK (amount_microdollars > 0),
  remaining_microdollars BIGINT NOT NULL CHECK (remaining_microdollars >= 0),
  expired_microdollars BIGINT NOT NULL DEFAULT 0 CHECK (expired_microdollars >= 0),
  effective_at_us BIGINT NOT NULL,
  expires_at_us BIGINT,
  idempotency_key TEXT COLLATE "C" NOT NULL UNIQUE,
  request_fingerprint TEXT COLLATE "C" NOT NULL,
  created_at_us BIGINT NOT NULL,
  activated BOOLEAN NOT NULL DEFAULT false,
  expiry_recorded_at_us BIGINT,
  CHECK (expires_at_us IS NULL OR expires_at_us > effective_at_us)
);
CREATE INDEX grants_by_owner ON grants (owner);
CREATE INDEX grants_pending_activation ON grants (effective_at_us) WHERE NOT activated;
CREATE INDEX grants_pending_expiry ON grants (expires_at_us)
  WHERE expires_at_us IS NOT NULL AND expiry_recorded_at_us IS NULL;
CREATE TABLE grant_expiries (
  grant_id TEXT COLLATE "C" PRIMARY KEY REFERENCES grants(id),
  owner TEXT COLLATE "C" NOT NULL,
  amount_microdollars BIGINT NOT NULL CHECK (amount_microdollars >= 0),
  expired_at_us BIGINT NOT NULL,
  recorded_at_us BIGINT NOT NULL
);
CREATE INDEX grant_expiries_by_owner ON grant_expiries (owner, expired_at_us);
CREATE TABLE ledger_adjustments (
  id TEXT COLLATE "C" PRIMARY KEY,
  subject TEXT COLLATE "C" NOT NULL,
  field TEXT COLLATE "C" NOT NULL,
  stored_microdollars BIGINT NOT NULL,
  recomputed_microdollars BIGINT NOT NULL,
  at_us BIGINT NOT NULL,
  reason TEXT NOT NULL
);
CREATE INDEX ledger_adjustments_by_subject ON ledger_adjustments (subject, at_us);
CREATE TABLE external_usage (
  id TEXT COLLATE "C" PRIMARY KEY,
  owner TEXT COLLATE "C" NOT NULL REFERENCES accounts(owner),
  amount_microdollars BIGINT NOT NULL CHECK (amount_microdollars > 0),
  at_us BIGINT NOT NULL,
  idempotency_key TEXT COLLATE "C" NOT NULL UNIQUE,
  request_fingerprint TEXT COLLATE "C" NOT NULL,
  created_at_us BIGINT NOT NULL
);
CREATE INDEX external_usage_by_owner ON external_usage (owner, at_us);
CREATE TABLE allowance_locks (
  user_id TEXT COLLATE "C" NOT NULL,
  month TEXT COLLATE "C" NOT NULL,
  allowance_microdollars BIGINT NOT NULL CHECK (allowance_microdollars >= 0),
  free_used_microdollars BIGINT NOT NULL DEFAULT 0 CHECK (free_used_microdollars >= 0),
  free_held_microdollars BIGINT NOT NULL DEFAULT 0 CHECK (free_held_microdollars >= 0),
  locked_at_us BIGINT NOT NULL,
  PRIMARY KEY (user_id, month),
  CHECK (free_used_microdollars <= allowance_microdollars)
);
CREATE TABLE monthly_usage (
  user_id TEXT COLLATE "C" NOT NULL,
  context TEXT COLLATE "C" NOT NULL,
  month TEXT COLLATE "C" NOT NULL,
  request_count BIGINT NOT NULL,
  total_cost_microdollars BIGINT NOT NULL,
  total_free_microdollars BIGINT NOT NULL,
  total_charged_microdollars BIGINT NOT NULL,
  PRIMARY KEY (user_id, month, context)
);
CREATE INDEX monthly_usage_by_month ON monthly_usage (month, user_id, context);
CREATE TABLE holds (
  request_id TEXT COLLATE "C" PRIMARY KEY,
  user_id TEXT COLLATE "C" NOT NULL,
  context TEXT COLLATE "C" NOT NULL,
  owner TEXT COLLATE "C" NOT NULL,
  path TEXT COLLATE "C" NOT NULL,
  month TEXT COLLATE "C" NOT NULL,
  arrived_at_us BIGINT NOT NULL,
  expires_at_us BIGINT NOT NULL,
  estimate_microdollars BIGINT NOT NULL,
  free_held_microdollars BIGINT NOT NULL,
  credit_held_microdollars BIGINT NOT NULL
);
CREATE INDEX holds_by_arrival ON holds (arrived_at_us, request_id);
CREATE INDEX holds_by_owner ON holds (owner);
CREATE INDEX holds_by_user_month ON holds (user_id, month);
-- The source of truth, one partition per UTC month of arrival
-- (audit_log_YYYY_MM, made by `tollgate partitions ensure`). A row whose month
-- has no partition yet lands in audit_log_default and is moved into place when
-- that month's partition is created. The key must contain the partition key;
-- exactly-once rests on the hold, deleted in the transaction that inserts the
-- row, and (request_id, arrived_at_us) is unique since a request arrives once.
CREATE TABLE audit_log (
  request_id TEXT COLLATE "C" NOT NULL,
  user_id TEXT COLLATE "C" NOT NULL,
  context TEXT COLLATE "C" NOT NULL,
  owner TEXT COLLATE "C" NOT NULL,
  path TEXT COLLATE "C" NOT NULL,
  month TEXT COLLATE "C" NOT NULL,
  arrived_at_us BIGINT NOT NULL,
  settled_at_us BIGINT NOT NULL,
  upstream_status INTEGER NOT NULL,
  cost_microdollars BIGINT NOT NULL CHECK (cost_microdollars >= 0),
  free_microdollars BIGINT NOT NULL CHECK (free_microdollars >= 0),
  charged_microdollars BIGINT NOT NULL CHECK (charged_microdollars >= 0),
  cost_source TEXT COLLATE "C" NOT NULL CHECK (cost_source IN ('upstream', 'estimate', 'recovered', 'none')),
  CHECK (free_microdollars + charged_microdollars = cost_microdollars),
  PRIMARY KEY (request_id, arrived_at_us)
) PARTITION BY RANGE (arrived_at_us);
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;
CREATE INDEX audit_by_arrival ON audit_log (arrived_at_us, request_id);
CREATE INDEX audit_by_user ON audit_log (user_id, month, arrived_at_us, request_id);
CREATE INDEX audit_by_context ON audit_log (context, month, arrived_at_us, request_id);
CREATE INDEX audit_by_owner ON audit_log (owner, arrived_at_us, request_id);
)SQL"},
}};

}  // namespace tollgate::storage::pg_schema
