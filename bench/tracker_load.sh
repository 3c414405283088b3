#!/usr/bin/env bash
# Tracker load benchmark (issue 4 "Speed"), loopback only, bounded in time (~1-2 minutes).
#
# Builds zest-tracker in release, starts an own redis-server and a fresh PostgreSQL database,
# runs the tracker on PostgreSQL + Redis and then on the embedded store, and for each measures
# with zest-tracker-load:
#   - single-range lookups/s over keep-alive connections,
#   - p50/p99 of a 2,000-xorb batch lookup,
#   - p50/p99 of a full announce of 2,000 ranges.
# Then runs redis-benchmark against the same Redis for the commands those operations issue and
# prints the tracker's figures as ratios of the store's own limit.
#
# Needs: cargo, redis-server, redis-benchmark, psql (PostgreSQL on ZEST_BENCH_DATABASE_URL's
# server, default postgres://postgres@127.0.0.1:5432/postgres), curl.
# Knobs: DURATION (s, default 5), CONNECTIONS (default 64), BATCHES (default 200),
#        ANNOUNCES (default 50), WORKERS (tracker workers, default 2).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
ROOT="$ZEST_ROOT"
export CARGO_TARGET_DIR="$ZEST_TARGET"
DURATION="${DURATION:-5}"
CONNECTIONS="${CONNECTIONS:-64}"
BATCHES="${BATCHES:-200}"
ANNOUNCES="${ANNOUNCES:-50}"
WORKERS="${WORKERS:-2}"
ADMIN_URL="${ZEST_BENCH_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/postgres}"
TOKEN="bench-token-$RANDOM$RANDOM"
# The store is chosen by flags below, never by a stray environment.
unset DATABASE_URL REDIS_URL

require_tools redis-server redis-benchmark psql curl

echo "== building zest-tracker (release)" >&2
cargo build --release -q -p zest-tracker --bins --manifest-path "$ROOT/Cargo.toml"
TRACKER="$CARGO_TARGET_DIR/release/zest-tracker"
LOAD="$CARGO_TARGET_DIR/release/zest-tracker-load"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

