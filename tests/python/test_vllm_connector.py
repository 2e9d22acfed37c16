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

    def make(extra=None, gpu_blocks=64, cross_layer=False, max_batched=256, ranks=1, kv_role="kv_both"):
        options = {"host_bytes": 1 << 20, "endpoint_dir": str(tmp_path), "worker_timeout_s": 60}
        options.update(extra or {})
        config = make_config(str(tmp_path / "model"), options, max_batched, kv_role)
        engine = Engine(config, gpu_blocks, cross_layer, ranks)
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        engine.shutdown()


@pytest.mark.parametrize(
    "cross_layer, ranks, layerwise",
    [(False, 1, True), (True, 1, True), (True, 2, True), (False, 1, False), (True, 2, False)],
    ids=["per-layer", "cross-layer", "cross-layer-tp2", "per-layer-async", "cross-layer-tp2-async"],
)
def test_later_turns_load_their_prefix_from_host(engine_factory, cross_layer, ranks, layerwise):
    engine = engine_factory({"verify": True, "layerwise_loads": layerwise}, gpu_blocks=48, cross_layer=cross_layer,
                            ranks=ranks)
    loaded_before = 0
    for turn, prompts in enumerate(conversation_turns(6, first=160, per_turn=32, turns=3)):
        for prompt in prompts:
            engine.add(prompt)
        engine.run()
        loaded = engine.loaded_blocks_checked + engine.layer_loaded_blocks
        if turn > 0:
            # The GPU cache (48 blocks) cannot hold 6 conversations: their prefixes come back from kvbm.
            assert engine.leader.totals.data["host_hit_blocks"] > 0
            assert loaded > loaded_before
        loaded_before = loaded
    # Layer by layer: every host hit (none waits); else every load is asynchronous.
    assert (engine.layer_loaded_blocks > 0) == layerwise
    assert (engine.loaded_blocks_checked > 0) != layerwise
    assert not engine.layer_mismatches
    assert engine.leader.verified_blocks > 0
    assert not engine.invalid_blocks_seen
    assert not engine.leader.has_pending_work()
    assert engine.leader.host.stats()["held"] == 0  # no load or save holds a host slot
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
    assert leader.rates.disk_worth_reading()  # nothing measured yet: the disk is read
    leader.rates.prefill_rate = 4e9
    leader.rates.disk_write_rate = 1e9  # a write-through measured, no read yet
    assert not leader.rates.disk_worth_reading()
    leader.rates.disk_read_rate = 5e9  # reads measured faster than prefill
    assert leader.rates.disk_worth_reading()
    leader.rates.disk_read_rate = 2e9
    assert not leader.rates.disk_worth_reading()


def test_max_concurrent_loads_holds_the_other_requests_back(engine_factory):
    # The limit holds asynchronous loads (layer-by-layer ones never wait).
    engine = engine_factory({"verify": True, "max_concurrent_loads": 1, "layerwise_loads": False}, gpu_blocks=48)
    prompts = list(conversation_turns(6, first=160, per_turn=32, turns=2, seed=3))
    for prompt in prompts[0]:
        engine.add(prompt)
    engine.run()
    for prompt in prompts[1]:
        engine.add(prompt)
    # Counted as each load is submitted (its request is marked loading just before): a load can
    # start and end within one step, where a count taken between steps would miss it.
    most_loading = 0
    submit = engine.leader.transfers.submit

    def counting_submit(operation):
        nonlocal most_loading
        most_loading = max(most_loading, sum(s.loading for s in engine.leader._requests.values()))
        return submit(operation)

    engine.leader.transfers.submit = counting_submit
    while engine.scheduler.has_requests() or engine.leader.transfers.in_flight:
        engine.step()
        most_loading = max(most_loading, sum(s.loading for s in engine.leader._requests.values()))
    assert most_loading == 1
    assert engine.loaded_blocks_checked > 0


def test_kv_roles_producer_only_saves_consumer_only_loads(engine_factory):
    turns = list(conversation_turns(6, first=160, per_turn=32, turns=2, seed=5))
    for role, loads, saves in [("kv_producer", False, True), ("kv_consumer", True, False)]:
        engine = engine_factory(gpu_blocks=48, kv_role=role)
        for prompts in turns:
            for prompt in prompts:
                engine.add(prompt)
            engine.run()
        totals = engine.leader.totals.data
        assert (totals["device_to_host_blocks"] > 0) == saves, role
        assert totals["lookup_blocks"] > 0 and (totals["host_hit_blocks"] > 0) == (loads and saves), role


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


