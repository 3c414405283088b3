#!/usr/bin/env python3
"""The fleet lab (issue 13): many hosts with real, shaped links in network namespaces, the
headline benchmark, and fault runs.

Hosts (each a network namespace on one bridge, see netlab.py): `origin` (zest-origin, uplink
--origin-up, the org's WAN link to the CDN), `tracker` (embedded zest-tracker), `edge1..E`
(zest-edge, --edge-up/--edge-down) and `c1..N` (clients, --client-up/--client-down). Subnet
10.77.0.0/24 by default; no namespace has a route out.

Runs (--runs, comma-separated, in this order):
  hf     N x huggingface_hub.snapshot_download straight from the origin (the status quo).
  fleet  N x `zest pull` through the edges + tracker, all started within one second: edges and
         the swarm (every pull serves the others while it pulls).
  edges  the same with edges only, no client-to-client sharing (`zest pull --no-serve`).
  swarm  the swarm only: a tracker and no edge.
A zest client's time is until its files are in place (the summary's duration); a swarm member
then keeps serving while others still ask it (at most 30 s), and "max exit" says when the last
process ended.
Faults (--faults, each one more `fleet` run with the fault injected, compared with the clean one):
  edge-kill        SIGKILL edge1 once the origin has sent --fault-at of the model's xorb bytes.
  tracker-restart  SIGKILL the tracker at the same point, start a new one on the same address.
  origin-429       the origin answers 429 to 30% of requests (--fault-429-rate 0.3).
  silent-peer      a host that accepts TCP connections and never answers, announced to the
                   tracker as an edge holding every xorb of the model.
  liar             a `swarm` run (no edge) with one more host, a `zest seed` that holds the whole
                   model and serves it with one byte altered in every blob (it pulled the model
                   straight from the origin before the run, then its cache was altered).
  redis-restart    the tracker keeps its hot state in a Redis on the tracker host (and durable
                   state in a PostgreSQL there); at --fault-at, Redis is SIGKILLed and a new,
                   empty one starts 3 s later on the same port.
  pg-restart       the same tracker; at --fault-at, PostgreSQL gets an immediate shutdown
                   (SIGQUIT: connections drop as in a crash) and starts again 3 s later.
  disk-full        edge1's cache directory is a tmpfs of --fault-disk-share x F (its quota is
                   larger), so the edge's disk fills up mid-run.
Each run starts a fresh tracker (with a fresh database and Redis when it uses them) and fresh edges
(empty caches) and fresh client caches; every
client's files are compared byte for byte with the origin's; the lab's namespaces and processes
are removed on exit, error, Ctrl-C and SIGTERM.

Defaults (N = 8, E = 1, a 2 GiB model, origin up 100 Mbit/s, edge up 500 Mbit/s, clients
250 Mbit/s each way) keep the lab's traffic at most ~60 MB/s in total, so a run is bound by its
links, not by 2 cores. At 2 GiB the `hf` run alone takes about 24 minutes and a zest run about 5;
`--size 256M` gives the quick report (every run and fault in about 15 minutes).
Latency (netem) is off by default: the project's VM kernel has no sch_netem.

Prints one table (markdown) and writes --json (every completion time, for bench/fleet/plot.py).
Needs root (ip netns, tc), the zest binaries (--bin-dir, default <repo>/target/release) and a
Python with huggingface_hub + hf_xet + numpy (--python, default $ZEST_PYTHON).
"""

import argparse
import glob
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

try:
    import numpy  # noqa: F401  (zestbench needs it; the venv with huggingface_hub has it)
except ImportError:
    _py = os.environ.get("ZEST_PYTHON", os.path.join(REPO_ROOT, ".venv/bin/python"))
    if os.access(_py, os.X_OK) and not os.environ.get("ZEST_FLEET_REEXEC"):
        os.environ["ZEST_FLEET_REEXEC"] = "1"  # once: no loop if that Python lacks numpy too
        os.execv(_py, [_py, os.path.abspath(__file__), *sys.argv[1:]])
    raise SystemExit(f"error: {sys.executable} has no numpy; set ZEST_PYTHON to the venv python")

import netlab  # noqa: E402
import zestbench  # noqa: E402
from netlab import LabError, rate_bytes  # noqa: E402

ORIGIN_PORT, TRACKER_PORT = 8080, 7070
EDGE_HTTP, EDGE_PEER, EDGE_DATA = 8081, 7071, 8082
FAULTS = ("edge-kill", "tracker-restart", "origin-429", "silent-peer", "liar", "redis-restart",
          "pg-restart", "disk-full")