REDIS_PORT="$(free_port)"
DB="zest_tracker_bench_$$"
DB_URL="${ADMIN_URL%/*}/$DB"
REDIS_PID=""; TRACKER_PID=""
cleanup() {
  [ -n "$TRACKER_PID" ] && kill "$TRACKER_PID" 2>/dev/null && wait "$TRACKER_PID" 2>/dev/null || true
  [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
  psql "$ADMIN_URL" -q -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >/dev/null 2>&1 &
REDIS_PID=$!
for _ in $(seq 50); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
psql "$ADMIN_URL" -q -c "CREATE DATABASE $DB" >/dev/null

start_tracker() { # arguments go to zest-tracker
  local port; port="$(free_port)"
  ZEST_TRACKER_LISTEN="127.0.0.1:$port" ZEST_TRACKER_TOKEN="$TOKEN" ZEST_TRACKER_WORKERS="$WORKERS" \
    RUST_LOG=warn "$TRACKER" "$@" >/dev/null 2>&1 &
  TRACKER_PID=$!
  ADDR="127.0.0.1:$port"
  for _ in $(seq 100); do curl -sf "http://$ADDR/healthz" >/dev/null && return 0; sleep 0.1; done
  echo "tracker did not start" >&2; exit 1
}
stop_tracker() { kill "$TRACKER_PID"; wait "$TRACKER_PID" 2>/dev/null || true; TRACKER_PID=""; }

field() { # $1 = line, $2 = key
  sed -n "s/.* $2=\([^ ]*\).*/\1/p" <<<"$1"
}

run_suite() { # prints RESULT lines; leaves SAMPLE lines in $SAMPLES
  SAMPLES="$(ZEST_TRACKER_TOKEN="$TOKEN" "$LOAD" --addr "$ADDR" setup)"
  SINGLE="$("$LOAD" --addr "$ADDR" single --connections "$CONNECTIONS" --duration "$DURATION" | grep RESULT)"
  BATCH="$("$LOAD" --addr "$ADDR" batch --items 2000 --count "$BATCHES" | grep RESULT)"
  ANNOUNCE="$(ZEST_TRACKER_TOKEN="$TOKEN" "$LOAD" --addr "$ADDR" announce --ranges 2000 --count "$ANNOUNCES" | grep RESULT)"
}

echo "== PostgreSQL + Redis" >&2
start_tracker --database-url "$DB_URL" --redis-url "redis://127.0.0.1:$REDIS_PORT/"
run_suite
PG_SINGLE="$SINGLE"; PG_BATCH="$BATCH"; PG_ANNOUNCE="$ANNOUNCE"
stop_tracker

echo "== embedded" >&2
start_tracker
run_suite
EM_SINGLE="$SINGLE"; EM_BATCH="$BATCH"; EM_ANNOUNCE="$ANNOUNCE"
stop_tracker

echo "== redis-benchmark (same Redis, same keys)" >&2
XKEY="$(sed -n 's/^SAMPLE xorb_key=//p' <<<"$SAMPLES")"
IDS="$(sed -n 's/^SAMPLE peer_ids=//p' <<<"$SAMPLES" | tr ',' ' ')"
PKEYS="$(for i in $IDS; do printf 'zt2:p:%s ' "$i"; done)"
rb() { # prints requests/s of one redis-benchmark run
  redis-benchmark -p "$REDIS_PORT" --csv "$@" 2>/dev/null | tail -1 | cut -d, -f2 | tr -d '"'
}
N=200000
# shellcheck disable=SC2086
RB_HVALS="$(rb -c "$CONNECTIONS" -n $N HVALS "$XKEY")"
# shellcheck disable=SC2086
RB_ZMSCORE="$(rb -c "$CONNECTIONS" -n $N ZMSCORE zt2:live $IDS)"
# shellcheck disable=SC2086
RB_MGET="$(rb -c "$CONNECTIONS" -n $N MGET $PKEYS)"
RB_HVALS_P="$(rb -c 1 -P 2000 -n 400000 HVALS "$XKEY")"
# A holder record is ~28 bytes (see tracker/src/store/holders.rs); the value stands in for one.
RB_HSET_P="$(rb -c 1 -P 2000 -n 400000 HSET zt2:x:redis-benchmark-scratch bench-peer 0123456789abcdef0123456789ab)"
redis-cli -p "$REDIS_PORT" del zt2:x:redis-benchmark-scratch >/dev/null

python3 - "$PG_SINGLE" "$PG_BATCH" "$PG_ANNOUNCE" "$EM_SINGLE" "$EM_BATCH" "$EM_ANNOUNCE" \
  "$RB_HVALS" "$RB_ZMSCORE" "$RB_MGET" "$RB_HVALS_P" "$RB_HSET_P" <<'PY'
import sys
def kv(line):
    return dict(p.split("=", 1) for p in line.split()[1:] if "=" in p)
pg_s, pg_b, pg_a, em_s, em_b, em_a = (kv(l) for l in sys.argv[1:7])
hvals, zmscore, mget, hvals_p, hset_p = (float(x) for x in sys.argv[7:12])
# A single lookup is one HVALS (the peers it names are in the tracker's peer cache, refreshed
# by ZMSCORE + MGET every 200 ms, or fetched with them on a miss): Redis' own limit for the
# same mix is its HVALS rate; with a cold cache it would be one of each of the three commands.
single_limit = hvals
single_cold_limit = 1 / (1 / hvals + 1 / zmscore + 1 / mget)
# A 2,000-xorb batch is 2,000 pipelined HVALS (+ one ZMSCORE and one MGET, negligible).
batch_floor_ms = 2000 / hvals_p * 1000
# A full announce of 2,000 ranges writes 2,000 HSETs (+ SADD/SET/ZADD) in one MULTI.
announce_floor_ms = 2000 / hset_p * 1000
print()
print("| figure | postgres+redis | embedded | redis-benchmark (same mix) | ratio pg+redis / redis |")
print("|---|---|---|---|---|")
print(f"| single-range lookups/s ({pg_s['connections']} conns) | {float(pg_s['rps']):,.0f} | {float(em_s['rps']):,.0f} "
      f"| {single_limit:,.0f} HVALS/s (cold-cache mix HVALS+ZMSCORE+MGET: {single_cold_limit:,.0f}/s) "
      f"| {float(pg_s['rps']) / single_limit:.2f} |")
print(f"| single lookup p50 / p99 ms | {pg_s['p50_ms']} / {pg_s['p99_ms']} | {em_s['p50_ms']} / {em_s['p99_ms']} | | |")
print(f"| 2,000-xorb batch lookup p50 / p99 ms | {pg_b['p50_ms']} / {pg_b['p99_ms']} | {em_b['p50_ms']} / {em_b['p99_ms']} "
      f"| {batch_floor_ms:.2f} ms (2,000 pipelined HVALS at {hvals_p:,.0f}/s) | {batch_floor_ms / float(pg_b['p50_ms']):.2f} (floor / p50) |")
print(f"| announce of 2,000 ranges p50 / p99 ms | {pg_a['p50_ms']} / {pg_a['p99_ms']} | {em_a['p50_ms']} / {em_a['p99_ms']} "
      f"| {announce_floor_ms:.2f} ms (2,000 pipelined HSET at {hset_p:,.0f}/s) | {announce_floor_ms / float(pg_a['p50_ms']):.2f} (floor / p50) |")
print()
print("targets: >= 20,000 single lookups/s; batch p99 < 20 ms")
ok_rps = float(pg_s['rps']) >= 20000
ok_p99 = float(pg_b['p99_ms']) < 20
print(f"postgres+redis: lookups/s {'MET' if ok_rps else 'MISSED'}, batch p99 {'MET' if ok_p99 else 'MISSED'}")
PY
