"""Network namespaces for the fleet lab: one switch namespace holding a bridge, one namespace per
host joined to it by a veth pair, each link shaped with tc (htb rate per direction, netem delay on
the host's egress). Nothing is created in the root namespace and no namespace has a route out, so
the lab's traffic stays among its own hosts.

    lab = Lab("zfl", "10.77.0")
    lab.add_host("origin", up="100mbit", down="1gbit", latency_ms=5)
    lab.popen("origin", ["zest-origin", ...])
    lab.get("http://10.77.0.2:8080/metrics")   # from the unshaped "mgmt" host
    lab.close()                                 # stops processes, deletes every namespace

Rates use tc's syntax (`bit`, `kbit`, `mbit`, `gbit`, decimal).
"""

import concurrent.futures
import ctypes
import os
import re
import signal
import subprocess
import time
import urllib.request

CLONE_NEWNET = 0x40000000
_UNITS = {"bit": 1, "kbit": 1e3, "mbit": 1e6, "gbit": 1e9}


class LabError(Exception):
    pass


def rate_bytes(rate):
    """tc rate string → bytes per second."""
    m = re.fullmatch(r"([0-9.]+)\s*(bit|kbit|mbit|gbit)", rate.strip().lower())
    if not m:
        raise LabError(f"rate {rate!r}: use e.g. 100mbit or 1gbit")
    return float(m.group(1)) * _UNITS[m.group(2)] / 8