def test_a_worker_that_cannot_load_layer_by_layer_reports_the_blocks_for_recomputing(engine_factory):
    engine = engine_factory(gpu_blocks=48)
    turns = list(conversation_turns(6, first=160, per_turn=32, turns=2, seed=4))
    for prompt in turns[0]:
        engine.add(prompt)
    engine.run()
    engine.sides[0].layer_loader = None  # as if its options said layerwise_loads=false
    for prompt in turns[1]:
        engine.add(prompt)
    engine.run()  # every request still finishes: vLLM recomputed what the worker did not load
    assert engine.invalid_blocks_seen
    assert engine.layer_loaded_blocks == 0
    assert not engine.leader.has_pending_work() and engine.leader.host.stats()["held"] == 0


def test_options_refused_with_key_and_value(tmp_path):
    with pytest.raises(ValueError, match="unknown option 'host_byte'"):
        ConnectorOptions.parse({"host_byte": 1})
    with pytest.raises(ValueError, match="host_bytes='lots'"):
        ConnectorOptions.parse({"host_bytes": "lots"})
    with pytest.raises(ValueError, match="disk_bytes=1024 needs disk_dir"):
        ConnectorOptions.parse({"host_bytes": 1 << 20, "disk_bytes": 1024})
    with pytest.raises(ValueError, match="layer_load_waits='gpu' is not stream or host"):
        ConnectorOptions.parse({"host_bytes": 1 << 20, "layer_load_waits": "gpu"})
    with pytest.raises(ValueError, match="layer_load_path='dma' is not auto or copy_engine or kernel"):
        ConnectorOptions.parse({"host_bytes": 1 << 20, "layer_load_path": "dma"})
    with pytest.raises(ValueError, match="layer_load_sms=0 is below 1"):
        ConnectorOptions.parse({"host_bytes": 1 << 20, "layer_load_sms": 0})
    with pytest.raises(ValueError, match="layer_load_sms=2000 is more than 1024"):
        ConnectorOptions.parse({"host_bytes": 1 << 20, "layer_load_sms": 2000})
    with pytest.raises(ValueError, match="disk_reads='never' is not auto or always"):
        ConnectorOptions.parse({"host_bytes": 1 << 20, "disk_reads": "never"})
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


def test_layer_loads_take_the_copy_engines_for_chunks_of_64_kib_and_more():
    from kvbm.vllm.layer_loads import layer_copy_path

    assert layer_copy_path("auto", 64 << 10) == "copy_engine"  # Llama-8B: 8 KV heads x 128 x 16 tokens x K,V x bf16
    assert layer_copy_path("auto", (64 << 10) - 1) == "kernel"
    assert layer_copy_path("kernel", 1 << 20) == "kernel"
    assert layer_copy_path("copy_engine", 4096) == "copy_engine"


def test_layer_loads_keep_attention_out_of_full_cuda_graphs():
    """A full CUDA graph's replay skips wait_for_layer_load: with layer-by-layer loads vLLM must
    run attention outside the graphs (PIECEWISE), where each layer waits for its copy."""
    from kvbm.vllm import KvbmConnector

    assert KvbmConnector.requires_piecewise_for_cudagraph({"host_bytes": 1 << 20})
    assert not KvbmConnector.requires_piecewise_for_cudagraph({"host_bytes": 1 << 20, "layerwise_loads": False})
    with pytest.raises(ValueError, match="unknown option 'hostbytes'"):
        KvbmConnector.requires_piecewise_for_cudagraph({"hostbytes": 1})


def test_engine_start_refuses_unknown_option(tmp_path):
    with pytest.raises(ValueError, match="unknown option 'hostbytes'"):
        Engine(make_config(str(tmp_path / "model"), {"hostbytes": 1}), 16)


