"""Tables and a plot from bench/vllm/multiturn.py's JSON results.

    python bench/vllm/report.py perf RESULT.json... [--plot OUT.png]
        the later turns' prefill time of each configuration, against the floor (the run labelled
        "floor") and vLLM's own offloading ("native"), TTFT p50/p90 and throughput
    python bench/vllm/report.py tokens BASELINE.json OTHER.json
        the share of requests whose generated tokens are identical, turn by turn
"""

from __future__ import annotations

import argparse
import json


def load(paths: list[str]) -> list[dict]:
    results = []
    for path in paths:
        with open(path) as f:
            results.append(json.load(f))
    return results


def perf(results: list[dict], plot: str | None) -> None:
    by_name = {r["config"]: r for r in results}
    floor = by_name.get("floor", {}).get("later_turns_ms")
    native = by_name.get("native", {}).get("later_turns_ms")
    print("| configuration | later turns, ms | / floor | / vLLM offloading | TTFT p50, ms | TTFT p90, ms | new tokens/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for r in results:
        ms = r["later_turns_ms"]
        print(
            f"| {r['config']} | {ms:.0f} | {ms / floor:.2f} | {ms / native:.2f} | {r['later_ttft_p50_ms']:.0f} | "
            f"{r['later_ttft_p90_ms']:.0f} | {r['later_new_tokens_per_s']:.0f} |"
            if floor and native else f"| {r['config']} | {ms:.0f} | | | | | |"
        )
    for r in results:
        if "kvbm" in r:
            print(f"\n{r['config']}: {r['kvbm']}")
    if plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, (left, right) = plt.subplots(1, 2, figsize=(12, 0.35 * len(results) + 3))
        names = [r["config"] for r in results]
        # Horizontal bars: configuration names are long.
        left.barh(names, [r["later_turns_ms"] for r in results], color="#4c72b0")
        left.invert_yaxis()
        if floor:
            left.axvline(floor, color="gray", linestyle="--", label="floor")
            left.axvline(floor * 1.15, color="gray", linestyle=":", label="1.15 x floor")
            left.legend(fontsize=8)
        left.set_xlabel("prefill time of turns 1-3, ms")
        left.set_title("later turns (lower is better)")
        for r in results:
            turns = r["turns"][1:]
            right.plot([t["turn"] for t in turns], [t["seconds"] * 1000 for t in turns], marker="o", label=r["config"])
        right.set_xlabel("turn")
        right.set_ylabel("turn wall time, ms")
        right.set_title("per turn")
        right.legend(fontsize=8)
        for axis in (left, right):
            axis.tick_params(axis="x", labelsize=8)
        fig.suptitle(f"vLLM 0.26, {results[0]['model']} Llama shape, {results[0]['args']['conversations']} conversations")
        fig.tight_layout()
        fig.savefig(plot, dpi=110)


def tokens(baseline: dict, other: dict) -> None:
    print(f"{other['config']} against {baseline['config']}: requests with identical tokens")
    total = same = 0
    for a, b in zip(baseline["turns"], other["turns"]):
        pairs = list(zip(a["generated"], b["generated"]))
        equal = sum(x == y for x, y in pairs)
        total += len(pairs)
        same += equal
        print(f"  turn {a['turn']}: {equal}/{len(pairs)}")
    print(f"  all turns: {same}/{total} ({same / total:.1%})")


def main() -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("perf")
    p.add_argument("results", nargs="+")
    p.add_argument("--plot")
    t = sub.add_parser("tokens")
    t.add_argument("baseline")
    t.add_argument("other")
    args = parser.parse_args()
    if args.mode == "perf":
        perf(load(args.results), args.plot)
    else:
        tokens(*load([args.baseline, args.other]))


if __name__ == "__main__":
    main()
