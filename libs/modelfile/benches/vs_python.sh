#!/usr/bin/env bash
# Opens the same GGUF (150,000-token vocabulary, 300 tensors, ~1.3 GB of sparse tensor data) with
# our parser (memory map + parse + summary; examples/gguf_open.rs built with the bench profile) and with
# gguf-py's GGUFReader, in one run, and prints both times, the ratio, and each side's resident
# memory next to the file size.
#
# Usage: libs/modelfile/benches/vs_python.sh [ITERS]
#   env: ZEST_PYTHON (default <repo>/.venv/bin/python), CARGO_TARGET_DIR (default <repo>/target)
set -euo pipefail

source "$(dirname "$0")/../../../bench/lib.sh"
require_python gguf
root="$ZEST_ROOT"
py="$ZEST_PY"
iters="${1:-20}"
target="$ZEST_TARGET"

(cd "$root" && cargo build --quiet --profile bench -p modelfile --example gguf_open)
bin="$target/release/examples/gguf_open"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
file="$work/bench.gguf"
# 300 tensors of 4.5 MB of Q4_K each (a sparse hole on disk), 150k tokens + 150k merges.
"$bin" write "$file" 150000 300 4500000

ours="$("$bin" time "$file" "$iters")"

theirs="$("$py" - "$file" "$iters" <<'EOF'
import json, sys, time

def status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    return 0

path, iters = sys.argv[1], int(sys.argv[2])
import gguf  # imported before measuring, like our binary's startup
rss_before = status_kb("VmRSS:")
times = []
for _ in range(max(1, min(iters, 3))):  # each open takes seconds
    start = time.perf_counter()
    r = gguf.GGUFReader(path)
    n = len(r.tensors)
    vocab = len(r.fields["tokenizer.ggml.tokens"].data)
    times.append(time.perf_counter() - start)
    del r
print(json.dumps({
    "best_ms": min(times) * 1e3,
    "mean_ms": sum(times) / len(times) * 1e3,
    "tensors": n,
    "vocab": vocab,
    "rss_before_kb": rss_before,
    "rss_after_kb": status_kb("VmRSS:"),
    "hwm_kb": status_kb("VmHWM:"),
}))
EOF
)"

"$py" - "$ours" "$theirs" <<'EOF'
import json, sys
ours, theirs = json.loads(sys.argv[1]), json.loads(sys.argv[2])
mb = lambda kb: f"{kb / 1024:.1f} MiB"
print(f"file: {ours['file_len'] / 2**20:.0f} MiB, {ours['tensors']} tensors, "
      f"{theirs['vocab']} tokens")
print(f"zest modelfile (mmap+parse+summary): best {ours['best_ms']:.2f} ms, "
      f"mean {ours['mean_ms']:.2f} ms; RSS {mb(ours['rss_before_kb'])} -> "
      f"{mb(ours['rss_after_kb'])} (peak {mb(ours['hwm_kb'])})")
print(f"gguf-py GGUFReader:                  best {theirs['best_ms']:.1f} ms, "
      f"mean {theirs['mean_ms']:.1f} ms; RSS {mb(theirs['rss_before_kb'])} -> "
      f"{mb(theirs['rss_after_kb'])} (peak {mb(theirs['hwm_kb'])})")
print(f"speedup (best/best): {theirs['best_ms'] / ours['best_ms']:.0f}x")
print(f"our resident growth vs file size: "
      f"{(ours['rss_after_kb'] - ours['rss_before_kb']) * 1024 / ours['file_len'] * 100:.2f}%")
EOF
