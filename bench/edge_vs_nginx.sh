#!/usr/bin/env bash
# zest-edge serving cached 64 MiB xorb ranges vs nginx serving the same bytes from plain files
# (issue 5 "Speed"), loopback only, one run, bounded in time (a few minutes, most of it building).
#
# 1. builds zest-origin, zest-edge and the load client (`edge-cache/examples/edge_load.rs`) in
#    release; installs nginx with apt-get when it is missing (as root, without starting the
#    system service);
# 2. generates a model repo with one file of SIZE_MIB random bytes (random, so its xorbs are
#    ~64 MiB each), serves it with zest-origin and puts zest-edge in front of it;
# 3. warms the revision into the edge (`POST /v1/warm`), reads the file's reconstruction through
#    the edge (the rewritten xorb URLs a Hugging Face client gets) and writes every full-size
#    range's bytes, as the edge serves them, to plain files for nginx (private config on
#    127.0.0.1, sendfile on);
# 4. ROUNDS times, in rotating order: CLIENTS concurrent clients, each fetching FETCHES ranges
#    over one kept-alive connection, from nginx (HTTP Range on the file), from the edge over HTTP
#    (Range on the rewritten xorb URL, which points at the edge's data port: sendfile) and from the
#    edge over the peer wire protocol; the same client code is used for nginx and the edge's HTTP;
# 5. samples the edge's memory (/proc/PID/status) every 0.1 s throughout and prints a Markdown
#    table: median throughput per target, ratios to nginx, and the edge's memory.
#
# Needs: cargo, curl, python3 (free ports), nginx (installed when missing and run as root).
# Knobs: SIZE_MIB (default 640: 10 ranges), CLIENTS (8), FETCHES (per client per round, 8),
#        ROUNDS (5), EDGE_WORKERS (HTTP workers of the edge, default the edge's own default),
#        SKIP_BUILD=1 (use the release binaries already in CARGO_TARGET_DIR).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
ROOT="$ZEST_ROOT"
export CARGO_TARGET_DIR="$ZEST_TARGET"
SIZE_MIB="${SIZE_MIB:-640}"
CLIENTS="${CLIENTS:-8}"
FETCHES="${FETCHES:-8}"
ROUNDS="${ROUNDS:-5}"
EDGE_WORKERS="${EDGE_WORKERS:-}"
# Ranges at least this big are measured: full xorbs are just under 64 MiB of chunk records.
MIN_RANGE_BYTES=$((60 << 20))

require_tools cargo curl python3

