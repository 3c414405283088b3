#!/usr/bin/env bash
# Issue 6 "Speed": `zest pull` vs `huggingface_hub.snapshot_download` (with hf_xet) on loopback,
# in one run, printing medians and ratios:
#
#   cold   `zest pull org/model` (HF_ENDPOINT = zest-origin, no tracker, fresh HF_HUB_CACHE and
#          ZEST_CACHE) vs `snapshot_download` (fresh HF_HOME, so fresh hub and xet caches), the two
#          alternating, ROUNDS rounds; median wall time of each, ratio (target >= 1.0x, goal 1.5x).
#   warm   zest-tracker (embedded) + one zest-edge in front of the same origin; one pull through the
#          fleet warms the edge, then ROUNDS pulls with fresh local caches; median vs the cold pull,
#          and the origin's xorb bytes during the warm pulls (expected 0).
#   fleet  origin restarted with its bandwidth capped (CAP_BYTES_PER_SEC, default 100 MB/s), fresh
#          tracker and edge: four `zest pull`s at once through the fleet vs four
#          `snapshot_download`s at once straight from the origin; time until all four are done and
#          the bytes the origin served (xorb + file bytes, from its /metrics) as a multiple of the
#          model size (target <= 1.1x for the fleet).
#
# The model repo (two ~40% safetensors shards and a ~20% GGUF file of incompressible pseudo-random
# bytes, plus config.json and model.safetensors.index.json) is generated once under BENCH_DIR and
# reused, as is the origin's index (its --state-dir). Every pulled file is checked byte for byte
# against the generated one: sha256 for the first pull of each kind, a full byte comparison for the
# others, so a fast wrong pull cannot win.
#
# Timing: zest is timed as a whole process (start-up, listing, fetching, verification, writing the
# cache and its local xorb store). snapshot_download runs in a fresh Python process per download
# and is timed inside Python around the call only (interpreter start-up and imports not counted),
# which favours huggingface_hub; the whole-process time is printed too. Caches are deleted and
# `sync` runs between downloads (not timed), so one run's writeback does not land in the next.
#
# Env: ZEST_PYTHON (default <repo>/.venv/bin/python, needs huggingface_hub + hf_xet + numpy),
#      ZEST_BIN_DIR (folder holding zest, zest-origin, zest-edge, zest-tracker; when unset the script
#      builds them: cargo build --release into CARGO_TARGET_DIR, default <repo>/target, with -j JOBS,
#      default 1), SIZE (model bytes, default 1 GiB), ROUNDS (default 3), CLIENTS (fleet mode,
#      default 4), CAP_BYTES_PER_SEC (default 100000000), BENCH_DIR (default /tmp/zest-bench-pull),
#      BENCH_TIMEOUT (seconds for the whole run, default 3600), ZEST_PULL_LOG (RUST_LOG of the zest
#      pulls, default warn; their stderr is kept under BENCH_DIR/logs), MODES (default
#      "cold warm fleet").
set -euo pipefail

source "$(dirname "$0")/lib.sh"
require_python huggingface_hub hf_xet numpy
repo="$ZEST_ROOT"
python="$ZEST_PY"
dir="${BENCH_DIR:-/tmp/zest-bench-pull}"

if [[ -n "${ZEST_BIN_DIR:-}" ]]; then
    bin="$ZEST_BIN_DIR"
else
    target="$ZEST_TARGET"
    echo "building zest, zest-origin, zest-edge, zest-tracker (release)..." >&2
    (cd "$repo" && CARGO_TARGET_DIR="$target" cargo build --release -q -j "${JOBS:-1}" \
        -p zest -p zest-origin -p zest-edge -p zest-tracker)
    bin="$target/release"
fi
for b in zest zest-origin zest-edge zest-tracker; do
    [[ -x "$bin/$b" ]] || { echo "error: $bin/$b is missing" >&2; exit 1; }
done
mkdir -p "$dir"

"$python" - "$bin" "$dir" "$repo/bench" <<'PY'
import hashlib, json, os, re, resource, shutil, signal, socket, statistics, subprocess
import sys, threading, time, urllib.request

