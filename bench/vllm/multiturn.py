"""Multi-turn prefill through vLLM 0.26 with and without kvbm's connector, on the GPU machine.

    python bench/vllm/multiturn.py CONFIG [--model 8b|1b] [--conversations 16] [--first 3072]
        [--per-turn 1024] [--turns 4] [--max-tokens 1] [--gpu-blocks 1024] [--host-gib 16]
        [--disk-gib 0] [--disk-dir D] [--loads layerwise|async] [--verify] [--option KEY=VALUE]...
        [--json OUT]

CONFIG: prefix (vLLM's prefix caching alone), native (vLLM's own CPU offloading with
--host-gib), floor (a GPU cache that holds everything), kvbm (kvbm's connector: --host-gib of
pinned memory, and --disk-gib on disk when given; --option sets any other connector option,
e.g. --option layer_load_path=copy_engine).

Every conversation starts with --first random tokens; each turn prefills its whole history (all
conversations at once, as concurrent requests), then appends the tokens it generated and
--per-turn new ones. It prints, per turn, the wall time, time to first token (p50, p90) and
prefill throughput, and the generated token ids (for comparing configurations), as one JSON
object. Weights are vLLM's dummy ones (seeded): no download; prompts are token ids.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time

MODELS = {
    # Llama 3.1 8B's shape; and a small Llama for quick checks.
    "8b": {"hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
           "num_key_value_heads": 8, "vocab_size": 128256},
    "1b": {"hidden_size": 2048, "intermediate_size": 8192, "num_attention_heads": 32, "num_hidden_layers": 16,
           "num_key_value_heads": 8, "vocab_size": 128256},
}


def model_dir(name: str) -> str:
    directory = os.path.join(tempfile.gettempdir(), f"kvbm-llama-{name}")
    os.makedirs(directory, exist_ok=True)
    config = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5, "rope_theta": 500000.0, "torch_dtype": "bfloat16", "hidden_act": "silu",
        "tie_word_embeddings": False, "bos_token_id": 128000, "eos_token_id": 128001, **MODELS[name],
    }
    with open(os.path.join(directory, "config.json"), "w") as f:
        json.dump(config, f)
    return directory


def make_llm(args):
    from vllm import LLM
    from vllm.config import KVTransferConfig

    kwargs = dict(
        model=model_dir(args.model), load_format="dummy", skip_tokenizer_init=True, enforce_eager=True,
        max_model_len=args.max_model_len, enable_prefix_caching=True, disable_log_stats=False, seed=0,
        gpu_memory_utilization=0.9, num_gpu_blocks_override=args.gpu_blocks,
    )
    if args.config == "floor":
        kwargs["num_gpu_blocks_override"] = args.floor_blocks
    elif args.config == "native":
        kwargs["kv_offloading_size"] = args.host_gib
        kwargs["kv_offloading_backend"] = "native"
    elif args.config == "kvbm":
        extra = {"host_bytes": int(args.host_gib * (1 << 30)), "verify": args.verify,
                 "layerwise_loads": args.loads == "layerwise"}
        if args.disk_gib:
            extra.update(disk_bytes=int(args.disk_gib * (1 << 30)), disk_dir=args.disk_dir, disk_reads=args.disk_reads)
        extra.update(args.option)
        kwargs["kv_transfer_config"] = KVTransferConfig(
            kv_connector="KvbmConnector", kv_connector_module_path="kvbm.vllm", kv_role="kv_both",
            kv_connector_extra_config=extra,
        )
    return LLM(**kwargs)


def connector_option(text: str) -> tuple[str, object]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"--option {text!r} is not KEY=VALUE")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", choices=["prefix", "native", "floor", "kvbm"])
    parser.add_argument("--model", default="8b", choices=sorted(MODELS))
    parser.add_argument("--conversations", type=int, default=16)
    parser.add_argument("--first", type=int, default=3072)
    parser.add_argument("--per-turn", type=int, default=1024)
    parser.add_argument("--turns", type=int, default=4)
    parser.add_argument("--max-tokens", type=int, default=1)
    parser.add_argument("--gpu-blocks", type=int, default=1024)
    parser.add_argument("--floor-blocks", type=int, default=8000)
    parser.add_argument("--max-model-len", type=int, default=16384)
    parser.add_argument("--host-gib", type=float, default=16)
    parser.add_argument("--disk-gib", type=float, default=0)
    parser.add_argument("--disk-dir", default=os.path.join(tempfile.gettempdir(), "kvbm-disk"))
    parser.add_argument("--disk-reads", default="auto", choices=["auto", "always"])
    parser.add_argument("--verify", action="store_true")
    # kvbm: host hits loaded a layer at a time in the forward pass, or each request waiting for its whole prefix.
    parser.add_argument("--loads", default="layerwise", choices=["layerwise", "async"])
    parser.add_argument("--option", type=connector_option, action="append", default=[],
                        help="KEY=VALUE: a connector option (VALUE read as JSON where it parses, else a string)")
    parser.add_argument("--label", default=None)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()

    from vllm import SamplingParams

    started = time.perf_counter()
    llm = make_llm(args)
    startup = time.perf_counter() - started
    rng = random.Random(1234)
    vocab = MODELS[args.model]["vocab_size"] - 1000
    histories = [[rng.randrange(1000, vocab) for _ in range(args.first)] for _ in range(args.conversations)]
    params = SamplingParams(max_tokens=args.max_tokens, temperature=0.0, ignore_eos=True)
    turns = []
    for turn in range(args.turns):
        prompts = [{"prompt_token_ids": list(h)} for h in histories]
        began = time.perf_counter()
        outputs = llm.generate(prompts, params, use_tqdm=False)
        wall = time.perf_counter() - began
        ttfts = [o.metrics.first_token_latency for o in outputs if o.metrics is not None and o.metrics.first_token_latency]
        new_tokens = args.first if turn == 0 else args.per_turn + args.max_tokens
        generated = [list(o.outputs[0].token_ids) for o in outputs]
        turns.append({
            "turn": turn, "seconds": wall, "prompt_tokens": sum(len(h) for h in histories),
            "ttft_p50": percentile(ttfts, 0.5) if ttfts else None, "ttft_p90": percentile(ttfts, 0.9) if ttfts else None,
            "new_tokens_per_s": new_tokens * args.conversations / wall, "generated": generated,
        })
        print(f"turn {turn}: {wall * 1000:.0f} ms, ttft p50 {turns[-1]['ttft_p50']}, "
              f"{turns[-1]['new_tokens_per_s']:.0f} new tokens/s", file=sys.stderr, flush=True)
        for h, g in zip(histories, generated):
            h.extend(g)
            h.extend(rng.randrange(1000, vocab) for _ in range(args.per_turn))
    later = turns[1:]
    result = {
        "config": args.label or args.config, "model": args.model, "startup_s": startup,
        "args": {k: v for k, v in vars(args).items() if k != "json"},
        "later_turns_ms": sum(t["seconds"] for t in later) * 1000,
        "later_ttft_p50_ms": percentile([t["ttft_p50"] for t in later if t["ttft_p50"]], 0.5) * 1000 if later else None,
        "later_ttft_p90_ms": max((t["ttft_p90"] for t in later if t["ttft_p90"]), default=0) * 1000,
        "later_new_tokens_per_s": sum((args.per_turn + args.max_tokens) * args.conversations for _ in later)
        / max(1e-9, sum(t["seconds"] for t in later)),
        "turns": turns,
    }
    connector = kvbm_totals(llm)
    if connector is not None:
        result["kvbm"] = connector
    print(json.dumps({k: v for k, v in result.items() if k != "turns"}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f)
    return 0


def kvbm_totals(llm):
    """The connector's cumulative statistics, where the engine runs in this process."""
    try:
        scheduler = llm.llm_engine.engine_core.engine_core.scheduler
    except AttributeError:
        return None
    leader = getattr(scheduler.connector, "_leader", None)
    if leader is None:
        return None
    totals = leader.totals.reduce()
    totals["verified_blocks"] = leader.verified_blocks
    return totals


if __name__ == "__main__":
    sys.exit(main())