NGINX="$(command -v nginx || true)"
[ -z "$NGINX" ] && [ -x /usr/sbin/nginx ] && NGINX=/usr/sbin/nginx
if [ -z "$NGINX" ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "edge_vs_nginx.sh: nginx is missing; run as root to install it (apt-get install nginx)" >&2
    exit 1
  fi
  echo "== installing nginx (apt-get)" >&2
  # Keep the package from starting the system service: this benchmark runs its own nginx.
  POLICY=/usr/sbin/policy-rc.d
  OWN_POLICY=""
  if [ ! -e "$POLICY" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$POLICY" && chmod +x "$POLICY" && OWN_POLICY=1
  fi
  export DEBIAN_FRONTEND=noninteractive
  { apt-get install -y -q nginx-light >/dev/null 2>&1 || apt-get install -y -q nginx >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q nginx >/dev/null; }; } || true
  [ -n "$OWN_POLICY" ] && rm -f "$POLICY"
  NGINX=/usr/sbin/nginx
  [ -x "$NGINX" ] || { echo "edge_vs_nginx.sh: could not install nginx" >&2; exit 1; }
fi

if [ -z "${SKIP_BUILD:-}" ]; then
  echo "== building zest-origin, zest-edge and the load client (release)" >&2
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p zest-origin -p zest-edge --bins
  cargo build --release -q --manifest-path "$ROOT/Cargo.toml" -p zest-edge --example edge_load
fi
ORIGIN_BIN="$CARGO_TARGET_DIR/release/zest-origin"
EDGE_BIN="$CARGO_TARGET_DIR/release/zest-edge"
LOAD="$CARGO_TARGET_DIR/release/examples/edge_load"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { # $1 = URL, $2 = what
  for _ in $(seq 600); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "$2 did not start" >&2; exit 1
}

WORK="$(mktemp -d "${TMPDIR:-/tmp}/zest-edge-bench.XXXXXX")"
chmod 755 "$WORK"
ORIGIN_PID=""; EDGE_PID=""; NGINX_PID=""; SAMPLER_PID=""
cleanup() {
  for p in $SAMPLER_PID $NGINX_PID $EDGE_PID $ORIGIN_PID; do
    kill "$p" 2>/dev/null && wait "$p" 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "== generating $SIZE_MIB MiB of model data" >&2
REPO=bench/edge
mkdir -p "$WORK/models/$REPO"
printf '{"model_type": "zest-edge-bench"}\n' >"$WORK/models/$REPO/config.json"
head -c "$((SIZE_MIB << 20))" /dev/urandom >"$WORK/models/$REPO/model.bin"

ORIGIN_PORT="$(free_port)"
RUST_LOG=warn "$ORIGIN_BIN" --root "$WORK/models" --listen "127.0.0.1:$ORIGIN_PORT" \
  --state-dir "$WORK/origin-state" >"$WORK/origin.log" 2>&1 &
ORIGIN_PID=$!
wait_http "http://127.0.0.1:$ORIGIN_PORT/healthz" zest-origin

EDGE_PORT="$(free_port)"; PEER_PORT="$(free_port)"; DATA_PORT="$(free_port)"
EDGE_ARGS=(--cache-dir "$WORK/edge-cache" --upstream "http://127.0.0.1:$ORIGIN_PORT"
  --listen-http "127.0.0.1:$EDGE_PORT" --listen-peer "127.0.0.1:$PEER_PORT"
  --listen-data "127.0.0.1:$DATA_PORT" --admin-token bench-admin)
[ -n "$EDGE_WORKERS" ] && EDGE_ARGS+=(--workers "$EDGE_WORKERS")
RUST_LOG=warn "$EDGE_BIN" "${EDGE_ARGS[@]}" >"$WORK/edge.log" 2>&1 &
EDGE_PID=$!
EDGE="http://127.0.0.1:$EDGE_PORT"
wait_http "$EDGE/healthz" zest-edge

echo "== warming $REPO into the edge" >&2
curl -sf -X POST -H 'content-type: application/json' -H 'x-zest-admin-token: bench-admin' -d "{\"repo\":\"$REPO\",\"revision\":\"main\"}" \
  "$EDGE/v1/warm" >"$WORK/warm.json" || { echo "warm failed" >&2; cat "$WORK/edge.log" >&2; exit 1; }
echo "   $(cat "$WORK/warm.json")" >&2
"$LOAD" prepare --edge "$EDGE" --repo "$REPO" --file model.bin --out "$WORK/load" \
  --min-bytes "$MIN_RANGE_BYTES" >"$WORK/prepare.txt"
echo "   $(cat "$WORK/prepare.txt")" >&2
RANGES="$(wc -l <"$WORK/load/manifest.tsv")"
RANGE_BYTES="$(awk -F'\t' '{s += $5 - $4 + 1} END {printf "%.1f", s / NR / 1048576}' "$WORK/load/manifest.tsv")"

NGINX_PORT="$(free_port)"
mkdir -p "$WORK/nginx/logs" "$WORK/nginx/tmp"
USER_LINE=""
[ "$(id -u)" = 0 ] && USER_LINE="user root root;"
cat >"$WORK/nginx/nginx.conf" <<EOF
$USER_LINE
worker_processes auto;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/logs/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 100000;
  client_body_temp_path $WORK/nginx/tmp;
  proxy_temp_path $WORK/nginx/tmp;
  fastcgi_temp_path $WORK/nginx/tmp;
  uwsgi_temp_path $WORK/nginx/tmp;
  scgi_temp_path $WORK/nginx/tmp;
  server {
    listen 127.0.0.1:$NGINX_PORT;
    location /files/ { alias $WORK/load/files/; default_type application/octet-stream; }
  }
}
EOF
"$NGINX" -p "$WORK/nginx" -c "$WORK/nginx/nginx.conf" -g 'daemon off;' 2>"$WORK/nginx/logs/stderr" &
NGINX_PID=$!
NGINX_URL="http://127.0.0.1:$NGINX_PORT/files"
wait_http "$NGINX_URL/$(cut -f1-3 "$WORK/load/manifest.tsv" | head -1 | awk '{print $1"."$2"-"$3}')" nginx

# Warm the page cache for both sides once (not measured).
"$LOAD" http --manifest "$WORK/load/manifest.tsv" --files-base "$NGINX_URL" --clients "$RANGES" --fetches 1 >/dev/null
"$LOAD" http --manifest "$WORK/load/manifest.tsv" --edge --clients "$RANGES" --fetches 1 >/dev/null

# Memory of the edge: one line per 0.1 s, "<phase> <VmRSS kB> <RssAnon kB> <RssFile kB>".
PHASE_FILE="$WORK/phase"
echo idle >"$PHASE_FILE"
(
  while kill -0 "$EDGE_PID" 2>/dev/null; do
    awk -v phase="$(cat "$PHASE_FILE")" '/^VmRSS/ {r=$2} /^RssAnon/ {a=$2} /^RssFile/ {f=$2}
      END {print phase, r, a, f}' "/proc/$EDGE_PID/status" 2>/dev/null || true
    sleep 0.1
  done
) >"$WORK/rss.txt" &
SAMPLER_PID=$!
sleep 0.5

run_target() { # $1 = nginx | http | wire; prints GB/s
  local out
  case "$1" in
    nginx) out="$("$LOAD" http --manifest "$WORK/load/manifest.tsv" --files-base "$NGINX_URL" \
             --clients "$CLIENTS" --fetches "$FETCHES")" ;;
    http) echo http >"$PHASE_FILE"
          out="$("$LOAD" http --manifest "$WORK/load/manifest.tsv" --edge \
             --clients "$CLIENTS" --fetches "$FETCHES")" ;;
    wire) echo wire >"$PHASE_FILE"
          out="$("$LOAD" wire --manifest "$WORK/load/manifest.tsv" --peer "127.0.0.1:$PEER_PORT" \
             --clients "$CLIENTS" --fetches "$FETCHES")" ;;
  esac
  echo idle >"$PHASE_FILE"
  sed -n 's/.*gbps=\([0-9.]*\).*/\1/p' <<<"$out"
}

