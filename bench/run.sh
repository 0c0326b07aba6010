#!/usr/bin/env bash
# Benchmarks tradehook against the limit server with the same client and prints the ratio.
#
# The limit server (bench/limit_server.rs) is bare hyper + HMAC: the most requests per second any
# webhook receiver could answer on this machine. tradehook does the same work plus durable storage
# (group-committed SQLite), so "tradehook/limit" says what durability costs. Both servers run one
# after the other, never together, and the client (`tradehook bench`) is the same for both.
#
# Settings (environment): CONNECTIONS (32), DURATION (15s), WARMUP (1s), SECRET (bench-secret),
# BENCH_ARGS (extra flags for `tradehook bench`, e.g. "--rate 20000"); TRADEHOOK_WORKER__ENABLED=false
# measures ingest without processing; POSTGRES=postgres://user@host (no database) puts tradehook's
# store on that PostgreSQL server, in a fresh database dropped afterwards (default: SQLite), with
# POSTGRES_QUERY (e.g. "sslmode=disable") appended to its URL. Both JSON reports are kept
# in bench/results/ (gitignored).
set -euo pipefail

cd "$(dirname "$0")/.."
ROOT=$(pwd)
CONNECTIONS=${CONNECTIONS:-32}
DURATION=${DURATION:-15s}
WARMUP=${WARMUP:-1s}
SECRET=${SECRET:-bench-secret}
ADMIN_TOKEN=bench-admin-token-$RANDOM$RANDOM
RESULTS="$ROOT/bench/results"
STAMP=$(date -u +%Y%m%dT%H%M%SZ)

BENCH_DB=tradehook_bench_$(date -u +%Y%m%d%H%M%S)_$$
TMP=$(mktemp -d "${TMPDIR:-/tmp}/tradehook-bench.XXXXXX")
SERVER_PID=""