BIN, WORK = sys.argv[1], os.path.abspath(sys.argv[2])
sys.path.insert(0, sys.argv[3])
import zestbench  # noqa: E402  (bench/zestbench.py: the model generator, metrics)
from zestbench import REPO, metrics, origin_bytes  # noqa: E402
SIZE = int(os.environ.get("SIZE", str(1 << 30)))
ROUNDS = max(1, int(os.environ.get("ROUNDS", "3")))
CLIENTS = max(1, int(os.environ.get("CLIENTS", "4")))
CAP = int(os.environ.get("CAP_BYTES_PER_SEC", "100000000"))
MODES = os.environ.get("MODES", "cold warm fleet").split()
PULL_LOG = os.environ.get("ZEST_PULL_LOG", "warn")
DEADLINE = time.monotonic() + float(os.environ.get("BENCH_TIMEOUT", "3600"))
ROOT = os.path.join(WORK, "root")
STATE = os.path.join(WORK, "origin-state")
RUNS = os.path.join(WORK, "runs")
LOGS = os.path.join(WORK, "logs")
PY = sys.executable

procs = []  # (name, Popen) of long-running services, stopped at exit


def left(cap=None):
    """Seconds left before the deadline (at most cap); fails when none is left."""
    s = DEADLINE - time.monotonic()
    if s <= 0:
        raise SystemExit("error: BENCH_TIMEOUT reached")
    return s if cap is None else min(s, cap)


def stop(p):
    if p.stdin:
        p.stdin.close()  # --exit-on-stdin-eof
    if p.poll() is None:
        p.terminate()
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=10)


def stop_all():
    while procs:
        _, p = procs.pop()
        stop(p)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
signal.signal(signal.SIGHUP, lambda *_: sys.exit(129))


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read()


def wait_http(url, p, name, secs=60, contains=None):
    end = time.monotonic() + left(secs)
    while time.monotonic() < end:
        if p.poll() is not None:
            raise SystemExit(f"error: {name} exited with {p.returncode} (logs in {LOGS})")
        try:
            st, body = http_get(url, timeout=2)
            if st == 200 and (contains is None or contains.encode() in body):
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"error: {name} not ready at {url} after {secs} s (logs in {LOGS})")


# ---------------------------------------------------------------- the model repo

def generate():
    """Writes the repo once; returns {path: (size, sha256)} (reused when already complete)."""
    return zestbench.generate(WORK, SIZE, log=log)


# ---------------------------------------------------------------- services

def start_origin(tag, extra=()):
    logf = open(os.path.join(LOGS, f"origin-{tag}.log"), "w")
    p = subprocess.Popen(
        [os.path.join(BIN, "zest-origin"), "--root", ROOT, "--state-dir", STATE,
         "--listen", "127.0.0.1:0", "--log-format", "json", "--exit-on-stdin-eof", *extra],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=logf,
        env=dict(os.environ, RUST_LOG="info"))
    procs.append(("origin", p))
    end = time.monotonic() + left(900)
    while time.monotonic() < end:
        if p.poll() is not None:
            raise SystemExit(f"error: zest-origin exited with {p.returncode}, see {logf.name}")
        with open(logf.name) as f:
            for line in f:
                if "zest-origin ready" in line:
                    m = re.search(r'"addr":"([^"]+)"', line)
                    if m:
                        return p, "http://" + m.group(1)
        time.sleep(0.2)
    raise SystemExit("error: zest-origin not ready after 900 s")


def start_fleet(origin_url, tag):
    """Embedded tracker + one edge in front of origin_url; returns (tracker_url, edge_url)."""
    tport = free_port()
    tracker = f"http://127.0.0.1:{tport}"
    p = subprocess.Popen(
        [os.path.join(BIN, "zest-tracker"), "--listen", f"127.0.0.1:{tport}", "--no-auth"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(LOGS, f"tracker-{tag}.log"), "w"),
        env=dict(os.environ, RUST_LOG="warn"))
    procs.append(("tracker", p))
    wait_http(tracker + "/healthz", p, "zest-tracker")
    hport, pport, dport = free_port(), free_port(), free_port()
    edge_dir = os.path.join(WORK, f"edge-{tag}")
    shutil.rmtree(edge_dir, ignore_errors=True)
    e = subprocess.Popen(
        [os.path.join(BIN, "zest-edge"), "--cache-dir", edge_dir, "--cache-size", "20G",
         "--upstream", origin_url, "--tracker", tracker,
         "--listen-http", f"127.0.0.1:{hport}", "--listen-peer", f"127.0.0.1:{pport}",
         "--listen-data", f"127.0.0.1:{dport}",
         "--peer-id", "edge-1", "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(LOGS, f"edge-{tag}.log"), "w"),
        env=dict(os.environ, RUST_LOG="info"))
    procs.append(("edge", e))
    wait_http(f"http://127.0.0.1:{hport}/healthz", e, "zest-edge")
    wait_http(tracker + "/v1/peers", p, "zest-tracker (edge announce)", contains='"edge-1"')
    return tracker, f"http://127.0.0.1:{hport}"


# ---------------------------------------------------------------- clients

HF_CODE = r"""
import json, sys, time
t0 = time.perf_counter()
from huggingface_hub import snapshot_download
t1 = time.perf_counter()
path = snapshot_download(sys.argv[1])
t2 = time.perf_counter()
print(json.dumps({"path": path, "import_s": t1 - t0, "call_s": t2 - t1}))
"""

CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("HF_", "ZEST_", "HUGGINGFACE_", "RUST_LOG"))}


