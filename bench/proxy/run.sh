#!/usr/bin/env bash
# Throughput and latency of tollgate (SQLite, durable group commit) against a
# plain nginx reverse proxy and the upstream itself, all in front of the same
# `tollgate fake-exa`, on loopback, measured in one run with wrk.
#   bench/proxy/run.sh [BUILD_DIR] [DURATION_S] [CONNECTIONS]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${1:-$ROOT/build-bench}
DURATION=${2:-10}
CONNS=${3:-32}
TG="$BUILD/tollgate"
command -v wrk >/dev/null && command -v nginx >/dev/null || {
  apt-get install -y -qq wrk nginx-light >/dev/null; }
DIR=$(mktemp -d /tmp/tollgate-bench.XXXXXX)
mkdir -p "$DIR/body" "$DIR/proxy"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [[ -f $DIR/nginx.pid ]] && kill "$(cat "$DIR/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT
UP=18590; NG=18591; PX=18592; AD=18593
"$TG" fake-exa --listen 127.0.0.1:$UP 2>/dev/null & pids+=($!)
sed -e "s|@DIR@|$DIR|g" -e "s|@UPSTREAM@|$UP|g" -e "s|@PORT@|$NG|g" "$ROOT/bench/proxy/nginx.conf.in" > "$DIR/nginx.conf"
nginx -c "$DIR/nginx.conf"
export TOLLGATE_ADMIN_TOKEN=bench EXA_API_KEY=operator-key TOLLGATE_LOG_LEVEL=warn
DURABILITY=${DURABILITY:-process}
printf '[database]\ndurability = "%s"\n' "$DURABILITY" > "$DIR/tollgate.toml"
${TG_WRAP:-} "$TG" serve --config "$DIR/tollgate.toml" --database "sqlite:$DIR/t.db" --listen 127.0.0.1:$PX \
  --admin-listen 127.0.0.1:$AD --upstream-url http://127.0.0.1:$UP 2>"$DIR/tollgate.log" & pids+=($!)
sleep 1
export TOLLGATE_ADMIN_URL=http://127.0.0.1:$AD
"$TG" admin users create --id bench >/dev/null
KEY=$("$TG" admin keys create bench | grep -o '"key":"[^"]*"' | cut -d'"' -f4)
"$TG" admin grants create --owner user:bench --amount-microdollars 1000000000000 --idempotency-key bench >/dev/null
run() {  # name url
  local out
  out=$(TOLLGATE_KEY=${3:-} wrk -t1 -c"$CONNS" -d"${DURATION}s" --latency -s "$ROOT/bench/proxy/post.lua" "$2")
  printf '%-10s %10s req/s   p50 %8s   p99 %8s\n' "$1" "$(awk '/Requests\/sec/ {print $2}' <<<"$out")" \
    "$(awk '$1=="50%" {print $2}' <<<"$out")" "$(awk '$1=="99%" {print $2}' <<<"$out")"
}
echo "connections=$CONNS duration=${DURATION}s durability=$DURABILITY"
run upstream "http://127.0.0.1:$UP/search"
run nginx "http://127.0.0.1:$NG/api/exa/search"
run tollgate "http://127.0.0.1:$PX/api/exa/search" "$KEY"
"$TG" admin usage bench | head -c 400; echo
