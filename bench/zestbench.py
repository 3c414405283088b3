"""Shared by the Python benchmarks under bench/ (pull_vs_hf.sh, fleet/fleet.py): the generated
model repo, Prometheus metrics, and byte-for-byte checks of pulled snapshots.

The model (org/model): SHARDS safetensors shards sharing 80% of the bytes and a GGUF file with
20%, all incompressible pseudo-random BF16/F16 tensor data behind real headers, plus config.json
and model.safetensors.index.json. It is written once under a work folder and reused (a stamp
file records sizes and sha256s).
"""

import hashlib
import json
import os
import shutil
import struct
import urllib.request

import numpy as np

REPO = "org/model"


def _write_random(f, n, rng, h):
    block = 16 << 20
    while n > 0:
        b = rng.bytes(min(block, n))
        f.write(b)
        h.update(b)
        n -= len(b)


def gen_safetensors(path, total, seed):
    cols = 4096
    row = cols * 2  # BF16
    rows_total = max(1, (total - 4096) // row)
    n = max(1, min(64, rows_total // 2048))
    header, off = {"__metadata__": {"format": "pt", "generator": "zest bench"}}, 0
    for i in range(n):
        rows = rows_total // n + (rows_total % n if i == n - 1 else 0)
        header[f"model.layers.{i}.mlp.weight"] = {
            "dtype": "BF16", "shape": [rows, cols], "data_offsets": [off, off + rows * row]}
        off += rows * row
    hj = json.dumps(header, separators=(",", ":")).encode()
    hj += b" " * (-len(hj) % 8)
    rng, h = np.random.default_rng(seed), hashlib.sha256()
    with open(path + ".tmp", "wb") as f:
        head = struct.pack("<Q", len(hj)) + hj
        f.write(head)
        h.update(head)
        _write_random(f, off, rng, h)
    os.replace(path + ".tmp", path)
    return h.hexdigest()


def _gguf_str(s):
    b = s.encode()
    return struct.pack("<Q", len(b)) + b


def gen_gguf(path, total, seed):
    cols = 4096
    row = cols * 2  # F16
    rows_total = max(1, (total - 4096) // row)
    n = max(1, min(32, rows_total // 2048))
    kv = [("general.architecture", 8, _gguf_str("llama")),
          ("general.name", 8, _gguf_str("zest bench")),
          ("general.alignment", 4, struct.pack("<I", 32))]
    head = b"GGUF" + struct.pack("<IQQ", 3, n, len(kv))
    for k, t, v in kv:
        head += _gguf_str(k) + struct.pack("<I", t) + v
    off = 0
    for i in range(n):
        rows = rows_total // n + (rows_total % n if i == n - 1 else 0)
        head += _gguf_str(f"blk.{i}.ffn_up.weight") + struct.pack("<IQQIQ", 2, cols, rows, 1, off)
        off += rows * row
    head += b"\0" * (-len(head) % 32)
    rng, h = np.random.default_rng(seed), hashlib.sha256()
    with open(path + ".tmp", "wb") as f:
        f.write(head)
        h.update(head)
        _write_random(f, off, rng, h)
    os.replace(path + ".tmp", path)
    return h.hexdigest()


def generate(work, size, shards=2, log=print):
    """Writes REPO under work/root once; returns {path: (size, sha256)}. Reused when a stamp for
    the same size and shard count says it is complete; a different shape replaces it (and the
    origin state folder work/origin-state, which indexes it)."""
    root, state = os.path.join(work, "root"), os.path.join(work, "origin-state")
    tag = f"{size}" if shards == 2 else f"{size}-{shards}"
    stamp = os.path.join(work, f"generated-{tag}.json")
    repo_dir = os.path.join(root, REPO)
    if os.path.exists(stamp):
        with open(stamp) as f:
            files = json.load(f)
        if all(os.path.isfile(os.path.join(repo_dir, p))
               and os.path.getsize(os.path.join(repo_dir, p)) == s
               for p, (s, _) in files.items()):
            return files
    log(f"generating {REPO} (~{size / 2**30:.2f} GiB of pseudo-random bytes, {shards} shards) "
        f"in {repo_dir}...")
    shutil.rmtree(root, ignore_errors=True)
    shutil.rmtree(state, ignore_errors=True)
    os.makedirs(work, exist_ok=True)
    for p in os.listdir(work):
        if p.startswith("generated-"):
            os.remove(os.path.join(work, p))
    os.makedirs(repo_dir)
    files = {}
    big = [(f"model-{i + 1:05}-of-{shards:05}.safetensors", 0.8 / shards, gen_safetensors, i + 1)
           for i in range(shards)]
    big.append(("model-q8_0.gguf", 0.2, gen_gguf, shards + 1))
    for name, share, fn, seed in big:
        p = os.path.join(repo_dir, name)
        sha = fn(p, int(size * share) - 8192, seed)
        files[name] = (os.path.getsize(p), sha)
    small = {
        "config.json": json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama",
                                   "hidden_size": 4096, "num_hidden_layers": 32,
                                   "torch_dtype": "bfloat16"}, indent=2).encode(),
        "model.safetensors.index.json": json.dumps(
            {"metadata": {"total_size": sum(files[b[0]][0] for b in big[:-1])},
             "weight_map": {"model.layers.0.mlp.weight": big[0][0]}}, indent=2).encode(),
    }
    for name, data in small.items():
        with open(os.path.join(repo_dir, name), "wb") as f:
            f.write(data)
        files[name] = (len(data), hashlib.sha256(data).hexdigest())
    with open(stamp, "w") as f:
        json.dump(files, f, indent=1)
    return files


def parse_metrics(text):
    """Prometheus text → {metric name: sum over its series}."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        name, _, val = line.rpartition(" ")
        base = name.split("{")[0]
        try:
            out[base] = out.get(base, 0.0) + float(val)
        except ValueError:
            pass
    return out


def metrics(url, timeout=10):
    with urllib.request.urlopen(url + "/metrics", timeout=timeout) as r:
        return parse_metrics(r.read().decode())


def origin_bytes(url):
    """(xorb bytes, file bytes) an origin has served."""
    m = metrics(url)
    return (int(m.get("zest_origin_xorb_bytes_served_total", 0)),
            int(m.get("zest_origin_file_bytes_served_total", 0)))


def snapshot_files(snap):
    return sorted(os.path.relpath(os.path.join(dp, f), snap)
                  for dp, _, fs in os.walk(snap) for f in fs)


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while b := f.read(8 << 20):
            h.update(b)
    return h.hexdigest()


def wrong_bytes(path, original):
    """Bytes of `path` that differ from `original`, counting a length difference as wrong."""
    wrong = 0
    with open(path, "rb") as a, open(original, "rb") as b:
        while True:
            x, y = a.read(8 << 20), b.read(8 << 20)
            if not x and not y:
                return wrong
            if x != y:
                n = min(len(x), len(y))
                wrong += int(np.count_nonzero(np.frombuffer(x[:n], np.uint8)
                                              != np.frombuffer(y[:n], np.uint8)))
                wrong += abs(len(x) - len(y))


def check_snapshot(snap, files, original_dir, strict=False):
    """Compares a pulled snapshot with the generated repo: returns a list of problems (empty when
    every file is present with the same bytes and nothing else is there) and the wrong byte
    count. strict also recomputes each file's sha256 against the generator's."""
    problems, wrong = [], 0
    got = snapshot_files(snap)
    if got != sorted(files):
        problems.append(f"files {got} != {sorted(files)}")
    for rel, (size, sha) in files.items():
        p = os.path.join(snap, rel)
        if not os.path.isfile(p):
            problems.append(f"{rel} missing")
            wrong += size
            continue
        w = wrong_bytes(p, os.path.join(original_dir, rel))
        if w:
            problems.append(f"{rel}: {w} wrong bytes")
            wrong += w
        elif strict and sha256_file(p) != sha:
            problems.append(f"{rel}: sha256 mismatch")
    return problems, wrong
