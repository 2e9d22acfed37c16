"""kvbm's vLLM connector against vLLM's real scheduler (CPU tensors; skipped where vLLM is not
installed): multi-turn conversations whose later turns load their prefixes from host memory and
from disk, byte for byte; bad options refused with the key and value; failures recomputed."""

from __future__ import annotations

import os
import random

import pytest

pytest.importorskip("vllm", reason="vLLM is not installed here")
torch = pytest.importorskip("torch")

from vllm_harness import BLOCK, Engine, make_config  # noqa: E402

from kvbm.vllm.options import ConnectorOptions  # noqa: E402


def conversation_turns(conversations: int, first: int, per_turn: int, turns: int, seed: int = 0):
    rng = random.Random(seed)
    histories = [[rng.randrange(1, 999) for _ in range(first)] for _ in range(conversations)]
    for _ in range(turns):
        yield [list(h) for h in histories]
        for h in histories:
            h.extend(rng.randrange(1, 999) for _ in range(per_turn))


@pytest.fixture
def engine_factory(tmp_path):
    engines = []

    def make(extra=None, gpu_blocks=64, cross_layer=False, max_batched=256, ranks=1):
        options = {"host_bytes": 1 << 20, "endpoint_dir": str(tmp_path)}
        options.update(extra or {})
        engine = Engine(make_config(str(tmp_path / "model"), options, max_batched), gpu_blocks, cross_layer, ranks)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.shutdown()


@pytest.mark.parametrize(
    "cross_layer, ranks", [(False, 1), (True, 1), (True, 2)], ids=["per-layer", "cross-layer", "cross-layer-tp2"]
)
def test_later_turns_load_their_prefix_from_host(engine_factory, cross_layer, ranks):
    engine = engine_factory({"verify": True}, gpu_blocks=48, cross_layer=cross_layer, ranks=ranks)
    loaded_before = 0
    for turn, prompts in enumerate(conversation_turns(6, first=160, per_turn=32, turns=3)):
        for prompt in prompts:
            engine.add(prompt)
        engine.run()
        if turn > 0:
            # The GPU cache (48 blocks) cannot hold 6 conversations: their prefixes come back from kvbm.
            assert engine.leader.totals.data["host_hit_blocks"] > 0
            assert engine.loaded_blocks_checked > loaded_before
        loaded_before = engine.loaded_blocks_checked
    assert engine.leader.verified_blocks > 0
    assert not engine.invalid_blocks_seen
    assert engine.scheduler.kv_cache_manager.block_pool.get_num_free_blocks() == 47  # every block given back


def test_disk_tier_serves_what_host_memory_cannot_hold(engine_factory, tmp_path):
    block_bytes = BLOCK * 2 * 8 * 2 * 2 * 2  # tokens x heads x 2*head_size x fp16 x layers
    engine = engine_factory(
        {"host_bytes": 24 * block_bytes, "disk_bytes": 512 * block_bytes, "disk_dir": str(tmp_path / "disk"),
         "verify": True, "disk_reads": "always"},
        gpu_blocks=40,
    )
    for prompts in conversation_turns(6, first=160, per_turn=32, turns=3, seed=1):
        for prompt in prompts:
            engine.add(prompt)
        engine.run()
    reduced = engine.leader.totals.reduce()
    assert reduced["disk_hit_blocks"] > 0, reduced
    assert engine.leader.totals.data["host_to_disk_bytes"] > 0
    assert engine.loaded_blocks_checked > 0
    assert not engine.invalid_blocks_seen


def test_disk_hits_are_recomputed_while_the_disk_is_slower_than_prefill(engine_factory, tmp_path):
    engine = engine_factory({"disk_bytes": 1 << 20, "disk_dir": str(tmp_path / "disk")}, gpu_blocks=48)
    leader = engine.leader
    assert leader._disk_worth_reading()  # nothing measured yet: the disk is read
    leader._prefill_rate = 4e9
    leader._disk_write_rate = 1e9  # a write-through measured, no read yet
    assert not leader._disk_worth_reading()
    leader._disk_read_rate = 5e9  # reads measured faster than prefill
    assert leader._disk_worth_reading()
    leader._disk_read_rate = 2e9
    assert not leader._disk_worth_reading()


def test_max_concurrent_loads_holds_the_other_requests_back(engine_factory):
    engine = engine_factory({"verify": True, "max_concurrent_loads": 1}, gpu_blocks=48)
    prompts = list(conversation_turns(6, first=160, per_turn=32, turns=2, seed=3))
    for prompt in prompts[0]:
        engine.add(prompt)
    engine.run()
    for prompt in prompts[1]:
        engine.add(prompt)
    most_loading = 0
    while engine.scheduler.has_requests() or engine.leader._in_flight:
        engine.step()
        most_loading = max(most_loading, sum(s.loading for s in engine.leader._requests.values()))
    assert most_loading == 1
    assert engine.loaded_blocks_checked > 0


def test_a_failed_load_is_recomputed_and_never_served(engine_factory):
    engine = engine_factory(gpu_blocks=48)
    prompts = next(conversation_turns(6, first=160, per_turn=32, turns=1, seed=2))
    for prompt in prompts:
        engine.add(prompt)
    engine.run()
    # Corrupt the leader's books: every host slot now claims another block's key, as if the bytes
    # had been lost. The loads still run, but verify mode is off, so break the transfers instead:
    # point every registered slot past the end of the workers' host pool.
    host = engine.leader.host
    for key, slot in list(host._slot_of.items()):
        host._slot_of[key] = slot + host.capacity
    for prompt in prompts:
        engine.add(prompt + [5] * 16)
    engine.run()
    assert engine.invalid_blocks_seen, "the failed loads were not reported"
    assert engine.leader.totals.data["failed_loads"] > 0


def test_options_refused_with_key_and_value(tmp_path):
    with pytest.raises(ValueError, match="unknown option 'host_byte'"):
        ConnectorOptions.parse({"host_byte": 1})
    with pytest.raises(ValueError, match="host_bytes='lots'"):
        ConnectorOptions.parse({"host_bytes": "lots"})
    with pytest.raises(ValueError, match="disk_bytes=1024 needs disk_dir"):
        ConnectorOptions.parse({"host_bytes": 1 << 20, "disk_bytes": 1024})
    options = ConnectorOptions.parse({"host_bytes": 1 << 60})
    with pytest.raises(ValueError, match="host_bytes=1152921504606846976 x 1 rank"):
        options.check_machine(4096, 1)
    options = ConnectorOptions.parse({"host_bytes": 1 << 20, "disk_bytes": 100, "disk_dir": str(tmp_path)})
    with pytest.raises(ValueError, match="disk_bytes=100 is smaller than one KV block"):
        options.check_machine(4096, 1)
    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o500)
    options = ConnectorOptions.parse({"host_bytes": 1 << 20, "disk_bytes": 1 << 20, "disk_dir": str(read_only / "x")})
    if os.geteuid() != 0:  # root writes anywhere
        with pytest.raises(ValueError, match="is not writable"):
            options.check_machine(4096, 1)
    options = ConnectorOptions.parse({"host_bytes": 1 << 20, "disk_bytes": 1 << 20, "disk_dir": "/proc/kvbm"})
    with pytest.raises(ValueError, match="disk_dir='/proc/kvbm' is not writable"):
        options.check_machine(4096, 1)


def test_engine_start_refuses_unknown_option(tmp_path):
    with pytest.raises(ValueError, match="unknown option 'hostbytes'"):
        Engine(make_config(str(tmp_path / "model"), {"hostbytes": 1}), 16)
