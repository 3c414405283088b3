#!/usr/bin/env bash
# Remote `zest inspect` of a multi-GB GGUF held by zest-origin (issue 7 "Show it works"):
# prints the bytes fetched (reconstruction JSON + xorb ranges) against the file size, the number
# of requests and the wall time, and checks that the remote summary equals the local one.
#
# The GGUF is written by the real `gguf` writer (client/tests/big_gguf.py, shape `bench`): llama metadata, a 150,000-token vocabulary, a
# pseudo-random F16 embedding tensor of 64 MiB, then zero-filled tensors up to SIZE bytes.
#
# Env: ZEST_PYTHON (default <repo>/.venv/bin/python), CARGO_TARGET_DIR (default <repo>/target),
#      SIZE (default 2 GiB), BENCH_DIR (default /tmp/zest-bench-inspect), PROFILE (debug|release,
#      default debug), JOBS (cargo -j, default 1).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
require_python gguf numpy
repo="$ZEST_ROOT"
python="$ZEST_PY"
target="$ZEST_TARGET"
size="${SIZE:-$((2 * 1024 * 1024 * 1024))}"
dir="${BENCH_DIR:-/tmp/zest-bench-inspect}"
profile="${PROFILE:-debug}"

flags=()
[[ "$profile" == release ]] && flags=(--release)
(cd "$repo" && CARGO_TARGET_DIR="$target" cargo build -q -j "${JOBS:-1}" "${flags[@]}" -p zest -p zest-origin)
zest="$target/$profile/zest"
origin="$target/$profile/zest-origin"

file="$dir/root/org/model/big.gguf"
if [[ ! -f "$file" || "$(stat -c %s "$file")" -lt "$((size - (8 << 20)))" ]]; then
    echo "writing $file (~$size bytes)..." >&2
    mkdir -p "$(dirname "$file")"
    "$python" "$repo/client/tests/big_gguf.py" "$file.tmp" "$size" bench
    mv "$file.tmp" "$file"
fi
file_len="$(stat -c %s "$file")"

log="$dir/origin.log"
"$origin" --root "$dir/root" --state-dir "$dir/state" --listen 127.0.0.1:0 --log-format json \
    2> "$log" &
origin_pid=$!
trap 'kill "$origin_pid" 2>/dev/null || true' EXIT
echo "zest-origin indexing $file_len bytes..." >&2
addr=""
for _ in $(seq 1 900); do
    addr="$(grep -o '"message":"zest-origin ready".*' "$log" | grep -o '"addr":"[^"]*"' | head -1 | cut -d'"' -f4 || true)"
    [[ -n "$addr" ]] && break
    kill -0 "$origin_pid" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.2
done
[[ -n "$addr" ]] || { echo "error: zest-origin not ready after 180 s" >&2; exit 1; }

"$zest" inspect --json "$file" > "$dir/local.json"
start=$(date +%s.%N)
HF_ENDPOINT="http://$addr" "$zest" inspect org/model big.gguf --json > "$dir/remote.json"
end=$(date +%s.%N)

"$python" - "$dir/local.json" "$dir/remote.json" "$start" "$end" <<'EOF'
import json, sys
local = json.load(open(sys.argv[1]))
remote = json.load(open(sys.argv[2]))
stats = remote.pop("remote")
assert remote == local, "remote summary differs from the local one"
secs = float(sys.argv[4]) - float(sys.argv[3])
pct = stats["bytes_fetched"] * 100 / stats["file_len"]
print(f"file          {stats['file_len']:>14,} bytes  (header {local['header_len']:,} bytes, "
      f"{local['tensor_count']} tensors, vocab {local['hyperparameters']['vocab_size']})")
print(f"prefix parsed {stats['prefix_bytes']:>14,} bytes")
print(f"fetched       {stats['bytes_fetched']:>14,} bytes  = {pct:.4f}% of the file "
      f"(target < 1%)  in {stats['requests']} requests, {secs:.2f} s wall")
print("remote summary == local summary: yes")
sys.exit(0 if pct < 1 else 1)
EOF