# Stops whichever server is running and removes the scratch directory, on any exit.
cleanup() {
    local status=$?
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    if [[ $status -ne 0 && -s "$TMP/server.log" ]]; then
        echo "--- last lines of the server log ---" >&2
        tail -n 20 "$TMP/server.log" >&2
    fi
    rm -rf "$TMP"
    if [[ -n "${POSTGRES:-}" ]]; then
        psql "$POSTGRES/postgres" -qc "DROP DATABASE IF EXISTS $BENCH_DB WITH (FORCE)" 2>/dev/null || true
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Stops the running server gracefully (SIGTERM) and waits for it to exit.
stop_server() {
    kill -TERM "$SERVER_PID"
    wait "$SERVER_PID" || true
    SERVER_PID=""
}

# Runs `tradehook bench` against $1 and writes its JSON report to $2.
run_bench() {
    local url=$1 out=$2
    shift 2
    # BENCH_ARGS is split into words on purpose: it holds extra flags.
    # shellcheck disable=SC2086
    "$BIN/tradehook" bench --url "$url" --secret "$SECRET" --connections "$CONNECTIONS" \
        --duration "$DURATION" --warmup "$WARMUP" --json ${BENCH_ARGS:-} "$@" >"$TMP/bench.out"
    # The report is the last JSON line; anything printed before it is not ours to parse.
    python3 - "$TMP/bench.out" "$out" <<'EOF'
import json, sys
report = None
for line in open(sys.argv[1]):
    line = line.strip()
    if line.startswith("{"):
        try:
            report = json.loads(line)
        except ValueError:
            pass
if report is None:
    sys.exit("tradehook bench printed no JSON report")
json.dump(report, open(sys.argv[2], "w"))
EOF
}

# Prints one report as a table row.
show() {
    python3 - "$1" "$2" <<'EOF'
import json, sys
name, r = sys.argv[1], json.load(open(sys.argv[2]))
ms = lambda key: r.get(key, 0) / 1000
errors = r.get("errors_by_status") or {}
print(f"{name:<10} {r['throughput']:>9.0f} ok/s   sent {r.get('sent', 0):>9}   "
      f"p50 {ms('p50_us'):7.3f} ms   p99 {ms('p99_us'):7.3f} ms   p99.9 {ms('p999_us'):7.3f} ms   "
      f"max {ms('max_us'):7.3f} ms   errors {json.dumps(errors) if errors else 0}")
EOF
}

echo "building release binaries…" >&2
cargo build --release --bins
TARGET_DIR=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
BIN="$TARGET_DIR/release"
mkdir -p "$RESULTS"
LIMIT_JSON="$RESULTS/$STAMP-limit.json"
TRADEHOOK_JSON="$RESULTS/$STAMP-tradehook.json"

# --- the limit server -------------------------------------------------------------------------
"$BIN/limit-server" --listen 127.0.0.1:0 --secret "$SECRET" >"$TMP/limit.out" 2>"$TMP/server.log" &
SERVER_PID=$!
LIMIT_ADDR=""
for _ in $(seq 100); do
    LIMIT_ADDR=$(sed -n 's/^listening on //p' "$TMP/limit.out")
    [[ -n "$LIMIT_ADDR" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "limit-server exited at start" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$LIMIT_ADDR" ]] || { echo "limit-server did not say where it listens" >&2; exit 1; }
echo "limit server on $LIMIT_ADDR: $CONNECTIONS connections for $DURATION after $WARMUP warmup" >&2
run_bench "http://$LIMIT_ADDR/webhook" "$LIMIT_JSON"
stop_server

# --- tradehook serve, on a fresh store --------------------------------------------------------
PORT2=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mkdir -p "$TMP/data"
STORE_URL="sqlite://$TMP/data/tradehook.db"
if [[ -n "${POSTGRES:-}" ]]; then
    psql "$POSTGRES/postgres" -qc "CREATE DATABASE $BENCH_DB"
    STORE_URL="$POSTGRES/$BENCH_DB${POSTGRES_QUERY:+?$POSTGRES_QUERY}"
fi
# Run from the scratch directory so nothing (data dir, generated secret) lands in the repository.
(
    cd "$TMP"
    TRADEHOOK_STORE__URL="$STORE_URL" \
        TRADEHOOK_SERVER__LISTEN="127.0.0.1:$PORT2" \
        TRADEHOOK_SECRET="$SECRET" \
        TRADEHOOK_API__ADMIN_TOKEN="$ADMIN_TOKEN" \
        exec "$BIN/tradehook" serve
) >"$TMP/server.log" 2>&1 &
SERVER_PID=$!
healthy=""
for _ in $(seq 300); do
    kill -0 "$SERVER_PID" 2>/dev/null || { echo "tradehook serve exited at start" >&2; exit 1; }
    if python3 - "http://127.0.0.1:$PORT2/healthz" <<'EOF'; then
import sys, urllib.request
try:
    sys.exit(0 if urllib.request.urlopen(sys.argv[1], timeout=1).status == 200 else 1)
except Exception:
    sys.exit(1)
EOF
        healthy=yes
        break
    fi
    sleep 0.1
done
[[ -n "$healthy" ]] || { echo "tradehook did not answer /healthz within 30 s" >&2; exit 1; }
echo "tradehook on 127.0.0.1:$PORT2 (store ${STORE_URL%%://*}): same client settings" >&2
# With the admin token the client also waits for processing to finish and reports its lag
# (skipped when the worker is switched off: TRADEHOOK_WORKER__ENABLED=false measures ingest alone).
if [[ "${TRADEHOOK_WORKER__ENABLED:-true}" == "false" ]]; then
    run_bench "http://127.0.0.1:$PORT2/webhook" "$TRADEHOOK_JSON"
else
    run_bench "http://127.0.0.1:$PORT2/webhook" "$TRADEHOOK_JSON" --admin-token "$ADMIN_TOKEN"
fi
stop_server

# --- summary ----------------------------------------------------------------------------------
echo
show limit "$LIMIT_JSON"
show tradehook "$TRADEHOOK_JSON"
python3 - "$LIMIT_JSON" "$TRADEHOOK_JSON" <<'EOF'
import json, sys
limit, tradehook = (json.load(open(path)) for path in sys.argv[1:3])
ratio = lambda a, b: a / b if b else float("nan")
print(f"ratio: tradehook/limit requests/s = {ratio(tradehook['throughput'], limit['throughput']):.2f}, "
      f"p99 tradehook/limit = {ratio(tradehook['p99_us'], limit['p99_us']):.1f}")
p = tradehook.get("processing")
if p:
    lag = p.get("lag") or {}
    print(f"processing: {p['processed']} events, end to end {p['eventsPerSecond']:.0f} events/s, "
          f"backlog drained {p['drainSeconds']:.2f} s after the load; "
          f"lag p50 {lag.get('p50Ms')} ms, p99 {lag.get('p99Ms')} ms, max {lag.get('maxMs')} ms")
EOF
echo "reports: $LIMIT_JSON $TRADEHOOK_JSON"
