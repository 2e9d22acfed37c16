#!/usr/bin/env python3
"""Draws the data-path rows of one `scripts/device-run.sh data-path` run as bars of their ratio
to the ceiling measured beside them, with each row's goal as a tick:

    bench/plot_data_path.py OUT.svg DIR

DIR holds the step's files: bench-d2d-{auto,kernel,copy_engine}.txt, worker-bench.txt,
remote-bench.txt and control-pinned.txt (those missing are left out)."""
import re
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def d2d_rows(directory):
    """(label, ratio, goal) per size of each copy path's device->device table."""
    rows = []
    for path in ("auto", "kernel", "copy_engine"):
        file = directory / f"bench-d2d-{path}.txt"
        if not file.exists():
            continue
        for line in file.read_text().splitlines():
            fields = line.split()
            if len(fields) < 8 or fields[0] != "device->device":
                continue
            size = fields[1]
            ratio = float(fields[fields.index("yes") + 1]) if "yes" in fields else 0.0
            goal = (0.7 if size == "4K" else 0.9) if path == "auto" else None
            rows.append((f"d2d {path} {size}", ratio, goal))
    return rows


def worker_rows(directory):
    """(label, ratio to the in-process engine, goal) per worker-bench row: within 5% for legs and
    16-block requests in flight; requests one at a time are judged in GB/s instead."""
    file = directory / "worker-bench.txt"
    rows = []
    if not file.exists():
        return rows
    pattern = re.compile(r"^(\S+)\s+(\S+)\s+(16 x\d+|leg)\s+\d+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+[\d.]+\s+([\d.]+)\s+(yes|NO)")
    for line in file.read_text().splitlines():
        match = pattern.match(line)
        if match:
            size, direction, request, ratio, _ = match.groups()
            goal = None if request == "16 x1" else 0.95
            rows.append((f"worker {size} {direction} {request}", float(ratio), goal))
    return rows


def remote_rows(directory):
    """(label, ratio, goal) for put and get of each size of each transport's table: 0.9 over shared
    memory; over tcp the memcpy is no ceiling (loopback carries far less), so no goal."""
    file = directory / "remote-bench.txt"
    rows = []
    if not file.exists():
        return rows
    transport = "?"
    for line in file.read_text().splitlines():
        header = re.match(r"kvbm bench --remote (\S+):", line)
        if header:
            transport = header.group(1)
            continue
        fields = line.split()
        if len(fields) == 12 and fields[-1] in ("yes", "NO") and re.match(r"\d+[KM]$", fields[0]):
            goal = 0.9 if transport == "sm" else None
            rows.append((f"remote {transport} put {fields[0]}", float(fields[3]), goal))
            rows.append((f"remote {transport} get {fields[0]}", float(fields[8]), goal))
    return rows


def control_rows(directory):
    """(label, raw echo p50 / p50, goal) for each 1-block Host->Device row: 1/1.3 with two workers."""
    file = directory / "control-pinned.txt"
    rows = []
    if not file.exists():
        return rows
    for line in file.read_text().splitlines():
        match = re.match(r"^\s+(\d+) 1 block Host->Device\s+\d+\s+([\d.]+)\s+[\d.]+\s+([\d.]+)\s+[\d.]+", line)
        if match:
            workers, p50, raw = match.groups()
            goal = 1 / 1.3 if workers == "2" else None
            rows.append((f"control {workers} worker(s) H->D p50", float(raw) / float(p50), goal))
    return rows


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    out, directory = Path(sys.argv[1]), Path(sys.argv[2])
    rows = d2d_rows(directory) + worker_rows(directory) + remote_rows(directory) + control_rows(directory)
    if not rows:
        sys.exit(f"no data-path rows in {directory}")
    figure, axes = plt.subplots(figsize=(9, 0.28 * len(rows) + 1.2))
    labels = [label for label, _, _ in rows]
    positions = range(len(rows))
    colors = ["tab:gray" if goal is None else "tab:green" if ratio >= goal else "tab:red" for _, ratio, goal in rows]
    axes.barh(positions, [ratio for _, ratio, _ in rows], color=colors)
    for y, (_, ratio, goal) in zip(positions, rows):
        if goal is not None:
            axes.plot([goal, goal], [y - 0.4, y + 0.4], color="black", linewidth=1.5)
        axes.text(ratio + 0.01, y, f"{ratio:.2f}", va="center", fontsize=7)
    axes.set_yticks(list(positions), labels, fontsize=7)
    axes.invert_yaxis()
    axes.set_xlabel("ratio to the ceiling beside it (worker rows: to the engine in-process; control: raw echo / kvbm)")
    axes.set_title("data path, one run: bars against their goals (black ticks); red below, green at or above, "
                   "gray without a goal", fontsize=9)
    figure.tight_layout()
    figure.savefig(out)


if __name__ == "__main__":
    main()
