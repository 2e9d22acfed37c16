"""The Python module's cost per transfer call: the same one-block transfers timed from a Python
loop (ctx.transfer(...).wait()) and from a C++ loop inside the module (kvbm._kvbm._time_transfers),
same layouts, same run, rounds interleaved; the difference is what Python adds per call.
  python3 bench/python/transfer_overhead.py [--calls N] [--rounds R] [--pairs system/pinned,pinned/device:0,...]"""
import argparse
import statistics
import tempfile
import time

import kvbm
from kvbm import _kvbm


def layout(cfg, kind, disk_dir):
    return kvbm.Layout.allocate(cfg, kind, **({"dir": disk_dir} if kind.startswith("disk") else {}))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pairs", default="system/system,pinned/device:0,device:0/pinned,system/disk")
    parser.add_argument("--block-kib", type=int, default=64)
    args = parser.parse_args()
    chunk = args.block_kib * 1024 // 8  # 4 layers x 2 (K, V) chunks
    cfg = kvbm.LayoutConfig(num_blocks=64, num_layers=4, outer_dim=2, page_size=16, inner_dim=chunk // 32,
                            dtype_bytes=2)
    ctx = kvbm.TransferContext()
    disk_dir = tempfile.mkdtemp()
    print(f"kvbm Python overhead: one {args.block_kib} KiB block per call, {args.calls} calls a round, "
          f"median of {args.rounds} rounds; us per call")
    print(f"{'pair':<22} {'python':>9} {'c++':>9} {'overhead':>9}")
    for pair in args.pairs.split(","):
        src_kind, dst_kind = pair.split("/")
        try:
            src, dst = layout(cfg, src_kind, disk_dir), layout(cfg, dst_kind, disk_dir)
        except kvbm.Error as e:
            print(f"{pair:<22} skipped: {e}")
            continue
        pairs = [(7, 9)]
        python_us, cpp_us = [], []
        for _ in range(args.rounds):
            start = time.perf_counter()
            for _ in range(args.calls):
                ctx.transfer(src, dst, pairs).wait()
            python_us.append((time.perf_counter() - start) / args.calls * 1e6)
            cpp_us.append(_kvbm._time_transfers(ctx, src, dst, pairs, args.calls) / args.calls * 1e6)
        p, c = statistics.median(python_us), statistics.median(cpp_us)
        print(f"{src_kind + '->' + dst_kind:<22} {p:>9.1f} {c:>9.1f} {p - c:>9.1f}")


if __name__ == "__main__":
    main()