def sh(*argv, check=True):
    p = subprocess.run(list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if check and p.returncode != 0:
        raise LabError(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout


def list_namespaces(prefix):
    out = sh("ip", "netns", "list", check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix + "-")]


def remove_namespaces(names):
    """Kills every process left in these namespaces, then deletes them."""
    for ns in names:
        for pid in sh("ip", "netns", "pids", ns, check=False).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
    for ns in names:
        for _ in range(50):  # bounded: a killed process may take a moment to leave
            if not sh("ip", "netns", "pids", ns, check=False).split():
                break
            time.sleep(0.1)
        sh("ip", "netns", "del", ns, check=False)


class Lab:
    def __init__(self, prefix, subnet):
        if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", prefix):
            raise LabError(f"prefix {prefix!r}: 1-12 lower-case letters and digits")
        if not re.fullmatch(r"10\.\d{1,3}\.\d{1,3}", subnet):
            raise LabError(f"subnet {subnet!r}: three octets of 10.0.0.0/8, e.g. 10.77.0")
        stale = list_namespaces(prefix)
        if stale:
            raise LabError(f"namespaces of an earlier lab exist ({', '.join(stale)}): "
                           f"run again with --cleanup")
        self.prefix, self.subnet = prefix, subnet
        self.hosts = {}  # name → (namespace, ip)
        self.procs = []  # (name, Popen, log file)
        self.sw = f"{prefix}-sw"
        self._ns_made = []
        self._pool = None
        try:
            self._netns("add", self.sw)
            sh("ip", "-n", self.sw, "link", "add", "br0", "type", "bridge")
            sh("ip", "-n", self.sw, "link", "set", "br0", "up")
            sh("ip", "-n", self.sw, "link", "set", "lo", "up")
            self.add_host("mgmt")  # the harness's own window into the lab (unshaped)
        except BaseException:
            self.close()
            raise

    def _netns(self, op, ns):
        sh("ip", "netns", op, ns)
        if op == "add":
            self._ns_made.append(ns)

    def ip(self, name):
        return self.hosts[name][1]

    def ns(self, name):
        return self.hosts[name][0]

    def add_host(self, name, up=None, down=None, latency_ms=0.0):
        """A host with uplink `up` and downlink `down` (None = unshaped) and `latency_ms` added
        to every packet it sends."""
        idx = len(self.hosts) + 1
        if idx > 250:
            raise LabError("at most 250 hosts")
        ns, ip = f"{self.prefix}-{name}", f"{self.subnet}.{idx}"
        self._netns("add", ns)
        port = f"p{idx}"
        sh("ip", "-n", self.sw, "link", "add", port, "type", "veth", "peer", "name", "eth0",
           "netns", ns)
        sh("ip", "-n", self.sw, "link", "set", port, "master", "br0", "up")
        sh("ip", "-n", ns, "addr", "add", f"{ip}/24", "dev", "eth0")
        sh("ip", "-n", ns, "link", "set", "eth0", "up")
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        if up or latency_ms:
            self._shape(ns, "eth0", up, latency_ms)
        if down:
            self._shape(self.sw, port, down, 0.0)
        self.hosts[name] = (ns, ip)
        return ip

    @staticmethod
    def _shape(ns, dev, rate, latency_ms):
        tc = ["ip", "netns", "exec", ns, "tc"]
        sh(*tc, "qdisc", "add", "dev", dev, "root", "handle", "1:", "htb", "default", "10")
        r = rate or "100gbit"
        # A burst of ~2 ms at the rate (at least 64 KiB, one GSO segment) keeps htb accurate
        # at Gbit rates without letting a link exceed its cap by more than a moment.
        burst = max(65536, int(rate_bytes(r) * 0.002))
        sh(*tc, "class", "add", "dev", dev, "parent", "1:", "classid", "1:10", "htb",
           "rate", r, "ceil", r, "burst", str(burst), "cburst", str(burst))
        leaf = ["netem", "limit", "100000", "delay", f"{latency_ms}ms"] if latency_ms else [
            "pfifo", "limit", "10000"]
        try:
            sh(*tc, "qdisc", "add", "dev", dev, "parent", "1:10", "handle", "10:", *leaf)
        except LabError as e:
            if latency_ms and "unknown" in str(e):
                raise LabError("this kernel has no netem qdisc (sch_netem): run with "
                               "--latency-ms 0") from e
            raise

    def tx_bytes(self, name):
        """Bytes the host has sent on its link (IP and TCP headers included)."""
        out = sh("ip", "netns", "exec", self.ns(name), "cat", "/sys/class/net/eth0/statistics/tx_bytes")
        return int(out.strip())

    def popen(self, host, argv, log_path, env=None, stdout=subprocess.DEVNULL):
        """Starts argv in the host's namespace (`ip netns exec` execs it, so the Popen's pid is
        the program's); stderr goes to log_path. Stopped by close()."""
        logf = open(log_path, "ab")
        p = subprocess.Popen(["ip", "netns", "exec", self.ns(host), *argv], env=env,
                             stdin=subprocess.DEVNULL, stdout=stdout, stderr=logf)
        self.procs.append((host, p, logf))
        return p

    def forget(self, p):
        self.procs = [t for t in self.procs if t[1] is not p]

    @staticmethod
    def stop(p, timeout=10):
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=timeout)

    def _enter_mgmt(self):
        fd = os.open(f"/var/run/netns/{self.ns('mgmt')}", os.O_RDONLY)
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), "setns into the mgmt namespace")
        finally:
            os.close(fd)

    def get(self, url, timeout=10):
        """GET url from the mgmt host (threads of a pool that lives in its namespace); returns
        (status, body) or raises OSError."""
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(4, initializer=self._enter_mgmt)

        def fetch():
            with urllib.request.urlopen(url, timeout=timeout) as r:
                return r.status, r.read()

        return self._pool.submit(fetch).result(timeout + 5)

    def post_json(self, url, body, timeout=10):
        if self._pool is None:
            self._pool = concurrent.futures.ThreadPoolExecutor(4, initializer=self._enter_mgmt)

        def post():
            req = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, r.read()

        return self._pool.submit(post).result(timeout + 5)

    def wait_http(self, url, p, what, secs, contains=None):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            if p is not None and p.poll() is not None:
                raise LabError(f"{what} exited with {p.returncode}")
            try:
                st, body = self.get(url, timeout=2)
                if st == 200 and (contains is None or contains.encode() in body):
                    return
            except (OSError, concurrent.futures.TimeoutError):
                pass
            time.sleep(0.2)
        raise LabError(f"{what} not ready at {url} after {secs} s")

    def close(self):
        """Stops every process started here and deletes every namespace (idempotent)."""
        while self.procs:
            _, p, logf = self.procs.pop()
            try:
                self.stop(p, timeout=5)
            except (subprocess.TimeoutExpired, OSError):
                pass
            logf.close()
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
        remove_namespaces(list(reversed(self._ns_made)))
        self._ns_made = []