# The clean run a fault run is the same as (and compared with); `fleet` unless named here.
FAULT_BASE = {"liar": "swarm"}
# Faults injected at --fault-at while the clients run (the others are set up before).
TIMED_FAULTS = ("edge-kill", "tracker-restart", "redis-restart", "pg-restart")
PG_PORT, REDIS_PORT, LIAR_PORT = 5432, 6379, 7072

HF_CODE = r"""
import json, sys, time
from huggingface_hub import snapshot_download
t = time.perf_counter()
path = snapshot_download(sys.argv[1])
print(json.dumps({"path": path, "call_s": time.perf_counter() - t}))
"""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def parse_size(s):
    s = s.strip().upper()
    mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    if s and s[-1] in mult:
        return int(float(s[:-1]) * mult[s[-1]])
    return int(s)


def cpu_times():
    """(busy, total, niced) jiffies of the whole machine from /proc/stat; busy leaves out niced
    work (e.g. a compiler at nice 19 yields to the lab, which runs at nice 0)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    return sum(v) - idle - v[1], sum(v), v[1]


def proc_cpu_s(p):
    """CPU seconds (user + system) of a live process, 0 once it is gone."""
    try:
        with open(f"/proc/{p.pid}/stat") as f:
            v = f.read().rsplit(")", 1)[1].split()
        return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def children_cpu_s():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def pct(xs, p):
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


class Fleet:
    def __init__(self, a):
        self.a = a
        self.work = os.path.abspath(a.work)
        self.bin = a.bin_dir
        self.logs = os.path.join(self.work, "logs")
        self.runs_dir = os.path.join(self.work, "runs")
        for d in (self.logs, self.runs_dir):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
        self.lab = None
        self.origin = self.tracker = self.pg = self.redis = None
        self.edges = []
        self.mounts = []
        self.clean_env = {k: v for k, v in os.environ.items()
                          if not k.startswith(("HF_", "ZEST_", "HUGGINGFACE_", "RUST_LOG"))}

    # ------------------------------------------------------------ the lab

    def build(self):
        a = self.a
        self.lab = lab = netlab.Lab(a.prefix, a.subnet)
        lab.add_host("origin", up=a.origin_up, down=a.lan, latency_ms=a.latency_ms)
        lab.add_host("tracker", up=a.lan, down=a.lan, latency_ms=a.latency_ms)
        for i in range(a.edges):
            lab.add_host(f"edge{i + 1}", up=a.edge_up, down=a.edge_down, latency_ms=a.latency_ms)
        for i in range(a.clients):
            lab.add_host(f"c{i + 1}", up=a.client_up, down=a.client_down, latency_ms=a.latency_ms)
        if "silent-peer" in a.faults:
            lab.add_host("silent", up=a.lan, down=a.lan, latency_ms=a.latency_ms)
        if "liar" in a.faults:
            lab.add_host("liar", up=a.client_up, down=a.client_down, latency_ms=a.latency_ms)
        log(f"lab: {len(lab.hosts)} namespaces {a.prefix}-* on {a.subnet}.0/24")

    def url(self, host, port):
        return f"http://{self.lab.ip(host)}:{port}"

    def start_origin(self, extra=()):
        cmd = [os.path.join(self.bin, "zest-origin"), "--root", self.root, "--state-dir",
               self.state, "--listen", f"{self.lab.ip('origin')}:{ORIGIN_PORT}",
               "--log-format", "json", "--workers", "2", *extra]
        env = dict(self.clean_env, RUST_LOG="info")
        p = self.lab.popen("origin", cmd, os.path.join(self.logs, "origin.log"), env=env)
        self.lab.wait_http(self.url("origin", ORIGIN_PORT) + "/readyz", p, "zest-origin", 1800)
        self.origin = p

    def stop(self, p):
        self.lab.stop(p)
        self.lab.forget(p)

    def start_tracker(self, stores=False):
        """The tracker; with `stores`, on a PostgreSQL and a Redis of its own host (fresh ones),
        else embedded."""
        cmd = [os.path.join(self.bin, "zest-tracker"), "--listen",
               f"{self.lab.ip('tracker')}:{TRACKER_PORT}", "--no-auth", "--log-format", "json"]
        if stores:
            self.start_pg(fresh=True)
            self.start_redis()
            cmd += ["--database-url", f"postgres://postgres@127.0.0.1:{PG_PORT}/zest",
                    "--redis-url", f"redis://127.0.0.1:{REDIS_PORT}"]
        env = dict(self.clean_env, RUST_LOG="info")
        p = self.lab.popen("tracker", cmd, os.path.join(self.logs, "tracker.log"), env=env)
        self.lab.wait_http(self.url("tracker", TRACKER_PORT) + "/healthz", p, "zest-tracker", 60)
        self.tracker = p

    def start_edges(self, tag, disk=None):
        self.edges = []
        tracker = self.url("tracker", TRACKER_PORT)
        for i in range(self.a.edges):
            h = f"edge{i + 1}"
            ip = self.lab.ip(h)
            cache = os.path.join(self.runs_dir, f"{tag}-{h}")
            shutil.rmtree(cache, ignore_errors=True)
            if disk is not None and i == 0:
                self.mount_small_disk(cache, disk)
            cmd = [os.path.join(self.bin, "zest-edge"), "--cache-dir", cache, "--cache-size",
                   "50G", "--upstream", self.url("origin", ORIGIN_PORT), "--tracker", tracker,
                   "--listen-http", f"{ip}:{EDGE_HTTP}", "--listen-peer", f"{ip}:{EDGE_PEER}",
                   "--listen-data", f"{ip}:{EDGE_DATA}", "--peer-id", h, "--log-format", "json",
                   "--workers", "2"]
            env = dict(self.clean_env, RUST_LOG="info")
            p = self.lab.popen(h, cmd, os.path.join(self.logs, f"{tag}-{h}.log"), env=env)
            self.edges.append(p)
        for i, p in enumerate(self.edges):
            h = f"edge{i + 1}"
            self.lab.wait_http(self.url(h, EDGE_HTTP) + "/healthz", p, f"zest-edge {h}", 60)
            self.lab.wait_http(tracker + "/v1/peers", self.tracker, f"tracker (announce of {h})",
                               60, contains=f'"{h}"')

    def stop_fleet(self):
        for p in self.edges:
            self.stop(p)
        self.edges = []
        if self.tracker is not None:
            self.stop(self.tracker)
            self.tracker = None
        for p in (self.pg, self.redis):
            if p is not None:
                self.stop(p)
        self.pg = self.redis = None
        self.unmount()

    # ------------------------------------------------------------ the tracker's stores

    def in_tracker(self, *argv):
        """Runs a command in the tracker's namespace; returns whether it exited 0."""
        r = subprocess.run(["ip", "netns", "exec", self.lab.ns("tracker"), *argv],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        return r.returncode == 0

    def wait_for(self, what, p, ok, secs=60):
        deadline = time.monotonic() + secs
        while not ok():
            if p.poll() is not None:
                raise LabError(f"{what} exited with {p.returncode} (logs in {self.logs})")
            if time.monotonic() > deadline:
                raise LabError(f"{what} not ready after {secs} s (logs in {self.logs})")
            time.sleep(0.2)

    def start_pg(self, fresh=False):
        """A PostgreSQL cluster of the lab (made once with initdb, owned by `postgres`) listening
        on the tracker host's loopback; `fresh` recreates the tracker's database."""
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not bins:
            raise LabError("PostgreSQL is not installed (scripts/test installs it)")
        pgbin = os.path.dirname(bins[-1])
        as_pg = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups"]
        data = os.path.join(self.work, "pg")
        if not os.path.exists(os.path.join(data, "PG_VERSION")):
            shutil.rmtree(data, ignore_errors=True)
            os.makedirs(data, mode=0o700)
            shutil.chown(data, "postgres", "postgres")
            subprocess.run([*as_pg, os.path.join(pgbin, "initdb"), "-D", data, "-U", "postgres",
                            "--auth=trust", "-E", "UTF8"], check=True,
                           stdout=subprocess.DEVNULL, cwd="/")
        cmd = [*as_pg, os.path.join(pgbin, "postgres"), "-D", data, "-p", str(PG_PORT), "-k",
               data, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"]
        self.pg = self.lab.popen("tracker", cmd, os.path.join(self.logs, "postgres.log"))
        isready = [os.path.join(pgbin, "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                   str(PG_PORT)]
        self.wait_for("postgres", self.pg, lambda: self.in_tracker(*isready))
        if fresh:
            psql = [os.path.join(pgbin, "psql"), "-q", "-h", "127.0.0.1", "-p", str(PG_PORT),
                    "-U", "postgres", "-d", "postgres", "-c"]
            for sql in ("DROP DATABASE IF EXISTS zest", "CREATE DATABASE zest"):
                if not self.in_tracker(*psql, sql):
                    raise LabError(f"postgres: {sql} failed")

    def start_redis(self):
        """A Redis without persistence on the tracker host's loopback (a new one is empty)."""
        cmd = ["redis-server", "--port", str(REDIS_PORT), "--bind", "127.0.0.1", "--save", "",
               "--appendonly", "no"]
        self.redis = self.lab.popen("tracker", cmd, os.path.join(self.logs, "redis.log"))
        ping = ["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT), "ping"]
        self.wait_for("redis", self.redis, lambda: self.in_tracker(*ping))

    # ------------------------------------------------------------ a full disk

    def mount_small_disk(self, path, size):
        os.makedirs(path, exist_ok=True)
        subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "zest-fleet", path],
                       check=True)
        self.mounts.append(path)

    def unmount(self):
        while self.mounts:
            subprocess.run(["umount", "-l", self.mounts.pop()], check=False)

    def origin_bytes(self):
        _, body = self.lab.get(self.url("origin", ORIGIN_PORT) + "/metrics")
        m = zestbench.parse_metrics(body.decode())
        return (int(m.get("zest_origin_xorb_bytes_served_total", 0)),
                int(m.get("zest_origin_file_bytes_served_total", 0)))

    def xorb_bytes(self):
        """F: the chunk-region bytes of every xorb in the origin's index (what a client of the
        whole model must receive once)."""
        with open(os.path.join(self.state, "index-v1.json")) as f:
            idx = json.load(f)
        return sum((x["byte_ends"][-1] if x["byte_ends"] else 0) for x in idx["xorbs"].values())

    # ------------------------------------------------------------ clients

    def client_job(self, kind, i, tag, no_serve=False):
        d = os.path.join(self.runs_dir, f"{tag}-c{i}")
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
        origin = self.url("origin", ORIGIN_PORT)
        if kind == "hf":
            env = dict(self.clean_env, HF_ENDPOINT=origin, HF_HOME=os.path.join(d, "hf"),
                       HF_HUB_DISABLE_TELEMETRY="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
            return [self.a.python, "-c", HF_CODE, zestbench.REPO], env, d
        env = dict(self.clean_env, HF_ENDPOINT=origin, HF_HOME=os.path.join(d, "hf"),
                   HF_HUB_CACHE=os.path.join(d, "hub"), ZEST_CACHE=os.path.join(d, "zest"),
                   ZEST_PEER_ID=f"c{i}", RUST_LOG="warn",
                   ZEST_TRACKER=self.url("tracker", TRACKER_PORT))
        cmd = [os.path.join(self.bin, "zest"), "pull", zestbench.REPO, "--json", "--quiet"]
        if no_serve:
            cmd.append("--no-serve")
        return cmd, env, d

    def run_clients(self, kind, tag, fault=None, no_serve=False):
        """Starts the N clients at once; returns the run's record."""
        a, lab = self.a, self.lab
        subprocess.run(["sync"], check=False)
        o0, tx0, c0 = self.origin_bytes(), lab.tx_bytes("origin"), cpu_times()
        services = [p for p in (self.origin, self.tracker, *self.edges) if p is not None]
        s0 = {p.pid: proc_cpu_s(p) for p in services}
        k0 = children_cpu_s()
        jobs, starts = [], []
        t0 = time.perf_counter()
        for i in range(1, a.clients + 1):
            cmd, env, d = self.client_job(kind, i, tag, no_serve)
            starts.append(time.perf_counter())
            p = lab.popen(f"c{i}", cmd, os.path.join(self.logs, f"{tag}-c{i}.log"), env=env,
                          stdout=subprocess.PIPE)
            jobs.append((i, p, d))
        spread = starts[-1] - starts[0]
        done = {}
        outs = {}

        def reap(i, p):
            try:
                out, _ = p.communicate(timeout=a.run_timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                out, _ = p.communicate()
            done[i] = time.perf_counter()
            outs[i] = (p.returncode, out)

        threads = [threading.Thread(target=reap, args=(i, p)) for i, p, _ in jobs]
        for t in threads:
            t.start()
        fault_info = self.inject(fault, t0, threads) if fault else None
        for t in threads:
            t.join()
        c1, o1, tx1 = cpu_times(), self.origin_bytes(), lab.tx_bytes("origin")
        wall = time.perf_counter() - t0
        # The lab's own CPU: clients and services reaped during the run, plus what the live
        # services used (a service reaped mid-run is counted from its start).
        lab_cpu = children_cpu_s() - k0 + sum(
            max(0.0, proc_cpu_s(p) - s0[p.pid]) for p in services if p.poll() is None)
        lab_cpu += sum(proc_cpu_s(p) for p in (self.tracker, *self.edges)
                       if p is not None and p.pid not in s0 and p.poll() is None)
        for _, p, _ in jobs:
            lab.forget(p)
        rec = {"run": tag, "kind": kind, "fault": fault, "start_spread_s": spread, "wall_s": wall,
               "clients": [], "origin_xorb_bytes": o1[0] - o0[0],
               "origin_file_bytes": o1[1] - o0[1], "origin_tx_bytes": tx1 - tx0,
               "cpu_busy": (c1[0] - c0[0]) / max(1, c1[1] - c0[1]),
               "cpu_niced": (c1[2] - c0[2]) / max(1, c1[1] - c0[1]),
               "lab_cpu_share": lab_cpu / (wall * (os.cpu_count() or 1)),
               "fault_info": fault_info}
        for i, p, d in jobs:
            code, out = outs[i]
            c = {"client": i, "time_s": done[i] - starts[i - 1], "exit_s": done[i] - starts[i - 1],
                 "exit": code}
            if code != 0:
                c["error"] = f"exit {code}, see {self.logs}/{tag}-c{i}.log"
            else:
                try:
                    j = json.loads(out)
                except ValueError:
                    j = None
                if j is None:
                    c["error"] = "no JSON on stdout"
                else:
                    snap = j["path"] if kind == "hf" else j["snapshot"]
                    if kind == "zest":
                        # Files in place (the pull's own duration), not the end of serving.
                        c["time_s"] = min(c["exit_s"], j["duration_ms"] / 1000)
                        c["served"] = j.get("served", {})
                        c["bytes"] = j["bytes"]
                        c["retries"] = j.get("retries", 0)
                        c["bad_sources"] = j.get("bad_sources", {})
                    problems, wrong = zestbench.check_snapshot(
                        snap, self.files, os.path.join(self.root, zestbench.REPO))
                    c["wrong_bytes"] = wrong
                    if problems:
                        c["error"] = "; ".join(problems)
            shutil.rmtree(d, ignore_errors=True)
            rec["clients"].append(c)
        return rec

    # ------------------------------------------------------------ faults

    def wait_origin_share(self, share, threads, base):
        """Waits until the origin has sent `share` of F xorb bytes since `base` (or every client
        is done); returns the seconds waited."""
        t = time.perf_counter()
        while any(th.is_alive() for th in threads):
            if self.origin_bytes()[0] - base >= share * self.F:
                break
            time.sleep(0.1)
        return time.perf_counter() - t

    def inject(self, fault, t0, threads):
        base = self._fault_base
        if fault == "edge-kill":
            self.wait_origin_share(self.a.fault_at, threads, base)
            self.edges[0].send_signal(signal.SIGKILL)
            return {"at_s": time.perf_counter() - t0, "what": "SIGKILL edge1"}
        if fault == "tracker-restart":
            self.wait_origin_share(self.a.fault_at, threads, base)
            at = time.perf_counter() - t0
            self.tracker.send_signal(signal.SIGKILL)
            self.tracker.wait(timeout=10)
            self.lab.forget(self.tracker)
            time.sleep(1)
            self.start_tracker()
            return {"at_s": at, "what": "SIGKILL tracker, new one 1 s later",
                    "back_s": time.perf_counter() - t0}
        if fault in ("redis-restart", "pg-restart"):
            self.wait_origin_share(self.a.fault_at, threads, base)
            at = time.perf_counter() - t0
            if fault == "redis-restart":
                self.redis.send_signal(signal.SIGKILL)
                self.redis.wait(timeout=10)
                self.lab.forget(self.redis)
                time.sleep(3)
                self.start_redis()
                what = "SIGKILL Redis, a new empty one 3 s later"
            else:
                self.pg.send_signal(signal.SIGQUIT)  # immediate shutdown: like a crash
                self.pg.wait(timeout=30)
                self.lab.forget(self.pg)
                time.sleep(3)
                self.start_pg()
                what = "PostgreSQL immediate shutdown, started again 3 s later"
            return {"at_s": at, "what": what, "back_s": time.perf_counter() - t0}
        return None

    def liar(self):
        """The liar host: pulls the model straight from the origin once (before the run's
        origin count starts), has one byte of every blob altered, then seeds it to the run's
        tracker; returns a stop callback."""
        d = os.path.join(self.runs_dir, "liar")
        env = dict(self.clean_env, HF_ENDPOINT=self.url("origin", ORIGIN_PORT),
                   HF_HOME=os.path.join(d, "hf"), HF_HUB_CACHE=os.path.join(d, "hub"),
                   ZEST_CACHE=os.path.join(d, "zest"), ZEST_PEER_ID="liar", RUST_LOG="warn")
        if not os.path.exists(os.path.join(d, "altered")):
            shutil.rmtree(d, ignore_errors=True)
            os.makedirs(d)
            p = self.lab.popen("liar", [os.path.join(self.bin, "zest"), "pull", zestbench.REPO,
                                        "--quiet", "--no-serve"],
                               os.path.join(self.logs, "liar-pull.log"), env=env)
            if p.wait(timeout=self.a.run_timeout) != 0:
                raise LabError(f"the liar's pull failed (logs in {self.logs})")
            self.lab.forget(p)
            altered = 0
            blobs = os.path.join(d, "hub", "models--" + zestbench.REPO.replace("/", "--"),
                                 "blobs")
            for name in os.listdir(blobs):
                path = os.path.join(blobs, name)
                size = os.path.getsize(path)
                if size < 1 << 20:
                    continue
                with open(path, "r+b") as f:
                    f.seek(size // 2)
                    b = f.read(1)
                    f.seek(size // 2)
                    f.write(bytes([b[0] ^ 0xFF]))
                altered += 1
            if not altered:
                raise LabError("the liar has no blob to alter")
            open(os.path.join(d, "altered"), "w").close()
        ip = self.lab.ip("liar")
        seed_env = dict(env, ZEST_TRACKER=self.url("tracker", TRACKER_PORT))
        p = self.lab.popen("liar", [os.path.join(self.bin, "zest"), "seed", "--listen",
                                    f"{ip}:{LIAR_PORT}", "--advertise", f"{ip}:{LIAR_PORT}"],
                           os.path.join(self.logs, "liar-seed.log"), env=seed_env)
        self.lab.wait_http(self.url("tracker", TRACKER_PORT) + "/v1/peers", p, "the liar's seed",
                           60, contains='"liar"')
        return lambda: self.stop(p)

    def silent_peer(self):
        """Starts the host that accepts and never answers and announces it as an edge holding
        every xorb; returns a stop callback."""
        ip = self.lab.ip("silent")
        code = ("import socket,time\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,"
                "socket.SO_REUSEADDR,1)\n"
                f"s.bind(('{ip}',{EDGE_PEER}));s.listen(1024)\nheld=[]\n"
                "while True:\n c,_=s.accept();held.append(c)\n")
        p = self.lab.popen("silent", [sys.executable, "-c", code],
                           os.path.join(self.logs, "silent.log"))
        with open(os.path.join(self.state, "index-v1.json")) as f:
            xorbs = json.load(f)["xorbs"]
        full = [{"hash": h, "ranges": [{"start": 0, "end": len(x["chunk_hashes"])}]}
                for h, x in xorbs.items()]
        body = json.dumps({"peer": {"id": "silent", "addr": f"{ip}:{EDGE_PEER}", "role": "edge"},
                           "full": full}).encode()
        stop = threading.Event()
        url = self.url("tracker", TRACKER_PORT) + "/v1/announce"

        def announce():
            while not stop.is_set():
                try:
                    self.lab.post_json(url, body)
                except OSError as e:
                    log(f"silent peer announce failed: {e}")
                stop.wait(10)

        self.lab.post_json(url, body)
        th = threading.Thread(target=announce, daemon=True)
        th.start()

        def end():
            stop.set()
            self.stop(p)
        return end

    # ------------------------------------------------------------ the runs

    def run(self, name):
        """One run: hf, fleet, edges, or fault:<name>."""
        fault = name.split(":", 1)[1] if name.startswith("fault:") else None
        base = FAULT_BASE.get(fault, "fleet") if fault else name
        kind = "hf" if name == "hf" else "zest"
        tag = name.replace(":", "-")
        log(f"run {name}...")
        end_helper = None
        if fault == "origin-429":
            self.stop(self.origin)
            self.start_origin(["--fault-429-rate", "0.3", "--fault-seed", "1"])
        try:
            if kind == "zest":
                self.start_tracker(stores=fault in ("redis-restart", "pg-restart"))
                if base != "swarm":
                    disk = (max(1 << 20, int(self.a.fault_disk_share * self.F))
                            if fault == "disk-full" else None)
                    self.start_edges(tag, disk=disk)
            if fault == "silent-peer":
                end_helper = self.silent_peer()
            if fault == "liar":
                end_helper = self.liar()
            self._fault_base = self.origin_bytes()[0]
            rec = self.run_clients(kind, tag, fault if fault in TIMED_FAULTS else None,
                                   no_serve=base == "edges")
            rec["fault"] = fault
            rec["base"] = base
            rec["t_floor_s"] = self.floor(len(self.edges) if kind == "zest" else 0)
            if kind == "zest":
                ef = 0.0
                for i in range(len(self.edges)):
                    try:
                        _, body = self.lab.get(self.url(f"edge{i + 1}", EDGE_HTTP) + "/metrics")
                        ef += zestbench.parse_metrics(body.decode()).get(
                            "zest_edge_bytes_fetched_total", 0)
                    except OSError:
                        pass  # a killed edge
                rec["edge_fetched_bytes"] = ef
        finally:
            if end_helper:
                end_helper()
            self.stop_fleet()
            if fault == "origin-429":
                self.stop(self.origin)
                self.start_origin()
        return rec

    def floor(self, edges=None):
        """T_floor = max(F/u_origin, F/d_client, N*F/(u_origin + sum of host uplinks)), the host
        uplinks being the clients' and the edges' (Kumar & Ross 2006, edges as helpers); `edges`
        is the run's edge count (default: the lab's)."""
        a, F = self.a, self.F
        edges = a.edges if edges is None else edges
        uo, dc = rate_bytes(a.origin_up), rate_bytes(a.client_down)
        hosts = a.clients * rate_bytes(a.client_up) + edges * rate_bytes(a.edge_up)
        return max(F / uo, F / dc, a.clients * F / (uo + hosts))

    def main(self):
        a = self.a
        self.files = zestbench.generate(self.work, a.size, a.shards, log=log)
        self.root = os.path.join(self.work, "root")
        self.state = os.path.join(self.work, "origin-state")
        self.build()
        t = time.perf_counter()
        self.start_origin()
        self.F = self.xorb_bytes()
        model = sum(s for s, _ in self.files.values())
        log(f"zest-origin ready ({time.perf_counter() - t:.1f} s); model {model:,} bytes in "
            f"{len(self.files)} files, F = {self.F:,} xorb bytes")
        runs = [r for r in a.runs] + [f"fault:{f}" for f in a.faults]
        records = []
        for r in runs:
            rec = self.run(r)
            records.append(rec)
            log(summary_line(rec, self.F, rec["t_floor_s"]))
        return {"model_bytes": model, "files": len(self.files), "F": self.F,
                "t_floor_s": self.floor(), "args": vars(a), "cores": os.cpu_count(),
                "records": records}


def summary_line(rec, F, floor):
    ts = [c["time_s"] for c in rec["clients"]]
    bad = [c for c in rec["clients"] if "error" in c]
    return (f"  {rec['run']}: p50 {pct(ts, 50):.1f} s, max {max(ts):.1f} s, origin "
            f"{rec['origin_xorb_bytes'] / F:.2f}x F, cpu {rec['cpu_busy'] * 100:.0f}% "
            f"(lab {rec['lab_cpu_share'] * 100:.0f}%), "
            f"{max(ts) / floor:.2f}x T_floor, {len(bad)} failed")


def table(result):
    F, floor = result["F"], result["t_floor_s"]
    recs = result["records"]
    clean = {r["run"]: r for r in recs if not r["fault"]}
    rows = ["| run | p50 s | p99 s | max s | max exit s | T_floor s | p99 / T_floor | "
            "origin xorb ÷ F | origin link ÷ F | bytes by source (edges / peers / upstream, MB) | "
            "CPU busy (machine, lab; niced work apart) | wrong bytes | failed |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        ts = [c["time_s"] for c in r["clients"]]
        src = {"edges": 0, "peers": 0, "upstream": 0}
        for c in r["clients"]:
            for k in src:
                src[k] += c.get("bytes", {}).get(k, 0)
        srcs = (" / ".join(f"{src[k] / 1e6:,.0f}" for k in ("edges", "peers", "upstream"))
                if r["kind"] == "zest" else "— / — / all")
        cpu = (f"{r['cpu_busy'] * 100:.0f}% ({r['lab_cpu_share'] * 100:.0f}% lab)"
               + (f", niced {r['cpu_niced'] * 100:.0f}%" if r.get("cpu_niced", 0) >= 0.05
                  else "")
               + (" **CPU-bound**" if r["cpu_busy"] >= 0.9 else ""))
        name = r["run"]
        if r["fault"]:
            base = clean.get(r.get("base", "fleet"))
            if base:
                slow = max(ts) / max(c["time_s"] for c in base["clients"])
                name += f" (slowdown {slow:.2f}x vs {base['run']})"
        wrong = sum(c.get("wrong_bytes", 0) for c in r["clients"])
        failed = sum(1 for c in r["clients"] if "error" in c)
        fl = r.get("t_floor_s", floor)
        exits = [c.get("exit_s", c["time_s"]) for c in r["clients"]]
        rows.append(f"| {name} | {pct(ts, 50):.1f} | {pct(ts, 99):.1f} | {max(ts):.1f} | "
                    f"{max(exits):.1f} | {fl:.1f} | {pct(ts, 99) / fl:.2f} | "
                    f"{r['origin_xorb_bytes'] / F:.2f} | "
                    f"{r['origin_tx_bytes'] / F:.2f} | {srcs} | {cpu} | {wrong} | {failed} |")
    return "\n".join(rows)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-n", "--clients", type=int, default=8)
    p.add_argument("-e", "--edges", type=int, default=1)
    p.add_argument("--size", type=parse_size, default=parse_size("2G"),
                   help="model bytes (suffix K, M, G), default 2G (256M for a quick report)")
    p.add_argument("--shards", type=int, default=2, help="safetensors shards (plus one GGUF)")
    p.add_argument("--origin-up", default="100mbit", help="origin uplink (the WAN link)")
    p.add_argument("--edge-up", default="500mbit")
    p.add_argument("--edge-down", default="1gbit")
    p.add_argument("--client-up", default="250mbit")
    p.add_argument("--client-down", default="250mbit")
    p.add_argument("--lan", default="1gbit", help="tracker links and the origin downlink")
    p.add_argument("--latency-ms", type=float, default=0.0,
                   help="delay added to every packet a host sends (netem; needs sch_netem)")
    p.add_argument("--runs", default="hf,fleet,edges,swarm",
                   help="comma-separated: hf, fleet, edges, swarm (empty for faults only)")
    p.add_argument("--faults", default="",
                   help=f"comma-separated fault runs: {', '.join(FAULTS)}, or all")
    p.add_argument("--fault-at", type=float, default=0.3,
                   help="share of F the origin has sent when a timed fault (edge-kill, "
                   "tracker-restart, redis-restart, pg-restart) hits")
    p.add_argument("--fault-disk-share", type=float, default=0.4,
                   help="disk-full: the edge's disk, as a share of F")
    p.add_argument("--bin-dir", default=os.path.join(REPO_ROOT, "target", "release"))
    p.add_argument("--python", default=sys.executable,
                   help="Python of the snapshot_download clients (default: this one, which is "
                   "$ZEST_PYTHON or <repo>/.venv/bin/python when started without numpy)")
    p.add_argument("--work", default="/tmp/zest-fleet", help="model, origin state, logs, caches")
    p.add_argument("--prefix", default="zfl", help="namespace name prefix")
    p.add_argument("--subnet", default="10.77.0", help="the lab's /24")
    p.add_argument("--json", help="write every figure here (input of plot.py)")
    p.add_argument("--run-timeout", type=float, default=1800, help="seconds per client")
    p.add_argument("--cleanup", action="store_true",
                   help="remove namespaces (and their processes) left by a lab with this prefix")
    a = p.parse_args(argv)
    a.runs = [r for r in a.runs.split(",") if r]
    a.faults = list(FAULTS) if a.faults == "all" else [f for f in a.faults.split(",") if f]
    for r in a.runs:
        if r not in ("hf", "fleet", "edges", "swarm"):
            p.error(f"unknown run {r!r}")
    for f in a.faults:
        if f not in FAULTS:
            p.error(f"unknown fault {f!r}")
    if a.clients < 1 or a.edges < 1 or a.clients + a.edges > 240:
        p.error("need 1 <= clients, 1 <= edges, clients + edges <= 240")
    for r in (a.origin_up, a.edge_up, a.edge_down, a.client_up, a.client_down, a.lan):
        try:
            rate_bytes(r)
        except LabError as e:
            p.error(str(e))
    return a


def main(argv):
    a = parse_args(argv)
    if a.cleanup:
        stale = netlab.list_namespaces(a.prefix)
        netlab.remove_namespaces(stale)
        log(f"removed {len(stale)} namespaces: {' '.join(stale) or '-'}")
        with open("/proc/mounts") as f:
            disks = [line.split()[1] for line in f if line.split()[0] == "zest-fleet"]
        for m in disks:
            subprocess.run(["umount", "-l", m], check=False)
        log(f"unmounted {len(disks)} small disks of disk-full runs")
        return 0
    if os.geteuid() != 0:
        log("error: the fleet lab needs root (ip netns, tc)")
        return 2
    for b in ("zest", "zest-origin", "zest-edge", "zest-tracker"):
        if not os.access(os.path.join(a.bin_dir, b), os.X_OK):
            log(f"error: {a.bin_dir}/{b} is missing (cargo build --release, or --bin-dir)")
            return 2
    if "hf" in a.runs and not os.access(a.python, os.X_OK):
        log(f"error: no Python at {a.python} (--python or ZEST_PYTHON)")
        return 2

    def on_signal(sig, _frame):
        raise SystemExit(128 + sig)

    for s in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(s, on_signal)
    fleet = Fleet(a)
    try:
        result = fleet.main()
    except LabError as e:
        log(f"error: {e} (logs in {fleet.logs})")
        return 1
    finally:
        if fleet.lab is not None:
            fleet.lab.close()
        fleet.unmount()
        shutil.rmtree(fleet.runs_dir, ignore_errors=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(result, f, indent=1)
    print(f"model {zestbench.REPO}: {result['model_bytes']:,} bytes in {result['files']} files, "
          f"F = {result['F']:,} xorb bytes; N = {a.clients}, E = {a.edges}; caps origin up "
          f"{a.origin_up}, edge {a.edge_up} up / {a.edge_down} down, client {a.client_up} up / "
          f"{a.client_down} down; T_floor = {result['t_floor_s']:.1f} s; {os.cpu_count()} cores")
    print(table(result))
    failed = sum(1 for r in result["records"] for c in r["clients"] if "error" in c)
    for r in result["records"]:
        for c in r["clients"]:
            if "error" in c:
                log(f"error: {r['run']} client c{c['client']}: {c['error']}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
