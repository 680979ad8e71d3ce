#!/usr/bin/env bash
# Builds tollgate and runs every test: unit tests and process-level tests over
# real HTTP, under AddressSanitizer + UBSan (GCC), and the concurrency tests
# again under ThreadSanitizer (clang), on SQLite and on a private PostgreSQL
# server. Installs what it needs first.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
JOBS=${JOBS:-$(nproc)}

scripts/install-deps.sh --test
if command -v npm >/dev/null 2>&1; then
  (cd tests/sdk && npm ci --no-audit --no-fund --loglevel=error)
else
  echo "npm not found: the exa-js SDK test will be skipped"
fi

# ThreadSanitizer build (clang 14): only the binaries the concurrency tests use.
cmake -S . -B build-test/tsan -G Ninja -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_COMPILER=clang++-14 \
  -DCMAKE_CXX_FLAGS="-O1" -DTOLLGATE_SANITIZE=thread >/dev/null
ninja -C build-test/tsan -j"$JOBS" tollgate unit_tests

# AddressSanitizer + UndefinedBehaviorSanitizer build (GCC): everything.
cmake -S . -B build-test/asan -G Ninja -DCMAKE_BUILD_TYPE= -DCMAKE_CXX_FLAGS="-O1" \
  -DTOLLGATE_SANITIZE=address,undefined -DTOLLGATE_TSAN_BUILD_DIR="$ROOT/build-test/tsan" >/dev/null
ninja -C build-test/asan -j"$JOBS"

# One private PostgreSQL server for the run (a database per test on it), so the
# store suite, the scenario files and the HTTP tests also run on PostgreSQL.
PG_TEST_DIR=$(mktemp -d /tmp/tollgate-pg.XXXXXX)
trap 'scripts/pg-test-server.sh stop "$PG_TEST_DIR" >/dev/null 2>&1 || true; rm -rf "$PG_TEST_DIR"' EXIT
TOLLGATE_TEST_PG_URL=$(scripts/pg-test-server.sh start "$PG_TEST_DIR")
export TOLLGATE_TEST_PG_URL
echo "PostgreSQL test server: $TOLLGATE_TEST_PG_URL"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan.supp}
# Integration tests mostly wait on sockets and timers: run more than one per core.
ctest --test-dir build-test/asan -j$((JOBS * 2)) --output-on-failure --timeout 900
