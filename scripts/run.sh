#!/usr/bin/env bash
# Builds tollgate and runs it on an embedded SQLite store in front of a
# simulated Exa upstream, then sends a few metered searches and prints their
# receipts and the month's usage. Keeps serving until Ctrl-C (--once: stop
# after the demo). Ports: 8080 (proxy), 8081 (admin), 8090 (upstream), or
# TOLLGATE_DEMO_PROXY_PORT / _ADMIN_PORT / _UPSTREAM_PORT. The data lives in a
# temporary directory, removed on exit unless TOLLGATE_DEMO_KEEP=1.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
ONCE=0
[[ "${1:-}" == "--once" ]] && ONCE=1
PROXY_PORT=${TOLLGATE_DEMO_PROXY_PORT:-8080}
ADMIN_PORT=${TOLLGATE_DEMO_ADMIN_PORT:-8081}
UPSTREAM_PORT=${TOLLGATE_DEMO_UPSTREAM_PORT:-8090}

if [[ -z "${TOLLGATE_BIN:-}" ]]; then
  scripts/install-deps.sh --build
  cmake -S . -B build-release -G Ninja -DCMAKE_BUILD_TYPE=Release -DTOLLGATE_TESTS=OFF >/dev/null
  ninja -C build-release tollgate
  TOLLGATE_BIN="$ROOT/build-release/tollgate"
fi
TG="$TOLLGATE_BIN"

DATA=$(mktemp -d /tmp/tollgate-demo.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  if [[ "${TOLLGATE_DEMO_KEEP:-0}" != 1 ]]; then rm -rf "$DATA"; else echo "data kept in $DATA"; fi
}
trap cleanup EXIT INT TERM

export TOLLGATE_ADMIN_TOKEN="demo-admin-$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')"
export TOLLGATE_ADMIN_URL="http://127.0.0.1:$ADMIN_PORT"
export EXA_API_KEY="demo-operator-key"   # what the simulated upstream receives

cat > "$DATA/tollgate.toml" <<TOML
[allowance]
default_microdollars = 10000000        # \$10 a month for everyone...
[allowance.tiers]
demo_microdollars = 15000              # ...but the demo user's tier gets 1.5 cents, to reach its end fast
TOML

"$TG" fake-exa --listen "127.0.0.1:$UPSTREAM_PORT" 2>"$DATA/fake-exa.log" &
pids+=($!)
"$TG" serve --config "$DATA/tollgate.toml" --database "sqlite:$DATA/tollgate.db" \
  --listen "127.0.0.1:$PROXY_PORT" --admin-listen "127.0.0.1:$ADMIN_PORT" \
  --upstream-url "http://127.0.0.1:$UPSTREAM_PORT" 2>"$DATA/tollgate.log" &
pids+=($!)
for _ in $(seq 100); do
  curl -fs "http://127.0.0.1:$PROXY_PORT/healthz" >/dev/null 2>&1 && \
    curl -fs "http://127.0.0.1:$UPSTREAM_PORT/_fake/calls" >/dev/null 2>&1 && break
  sleep 0.1
done
# Our own processes must be the ones answering (a port may belong to something else).
for p in "${pids[@]}"; do
  if ! kill -0 "$p" 2>/dev/null; then
    echo "a demo process exited at start-up (is a port in use? set TOLLGATE_DEMO_*_PORT); its logs:" >&2
    cat "$DATA/fake-exa.log" "$DATA/tollgate.log" >&2
    exit 1
  fi
done
if ! curl -fs "http://127.0.0.1:$PROXY_PORT/healthz" >/dev/null; then
  echo "tollgate did not start; its log:" >&2; cat "$DATA/tollgate.log" "$DATA/fake-exa.log" >&2; exit 1
fi

say() { printf '\n\033[1m%s\033[0m\n' "$*"; }
say "Setting up a demo user (tier 'demo', 15,000 µ\$ free a month) with an API key, 10,000 µ\$ of credits, and an org 'acme' without credits"
"$TG" admin users create --id demo --tier demo
"$TG" admin orgs create --id acme --name "Acme Inc."
"$TG" admin orgs add-member acme demo
KEY=$("$TG" admin keys create demo | grep -o '"key":"[^"]*"' | cut -d'"' -f4)
"$TG" admin grants create --owner user:demo --amount-microdollars 10000 --idempotency-key demo-welcome-credit

search() {  # search TITLE BODY [ORG]
  local title=$1 body=$2 org=${3:-}
  say "$title"
  echo "POST /api/exa/search $body${org:+   (X-KiloCode-OrganizationId: $org)}"
  curl -s -o "$DATA/body.json" -D "$DATA/headers.txt" -X POST "http://127.0.0.1:$PROXY_PORT/api/exa/search" \
    -H "Authorization: Bearer $KEY" -H "content-type: application/json" \
    ${org:+-H "X-KiloCode-OrganizationId: $org"} -d "$body"
  head -1 "$DATA/headers.txt" | tr -d '\r'
  grep -i '^x-tollgate-' "$DATA/headers.txt" | tr -d '\r' | sed 's/^/  /' || true
  if ! head -1 "$DATA/headers.txt" | grep -q ' 200'; then sed 's/^/  /' "$DATA/body.json"; echo; fi
}
search "1. A personal search: free, from the monthly allowance" '{"query":"metering proxies","numResults":5}'
search "2. The same user in the org 'acme': still the user's own allowance" '{"query":"usage-based billing"}' acme
search "3. Past the allowance: 1,000 µ\$ free, the rest charged to the user's credits" '{"query":"exa search api","numResults":12}'
search "4. In 'acme' again: no allowance left and the org has no credits, so 402 and nothing is forwarded" '{"query":"one more"}' acme

MONTH=$(date -u +%Y-%m)
say "The month's usage for the demo user"
"$TG" admin usage demo --month "$MONTH"
say "The user's account"
"$TG" admin account user:demo
say "Report for $MONTH"
"$TG" report --database "sqlite:$DATA/tollgate.db" --month "$MONTH"

if [[ $ONCE == 1 ]]; then exit 0; fi
cat <<TXT

tollgate is running (data and logs in $DATA, removed on exit unless TOLLGATE_DEMO_KEEP=1):
  proxy   http://127.0.0.1:$PROXY_PORT/api/exa/{search,contents,findSimilar,answer,context}
  admin   $TOLLGATE_ADMIN_URL   (Authorization: Bearer $TOLLGATE_ADMIN_TOKEN)
  demo key  $KEY
Try:
  curl -s -D - -H 'Authorization: Bearer $KEY' -d '{"query":"hello"}' http://127.0.0.1:$PROXY_PORT/api/exa/search
  TOLLGATE_ADMIN_TOKEN=$TOLLGATE_ADMIN_TOKEN $TG admin --admin-url $TOLLGATE_ADMIN_URL usage demo
Ctrl-C stops both processes.
TXT
wait