def fresh(tag):
    d = os.path.join(RUNS, tag)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def zest_cmd(tag, origin, tracker=None):
    d = fresh(tag)
    env = dict(CLEAN_ENV, HF_ENDPOINT=origin, HF_HOME=os.path.join(d, "hf"),
               HF_HUB_CACHE=os.path.join(d, "hub"), ZEST_CACHE=os.path.join(d, "zest"),
               ZEST_PEER_ID=tag, RUST_LOG=PULL_LOG)
    if tracker:
        env["ZEST_TRACKER"] = tracker
    return [os.path.join(BIN, "zest"), "pull", REPO, "--json", "--quiet"], env, d


def hf_cmd(tag, origin):
    d = fresh(tag)
    env = dict(CLEAN_ENV, HF_ENDPOINT=origin, HF_HOME=os.path.join(d, "hf"),
               HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    return [PY, "-c", HF_CODE, REPO], env, d


def run_many(jobs):
    """Starts every (kind, tag, cmd, env, dir) at once; returns per job its result dict and the
    wall time until the last one finished."""
    res = [None] * len(jobs)
    t0 = time.perf_counter()

    def one(i, kind, tag, cmd, env, d):
        t = time.perf_counter()
        errf = open(os.path.join(LOGS, f"{tag}.stderr"), "w")
        try:
            p = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=errf, timeout=left(1800))
        except subprocess.TimeoutExpired:
            res[i] = {"error": "timed out"}
            return
        wall = time.perf_counter() - t
        if p.returncode != 0:
            res[i] = {"error": f"exit {p.returncode}, see {errf.name}"}
            return
        out = json.loads(p.stdout)
        r = {"kind": kind, "tag": tag, "dir": d, "wall": wall}
        if kind == "zest":
            r.update(time=wall, snapshot=out["snapshot"], bytes=out["bytes"],
                     internal=out["duration_ms"] / 1000)
        else:
            r.update(time=out["call_s"], snapshot=out["path"], process=wall)
        res[i] = r

    threads = [threading.Thread(target=one, args=(i, *j)) for i, j in enumerate(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    total = time.perf_counter() - t0
    for j, r in zip(jobs, res):
        if r is None or "error" in r:
            raise SystemExit(f"error: {j[1]} failed: {r and r['error']}")
    return res, total


def cpu_children():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_one(kind, tag, origin, tracker=None):
    cmd, env, d = zest_cmd(tag, origin, tracker) if kind == "zest" else hf_cmd(tag, origin)
    subprocess.run(["sync"], check=False)
    c = cpu_children()
    (r,), _ = run_many([(kind, tag, cmd, env, d)])
    r["cpu"] = cpu_children() - c
    return r


FILES = {}
verified = {}


def verify(r, mode):
    """Every generated file is in the snapshot with the same bytes: sha256 the first time a
    (mode, client kind) is seen, a byte comparison with the generated file otherwise."""
    key = (mode, r["kind"])
    strict = key not in verified
    snap = r["snapshot"]
    got = sorted(os.path.relpath(os.path.join(dp, f), snap)
                 for dp, _, fs in os.walk(snap) for f in fs)
    if got != sorted(FILES):
        raise SystemExit(f"error: {r['tag']}: snapshot files {got} != {sorted(FILES)}")
    for rel, (size, sha) in FILES.items():
        p = os.path.join(snap, rel)
        if os.path.getsize(p) != size:
            raise SystemExit(f"error: {r['tag']}: {rel} has {os.path.getsize(p)} bytes, not {size}")
        if strict:
            h = hashlib.sha256()
            with open(p, "rb") as f:
                while b := f.read(8 << 20):
                    h.update(b)
            if h.hexdigest() != sha:
                raise SystemExit(f"error: {r['tag']}: {rel} sha256 mismatch")
        else:
            with open(p, "rb") as a, open(os.path.join(ROOT, REPO, rel), "rb") as b:
                while True:
                    x, y = a.read(8 << 20), b.read(8 << 20)
                    if x != y:
                        raise SystemExit(f"error: {r['tag']}: {rel} differs from the original")
                    if not x:
                        break
    verified[key] = verified.get(key, 0) + 1
    r["verified"] = "sha256" if strict else "bytes"


def done(r):
    shutil.rmtree(r["dir"], ignore_errors=True)


def walls(res, key):
    return ", ".join(f"{r[key]:.1f}" for r in res)


def mb(n):
    return f"{n / 1e6:,.1f} MB"


# ---------------------------------------------------------------- the run

def main():
    for d in (RUNS, LOGS):
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    FILES.update(generate())
    model = sum(s for s, _ in FILES.values())
    log(f"model: {len(FILES)} files, {model:,} bytes")
    t = time.perf_counter()
    origin_p, origin = start_origin("plain")
    log(f"zest-origin ready on {origin} ({time.perf_counter() - t:.1f} s, index in {STATE})")
    rows = []  # (mode, what, figures...)
    lines = []

    def say(s):
        lines.append(s)
        print(s, flush=True)

    cold_zest = None
    if "cold" in MODES:
        zs, hs = [], []
        for i in range(ROUNDS):
            order = ["zest", "hf"] if i % 2 == 0 else ["hf", "zest"]
            for kind in order:
                before = origin_bytes(origin)
                r = run_one(kind, f"cold-{kind}-{i + 1}", origin)
                after = origin_bytes(origin)
                r["origin"] = (after[0] - before[0]) + (after[1] - before[1])
                verify(r, "cold")
                done(r)
                (zs if kind == "zest" else hs).append(r)
                extra = (f"(in-process {r['internal']:.2f} s, upstream {mb(r['bytes']['upstream'])})"
                         if kind == "zest" else f"(whole process {r['process']:.2f} s)")
                say(f"cold round {i + 1}: {kind:4} {r['time']:7.2f} s  cpu {r['cpu']:6.2f} s  "
                    f"origin served {mb(r['origin'])}  {extra}  verified {r['verified']}")
        zm = statistics.median(r["time"] for r in zs)
        hm = statistics.median(r["time"] for r in hs)
        cold_zest = zm
        hp = statistics.median(r["process"] for r in hs)
        rows.append(("cold", "zest pull", f"{zm:.2f} s", f"{model / zm / 1e9:.2f} GB/s",
                     f"cpu {statistics.median(r['cpu'] for r in zs):.1f} s",
                     f"origin {statistics.median(r['origin'] for r in zs) / model:.2f}x"))
        rows.append(("cold", "snapshot_download", f"{hm:.2f} s", f"{model / hm / 1e9:.2f} GB/s",
                     f"cpu {statistics.median(r['cpu'] for r in hs):.1f} s",
                     f"origin {statistics.median(r['origin'] for r in hs) / model:.2f}x"))
        rows.append(("cold", "ratio hf/zest", f"{hm / zm:.2f}x",
                     "target >= 1.0x, goal 1.5x", f"(whole-process hf: {hp / zm:.2f}x)", ""))

    if "warm" in MODES:
        tracker, edge = start_fleet(origin, "warm")
        b0 = origin_bytes(origin)
        w = run_one("zest", "warm-first", origin, tracker)
        b1 = origin_bytes(origin)
        verify(w, "warm")
        done(w)
        say(f"warm first pull (fills the edge): {w['time']:.2f} s  edges {mb(w['bytes']['edges'])}"
            f"  upstream {mb(w['bytes']['upstream'])}  origin served {mb(sum(b1) - sum(b0))}")
        time.sleep(4)  # the edge announces its new ranges after a short debounce
        ws = []
        for i in range(ROUNDS):
            before = origin_bytes(origin)
            r = run_one("zest", f"warm-{i + 1}", origin, tracker)
            after = origin_bytes(origin)
            r["origin_xorb"] = after[0] - before[0]
            verify(r, "warm")
            done(r)
            ws.append(r)
            say(f"warm pull {i + 1}: {r['time']:.2f} s  cpu {r['cpu']:.2f} s  edges "
                f"{mb(r['bytes']['edges'])}  upstream {mb(r['bytes']['upstream'])}  "
                f"origin xorb bytes {mb(r['origin_xorb'])}  verified {r['verified']}")
        wm = statistics.median(r["time"] for r in ws)
        rows.append(("warm", "zest pull, first (fills edge)", f"{w['time']:.2f} s",
                     f"{model / w['time'] / 1e9:.2f} GB/s", "", ""))
        rows.append(("warm", "zest pull from edge", f"{wm:.2f} s", f"{model / wm / 1e9:.2f} GB/s",
                     f"cpu {statistics.median(r['cpu'] for r in ws):.1f} s",
                     f"origin xorb {max(r['origin_xorb'] for r in ws) / model:.2f}x"))
        if cold_zest:
            rows.append(("warm", "ratio cold/warm", f"{cold_zest / wm:.2f}x", "", "", ""))
        stop_all()
    else:
        stop_all()

    if "fleet" in MODES:
        origin_p, origin = start_origin("capped", ["--fault-bandwidth-bytes-per-sec", str(CAP)])
        tracker, edge = start_fleet(origin, "fleet")
        subprocess.run(["sync"], check=False)
        before = origin_bytes(origin)
        jobs = [("zest", f"fleet-zest-{i + 1}", *zest_cmd(f"fleet-zest-{i + 1}", origin, tracker))
                for i in range(CLIENTS)]
        zres, zt = run_many(jobs)
        after = origin_bytes(origin)
        zb = (after[0] - before[0]) + (after[1] - before[1])
        for r in zres:
            verify(r, "fleet")
            done(r)
        em = metrics(edge)
        say(f"fleet: {CLIENTS} zest pulls at once through tracker + edge: all done in {zt:.2f} s "
            f"(each {walls(zres, 'wall')} s); origin served {mb(zb)} = "
            f"{zb / model:.2f}x the model; edge fetched {mb(em.get('zest_edge_bytes_fetched_total', 0))}"
            f", coalesced {int(em.get('zest_edge_coalesced_requests_total', 0))}")
        for r in zres:
            say(f"  {r['tag']}: edges {mb(r['bytes']['edges'])} peers {mb(r['bytes']['peers'])} "
                f"upstream {mb(r['bytes']['upstream'])}  verified {r['verified']}")
        stop_all()
        # The HF side gets the same freshly started capped origin.
        origin_p, origin = start_origin("capped-hf", ["--fault-bandwidth-bytes-per-sec", str(CAP)])
        subprocess.run(["sync"], check=False)
        before = origin_bytes(origin)
        jobs = [("hf", f"fleet-hf-{i + 1}", *hf_cmd(f"fleet-hf-{i + 1}", origin))
                for i in range(CLIENTS)]
        hres, ht = run_many(jobs)
        after = origin_bytes(origin)
        hb = (after[0] - before[0]) + (after[1] - before[1])
        for r in hres:
            verify(r, "fleet")
            done(r)
        say(f"fleet: {CLIENTS} snapshot_downloads at once from the origin: all done in {ht:.2f} s "
            f"(each {walls(hres, 'process')} s as processes); "
            f"origin served {mb(hb)} = {hb / model:.2f}x the model")
        rows.append(("fleet", f"{CLIENTS}x zest pull via edge", f"{zt:.2f} s",
                     f"origin {zb / model:.2f}x model", "target <= 1.1x", ""))
        rows.append(("fleet", f"{CLIENTS}x snapshot_download", f"{ht:.2f} s",
                     f"origin {hb / model:.2f}x model", "", ""))
        rows.append(("fleet", "ratio hf/zest (time)", f"{ht / zt:.2f}x",
                     f"origin cap {CAP / 1e6:.0f} MB/s", "", ""))
        stop_all()

    print()
    print(f"model {REPO}: {model:,} bytes in {len(FILES)} files; rounds {ROUNDS}; "
          f"{os.cpu_count()} cores; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    print(f"{'mode':6} | {'what':30} | {'median / time':>13} | {'':26} | {'':16} | ")
    print("-" * 110)
    for r in rows:
        print(f"{r[0]:6} | {r[1]:30} | {r[2]:>13} | {r[3]:26} | {r[4]:16} | {r[5]}")
    print("every pulled file verified: " + ", ".join(
        f"{m}/{k} x{n}" for (m, k), n in sorted(verified.items())))


try:
    main()
finally:
    stop_all()
    shutil.rmtree(RUNS, ignore_errors=True)
    for tag in ("warm", "fleet"):
        shutil.rmtree(os.path.join(WORK, f"edge-{tag}"), ignore_errors=True)
PY
