#!/usr/bin/env python3
"""Completion-time CDF per run from a fleet.py --json result: one step line per run, the x axis in
units of T_floor (the physical floor) with seconds on top.

    python bench/fleet/plot.py result.json docs/fleet-cdf.png

Needs matplotlib (e.g. `python -m venv bench/out/plot && bench/out/plot/bin/pip install
matplotlib`; bench/out is git-ignored).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main(src, dst):
    with open(src) as f:
        r = json.load(f)
    floor = r["t_floor_s"]
    a = r["args"]
    fig, ax = plt.subplots(figsize=(9.5, 4.5), dpi=110)
    for rec in r["records"]:
        ts = sorted(c["time_s"] for c in rec["clients"])
        n = len(ts)
        xs = [0.0] + [t / floor for t in ts]
        ys = [0.0] + [(i + 1) / n for i in range(n)]
        ax.step(xs, ys, where="post", label=rec["run"], linewidth=1.8)
    ax.axvline(1.0, color="grey", linestyle="--", linewidth=1)
    ax.text(1.02, 0.03, "T_floor", color="grey")
    ax.set_xlabel(f"completion time ÷ T_floor (T_floor = {floor:.1f} s)")
    ax.set_ylabel("share of clients done")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(left=0)
    ax.set_title(f"fleet lab: N = {a['clients']}, E = {a['edges']}, model "
                 f"{r['model_bytes'] / 1e6:,.0f} MB, origin up {a['origin_up']}, "
                 f"client down {a['client_down']}", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    sec = ax.secondary_xaxis("top", functions=(lambda x: x * floor, lambda s: s / floor))
    sec.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(dst)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: plot.py RESULT.json OUT.png")
    main(sys.argv[1], sys.argv[2])