def test_kv_shapes_of_each_backend_become_layouts():
    from kvbm.vllm.kv_shape import cross_layer_layout, per_layer_layout

    blocks = 6
    # FlashAttention/FlashInfer (K and V packed, NHD memory shown as (blocks, heads, tokens, 2*head)).
    nhd = [torch.zeros(blocks, 16, 2, 16, dtype=torch.float16) for _ in range(3)]
    geometry, _, index = per_layer_layout({f"l{i}": t.permute(0, 2, 1, 3) for i, t in enumerate(nhd)}, blocks)
    assert (geometry.num_layers, geometry.outer_dim, geometry.block_bytes) == (3, 1, 3 * 16 * 2 * 16 * 2)
    assert index == {"l0": 0, "l1": 1, "l2": 2}
    # MLA: (blocks, tokens, latent).
    geometry, _, _ = per_layer_layout({"l0": torch.zeros(blocks, 16, 72, dtype=torch.bfloat16)}, blocks)
    assert (geometry.outer_dim, geometry.inner_elements) == (1, 16 * 72)
    # K and V outermost, then blocks: (2, blocks, tokens, heads, head).
    geometry, _, _ = per_layer_layout({"l0": torch.zeros(2, blocks, 16, 2, 8, dtype=torch.float16)}, blocks)
    assert (geometry.outer_dim, geometry.inner_elements) == (2, 16 * 2 * 8)
    # Layers sharing one tensor count once.
    shared = torch.zeros(blocks, 16, 4, dtype=torch.float16)
    geometry, _, index = per_layer_layout({"a": shared, "b": shared}, blocks)
    assert geometry.num_layers == 1 and index == {"a": 0, "b": 0}
    # Cross-layer: (blocks, layers, tokens, heads, 2*head): a chunk per layer, named by vLLM's
    # KV tensors (a tensor shared by two layers is one layer of it).
    names = [["l0"], ["l1", "l1b"], ["l2"]]
    geometry, layout, index = cross_layer_layout(torch.zeros(blocks, 3, 16, 2, 16, dtype=torch.float16), blocks, names)
    assert geometry.cross_layer and geometry.block_bytes == 3 * 16 * 2 * 16 * 2
    assert (geometry.num_layers, layout.config.num_layers) == (3, 3)
    assert index == {"l0": 0, "l1": 1, "l1b": 1, "l2": 2}
    # Layers not right inside the blocks (K/V first): one chunk a block, loads wait for all layers.
    geometry, _, index = cross_layer_layout(torch.zeros(blocks, 2, 3, 16, 16, dtype=torch.float16), blocks, names)
    assert (geometry.num_layers, index) == (1, {})
    # Refused, naming the layer: blocks neither outermost nor behind K/V.
    tokens_first = torch.zeros(16, blocks, 8, dtype=torch.float16)
    with pytest.raises(ValueError, match=r"KV tensor l0 of shape \(16, 6, 8\)"):
        per_layer_layout({"l0": tokens_first}, blocks)
    with pytest.raises(ValueError, match="does not cover one dense range"):
        per_layer_layout({"l0": torch.zeros(blocks, 32, dtype=torch.float16)[:, ::2]}, blocks)
    with pytest.raises(ValueError, match="differ in shape"):
        per_layer_layout({"a": torch.zeros(blocks, 8, dtype=torch.float16), "b": torch.zeros(blocks, 4, dtype=torch.float16)},
                         blocks)


def test_statistics_reach_vllms_logger_and_prometheus(engine_factory):
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from vllm.distributed.kv_transfer.kv_connector.v1.metrics import KVConnectorLogging

    from kvbm.vllm import KvbmConnector
    from kvbm.vllm.stats import KvbmStats

    engine = engine_factory(gpu_blocks=48)
    for prompts in conversation_turns(6, first=160, per_turn=32, turns=2, seed=4):
        for prompt in prompts:
            engine.add(prompt)
        engine.run()
    totals = engine.leader.totals
    assert totals.data["host_hit_blocks"] > 0 and totals.data["host_to_device_bytes"] > 0
    # What vLLM's stats logger does with the data dict each interval.
    logging = KVConnectorLogging(engine.config.kv_transfer_config)
    logging.observe(dict(totals.data))
    lines = []
    logging.log(lambda fmt, text: lines.append(fmt % text))
    assert "host_hit_blocks=" in lines[0] and "host_to_device_GBps=" in lines[0]
    assert isinstance(KvbmConnector.build_kv_connector_stats(dict(totals.data)), KvbmStats)
    # Prometheus counters, one per engine.
    registry = CollectorRegistry()

    def counter(**kwargs):
        return Counter(registry=registry, **kwargs)

    prom = KvbmConnector.build_prom_metrics(engine.config, {Counter: counter, Gauge: Gauge, Histogram: Histogram},
                                            ["engine"], {0: ["0"]})
    prom.observe(dict(totals.data), 0)
    assert registry.get_sample_value("kvbm_host_hit_blocks_total", {"engine": "0"}) == totals.data["host_hit_blocks"]
