// Versioned migrations of the SQLite schema. Each entry is applied once, in
// order, inside a transaction, and recorded in schema_migrations.
#pragma once

#include <array>
#include <string_view>

namespace tollgate::storage::sqlite_schema {

struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

inline constexpr std::array<Migration, 1> kMigrations = {{
    {1, "initial", R"SQL(
CREATE TABLE users (
  id TEXT PRIMARY KEY,
  tier TEXT,
  blocked INTEGER NOT NULL DEFAULT 0,
  created_at_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE organizations (
  id TEXT PRIMARY KEY,
  name TEXT NOT NULL DEFAULT '',
  created_at_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE org_members (
  org_id TEXT NOT NULL REFERENCES organizations(id),
  user_id TEXT NOT NULL REFERENCES users(id),
  added_at_us INTEGER NOT NULL,
  PRIMARY KEY (org_id, user_id)
) WITHOUT ROWID;
CREATE TABLE api_keys (
  id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL REFERENCES users(id),
  secret_sha256 TEXT NOT NULL,
  created_at_us INTEGER NOT NULL,
  revoked_at_us INTEGER
) WITHOUT ROWID;
CREATE TABLE accounts (
  owner TEXT PRIMARY KEY,
  debt_microdollars INTEGER NOT NULL DEFAULT 0 CHECK (debt_microdollars >= 0),
  held_microdollars INTEGER NOT NULL DEFAULT 0 CHECK (held_microdollars >= 0),
  created_at_us INTEGER NOT NULL,
  latest_event_at_us INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE grants (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES accounts(owner),
  amount_microdollars INTEGER NOT NULL CHECK (amount_microdollars > 0),
  remaining_microdollars INTEGER NOT NULL CHECK (remaining_microdollars >= 0),
  expired_microdollars INTEGER NOT NULL DEFAULT 0 CHECK (expired_microdollars >= 0),
  effective_at_us INTEGER NOT NULL,
  expires_at_us INTEGER,
  idempotency_key TEXT NOT NULL UNIQUE,
  request_fingerprint TEXT NOT NULL,
  created_at_us INTEGER NOT NULL,
  activated INTEGER NOT NULL DEFAULT 0,
  expiry_recorded_at_us INTEGER,
  CHECK (expires_at_us IS NULL OR expires_at_us > effective_at_us)
) WITHOUT ROWID;
CREATE INDEX grants_by_owner ON grants(owner);
CREATE INDEX grants_pending_activation ON grants(effective_at_us) WHERE activated = 0;
CREATE INDEX grants_pending_expiry ON grants(expires_at_us) WHERE expires_at_us IS NOT NULL AND expiry_recorded_at_us IS NULL;
CREATE TABLE grant_expiries (
  grant_id TEXT PRIMARY KEY REFERENCES grants(id),
  owner TEXT NOT NULL,
  amount_microdollars INTEGER NOT NULL CHECK (amount_microdollars >= 0),
  expired_at_us INTEGER NOT NULL,
  recorded_at_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX grant_expiries_by_owner ON grant_expiries(owner, expired_at_us);
CREATE TABLE ledger_adjustments (
  id TEXT PRIMARY KEY,
  subject TEXT NOT NULL,
  field TEXT NOT NULL,
  stored_microdollars INTEGER NOT NULL,
  recomputed_microdollars INTEGER NOT NULL,
  at_us INTEGER NOT NULL,
  reason TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX ledger_adjustments_by_subject ON ledger_adjustments(subject, at_us);
CREATE TABLE external_usage (
  id TEXT PRIMARY KEY,
  owner TEXT NOT NULL REFERENCES accounts(owner),
  amount_microdollars INTEGER NOT NULL CHECK (amount_microdollars > 0),
  at_us INTEGER NOT NULL,
  idempotency_key TEXT NOT NULL UNIQUE,
  request_fingerprint TEXT NOT NULL,
  created_at_us INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX external_usage_by_owner ON external_usage(owner, at_us);
CREATE TABLE allowance_locks (
  user_id TEXT NOT NULL,
  month TEXT NOT NULL,
  allowance_microdollars INTEGER NOT NULL CHECK (allowance_microdollars >= 0),
  free_used_microdollars INTEGER NOT NULL DEFAULT 0 CHECK (free_used_microdollars >= 0),
  free_held_microdollars INTEGER NOT NULL DEFAULT 0 CHECK (free_held_microdollars >= 0),
  locked_at_us INTEGER NOT NULL,
  PRIMARY KEY (user_id, month),
  CHECK (free_used_microdollars <= allowance_microdollars)
) WITHOUT ROWID;
CREATE TABLE monthly_usage (
  user_id TEXT NOT NULL,
  context TEXT NOT NULL,
  month TEXT NOT NULL,
  request_count INTEGER NOT NULL,
  total_cost_microdollars INTEGER NOT NULL,
  total_free_microdollars INTEGER NOT NULL,
  total_charged_microdollars INTEGER NOT NULL,
  PRIMARY KEY (user_id, month, context)
) WITHOUT ROWID;
CREATE TABLE holds (
  request_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  context TEXT NOT NULL,
  owner TEXT NOT NULL,
  path TEXT NOT NULL,
  month TEXT NOT NULL,
  arrived_at_us INTEGER NOT NULL,
  expires_at_us INTEGER NOT NULL,
  estimate_microdollars INTEGER NOT NULL,
  free_held_microdollars INTEGER NOT NULL,
  credit_held_microdollars INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX holds_by_arrival ON holds(arrived_at_us);
CREATE INDEX holds_by_owner ON holds(owner);
CREATE INDEX holds_by_user_month ON holds(user_id, month);
CREATE TABLE audit_log (
  request_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  context TEXT NOT NULL,
  owner TEXT NOT NULL,
  path TEXT NOT NULL,
  month TEXT NOT NULL,
  arrived_at_us INTEGER NOT NULL,
  settled_at_us INTEGER NOT NULL,
  upstream_status INTEGER NOT NULL,
  cost_microdollars INTEGER NOT NULL CHECK (cost_microdollars >= 0),
  free_microdollars INTEGER NOT NULL CHECK (free_microdollars >= 0),
  charged_microdollars INTEGER NOT NULL CHECK (charged_microdollars >= 0),
  cost_source TEXT NOT NULL CHECK (cost_source IN ('upstream','estimate','recovered','none')),
  CHECK (free_microdollars + charged_microdollars = cost_microdollars)
) WITHOUT ROWID;
CREATE INDEX audit_by_arrival ON audit_log(arrived_at_us, request_id);
CREATE INDEX audit_by_user ON audit_log(user_id, month, arrived_at_us, request_id);
CREATE INDEX audit_by_context ON audit_log(context, month, arrived_at_us, request_id);
CREATE INDEX audit_by_owner ON audit_log(owner, arrived_at_us);
)SQL"},
}};

}  // namespace tollgate::storage::sqlite_schema