declare -A SAMPLES=([nginx]="" [http]="" [wire]="")
ORDERS=("nginx http wire" "http wire nginx" "wire nginx http")
for r in $(seq "$ROUNDS"); do
  ROW="round $r:"
  for t in ${ORDERS[$(((r - 1) % 3))]}; do
    g="$(run_target "$t")"
    SAMPLES[$t]+="$g "
    ROW+=" $t $g GB/s;"
  done
  echo "   $ROW" >&2
done
sleep 0.3
kill "$SAMPLER_PID" 2>/dev/null && wait "$SAMPLER_PID" 2>/dev/null || true
SAMPLER_PID=""

median() { tr ' ' '\n' <<<"$1" | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
MN="$(median "${SAMPLES[nginx]}")"; MH="$(median "${SAMPLES[http]}")"; MW="$(median "${SAMPLES[wire]}")"
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
mem() { # $1 = phase, $2 = column (2 VmRSS, 3 RssAnon, 4 RssFile); prints "min–max MiB"
  awk -v p="$1" -v c="$2" '$1 == p && $c != "" {v = $c / 1024; if (n == 0 || v < lo) lo = v; if (v > hi) hi = v; n++}
    END {if (n) printf "%.0f–%.0f MiB (%d samples)", lo, hi, n; else print "no samples"}' "$WORK/rss.txt"
}

cat <<EOF

\`bench/edge_vs_nginx.sh\` (SIZE_MIB=$SIZE_MIB CLIENTS=$CLIENTS FETCHES=$FETCHES ROUNDS=$ROUNDS; $RANGES cached ranges of $RANGE_BYTES MiB on average; $(nproc) CPUs; load average $(cut -d' ' -f1-3 /proc/loadavg))

| target | GB/s per round | median GB/s | ratio to nginx |
| --- | --- | --- | --- |
| nginx (sendfile, Range on plain files) | ${SAMPLES[nginx]}| $MN | 1.00 |
| zest-edge data port (sendfile; rewritten xorb URL + Range) | ${SAMPLES[http]}| $MH | $(ratio "$MH" "$MN") |
| zest-edge wire protocol (PeerClient) | ${SAMPLES[wire]}| $MW | $(ratio "$MW" "$MN") |

| edge memory | VmRSS | RssAnon (heap, copies) | RssFile (mapped page cache) |
| --- | --- | --- | --- |
| idle, between runs | $(mem idle 2) | $(mem idle 3) | $(mem idle 4) |
| serving HTTP | $(mem http 2) | $(mem http 3) | $(mem http 4) |
| serving wire | $(mem wire 2) | $(mem wire 3) | $(mem wire 4) |
EOF
