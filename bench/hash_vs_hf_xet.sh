#!/usr/bin/env bash
# End-to-end: `zest hash --no-sha256` vs `hf_xet.hash_files` (PyPI) on the same 1 GiB file of
# random bytes, in one run, alternating, 5 timed runs each after one warm-up each.
# Prints the median wall time of each side, throughput and the ratio (target >= 1.0x), and
# the median CPU time (user+sys over all threads), which a busy machine distorts less.
#
# zest is timed as a whole process (start-up, mmap, hashing, output); hf_xet is timed inside
# Python around the hash_files call only (interpreter start-up and import not counted), which
# favours hf_xet. Both outputs must agree on the hash, or the script fails.
#
# Env: ZEST_PYTHON (default <repo>/.venv/bin/python), CARGO_TARGET_DIR (default <repo>/target),
#      BENCH_FILE (default /tmp/zest-bench-1GiB.bin), RUNS (default 5), JOBS (cargo -j, default 1).
set -euo pipefail

source "$(dirname "$0")/lib.sh"
require_python hf_xet
repo="$ZEST_ROOT"
python="$ZEST_PY"
target="$ZEST_TARGET"
file="${BENCH_FILE:-/tmp/zest-bench-1GiB.bin}"
runs="${RUNS:-5}"
size=$((1024 * 1024 * 1024))

if [[ ! -f "$file" || "$(stat -c %s "$file")" != "$size" ]]; then
    echo "creating $file (1 GiB of random bytes)..." >&2
    head -c "$size" /dev/urandom > "$file.tmp"
    mv "$file.tmp" "$file"
fi

echo "building zest (release)..." >&2
(cd "$repo" && cargo build --release -p zest -j "${JOBS:-1}" >&2)
zest="$target/release/zest"

"$python" - "$zest" "$file" "$runs" <<'PY'
import json, os, resource, statistics, subprocess, sys, time
import hf_xet

zest, path, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
size = os.path.getsize(path)

def cpu(who):
    r = resource.getrusage(who)
    return r.ru_utime + r.ru_stime

def run_zest():
    c, t = cpu(resource.RUSAGE_CHILDREN), time.perf_counter()
    out = subprocess.run([zest, "hash", "--json", "--no-sha256", path],
                         check=True, capture_output=True).stdout
    wall = time.perf_counter() - t
    cpu_zest.append(cpu(resource.RUSAGE_CHILDREN) - c)
    return wall, json.loads(out)[0]["xet_hash"]

def run_hf_xet():
    c, t = cpu(resource.RUSAGE_SELF), time.perf_counter()
    info = hf_xet.hash_files([path])[0]
    wall = time.perf_counter() - t
    cpu_hf.append(cpu(resource.RUSAGE_SELF) - c)
    return wall, info.hash

cpu_zest, cpu_hf = [], []

# Warm-up (page cache, hf_xet runtime), and the two must agree.
_, ours = run_zest()
_, theirs = run_hf_xet()
if ours != theirs:
    sys.exit(f"MISMATCH: zest {ours} vs hf_xet {theirs}")

cpu_zest.clear()
cpu_hf.clear()
zt, ht = [], []
for i in range(runs):
    z, _ = run_zest()
    h, _ = run_hf_xet()
    zt.append(z)
    ht.append(h)
    print(f"run {i + 1}: zest {z:.3f} s   hf_xet {h:.3f} s", flush=True)

zm, hm = statistics.median(zt), statistics.median(ht)
gb = size / 1e9
print(f"file: {path} ({size} bytes), cores: {os.cpu_count()}, hash {ours}")
print(f"zest hash --no-sha256 : median {zm:.3f} s  ({gb / zm:.2f} GB/s)")
print(f"hf_xet.hash_files     : median {hm:.3f} s  ({gb / hm:.2f} GB/s)")
print(f"ratio (hf_xet time / zest time): {hm / zm:.2f}x  (target >= 1.0x)")
czm, chm = statistics.median(cpu_zest), statistics.median(cpu_hf)
print(f"CPU time (user+sys, all threads): zest {czm:.3f} s, hf_xet {chm:.3f} s, "
      f"ratio {chm / czm:.2f}x")
print(f"load average (1 min) at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
PY
