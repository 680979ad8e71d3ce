#!/usr/bin/env bash
# A private PostgreSQL server for tests, in a directory of its own: no system
# service, trust authentication, its socket in DIR and TCP on 127.0.0.1 at a
# free port chosen on first start (kept for restarts).
#
#   scripts/pg-test-server.sh start DIR   initdb on first use, then start; prints the server URL
#   scripts/pg-test-server.sh stop DIR    fast shutdown: open transactions are aborted
#   scripts/pg-test-server.sh kill DIR    immediate shutdown, like a crash
#
# As root, the server runs as the `postgres` user (initdb refuses root).
# fsync is off: these servers hold test data only, and durability is not what
# the tests measure.
set -euo pipefail
cmd=${1:?usage: pg-test-server.sh start|stop|kill DIR}
dir=${2:?usage: pg-test-server.sh start|stop|kill DIR}

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
if [[ -z "$bindir" || ! -x "$bindir/initdb" ]]; then
  echo "PostgreSQL is not installed (Debian package postgresql)" >&2
  exit 3
fi
as_owner=()
mkdir -p "$dir"
if [[ $(id -u) -eq 0 ]]; then
  as_owner=(runuser -u postgres --)
  chown postgres: "$dir"
fi

free_port() {
  if command -v node >/dev/null 2>&1; then
    node -e 'const s = require("net").createServer(); s.listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
  else
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
  fi
}

case "$cmd" in
  start)
    if [[ ! -f "$dir/data/PG_VERSION" ]]; then
      if ! "${as_owner[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres -E UTF8 --no-sync \
          >"$dir/initdb.log" 2>&1; then
        cat "$dir/initdb.log" >&2
        exit 1
      fi
      free_port >"$dir/port"
    fi
    port=$(cat "$dir/port")
    if ! "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
        -o "-k $dir -p $port -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=400" \
        start >/dev/null; then
      tail -20 "$dir/server.log" >&2
      exit 1
    fi
    echo "postgresql://postgres@127.0.0.1:$port/postgres"
    ;;
  stop | kill)
    mode=fast
    [[ "$cmd" == kill ]] && mode=immediate
    "${as_owner[@]}" "$bindir/pg_ctl" -D "$dir/data" -w -t 60 -m "$mode" stop >/dev/null
    ;;
  *)
    echo "unknown command $cmd" >&2
    exit 2
    ;;
esac
