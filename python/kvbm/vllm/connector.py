"""``KvbmConnector``: kvbm as vLLM's KV connector (``KVConnectorBase_V1``).

    vllm serve MODEL --kv-transfer-config '{"kv_connector": "KvbmConnector",
        "kv_connector_module_path": "kvbm.vllm", "kv_role": "kv_both",
        "kv_connector_extra_config": {"host_bytes": 17179869184, "disk_dir": "/nvme/kv", "disk_bytes": ...}}'

vLLM builds one instance in its scheduler (role SCHEDULER: kvbm's leader, ``leader.py``) and one
in each model-runner process (role WORKER: a kvbm worker in sharded mode, ``worker.py``); the
two meet over kvbm's leader/worker channel on a Unix socket named after the engine.
"""

from __future__ import annotations

from typing import Any

from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorBase_V1, KVConnectorRole

from .kv_shape import block_bytes_from_config
from .leader import KvbmLeader
from .metadata import KvbmMetadata
from .options import ConnectorOptions
from .stats import KvbmPromMetrics, KvbmStats
from .worker import KvbmWorkerSide


def _world_size(vllm_config: Any) -> int:
    parallel = vllm_config.parallel_config
    if parallel.pipeline_parallel_size != 1:
        raise ValueError(
            f"kvbm connector: pipeline_parallel_size={parallel.pipeline_parallel_size}; kvbm's connector takes "
            "tensor parallelism only"
        )
    return parallel.tensor_parallel_size


def _rank(world_size: int) -> int:
    """This worker's tensor-parallel rank (0 without a tensor-parallel group, as with one GPU)."""
    from vllm.distributed.parallel_state import get_tensor_model_parallel_rank, model_parallel_is_initialized

    if model_parallel_is_initialized():
        return get_tensor_model_parallel_rank()
    if world_size != 1:
        raise ValueError(f"kvbm connector: tensor_parallel_size={world_size} but vLLM's parallel groups are not set up")
    return 0


def engine_endpoint(options: ConnectorOptions, vllm_config: Any) -> str:
    """Where one engine's leader and workers meet: data-parallel ranks are engines of their own."""
    engine_id = vllm_config.kv_transfer_config.engine_id
    return options.endpoint(f"{engine_id[:16]}-dp{vllm_config.parallel_config.data_parallel_rank}")


class KvbmConnector(KVConnectorBase_V1):
    def __init__(self, vllm_config: Any, role: KVConnectorRole, kv_cache_config: Any = None):
        super().__init__(vllm_config, role, kv_cache_config)
        if kv_cache_config is None:
            raise ValueError("kvbm connector: vLLM gave no KV cache config (vLLM 0.26 or later is needed)")
        transfer = vllm_config.kv_transfer_config
        self.options = ConnectorOptions.parse(transfer.kv_connector_extra_config)
        world_size = _world_size(vllm_config)
        endpoint = engine_endpoint(self.options, vllm_config)
        block_bytes = block_bytes_from_config(kv_cache_config)
        self._leader: KvbmLeader | None = None
        self._worker: KvbmWorkerSide | None = None
        if role == KVConnectorRole.SCHEDULER:
            block_size = kv_cache_config.kv_cache_groups[0].kv_cache_spec.block_size
            hash_block_size = vllm_config.cache_config.block_size
            if block_size % hash_block_size:
                raise ValueError(
                    f"kvbm connector: KV block size {block_size} is not a multiple of the hash block size "
                    f"{hash_block_size}"
                )
            self._leader = KvbmLeader(
                self.options, block_size, block_size // hash_block_size, block_bytes, world_size, endpoint,
                # kv_producer only saves (fills the tiers for other engines); kv_consumer only loads.
                loads=transfer.is_kv_consumer, saves=transfer.is_kv_producer,
            )
        else:
            self.options.check_machine(block_bytes, world_size)
            self._worker = KvbmWorkerSide(self.options, kv_cache_config, endpoint, _rank(world_size), world_size)

    @property
    def prefer_cross_layer_blocks(self) -> bool:
        # One run of bytes a block for every layer: one copy a block instead of one a layer.
        return True

    # ---- worker side ------------------------------------------------------------------------

    def _metadata(self) -> KvbmMetadata | None:
        return self._connector_metadata if isinstance(self._connector_metadata, KvbmMetadata) else None

    def register_kv_caches(self, kv_caches: dict[str, Any]) -> None:
        assert self._worker is not None
        self._worker.register_kv_caches(kv_caches)

    def register_cross_layers_kv_cache(self, kv_cache: Any, attn_backend: Any) -> None:
        assert self._worker is not None
        self._worker.register_cross_layers_kv_cache(kv_cache)

    def start_load_kv(self, forward_context: Any, **kwargs: Any) -> None:
        # Host hits of requests scheduled this step: one copy per layer, posted now. (Disk hits
        # load asynchronously: the leader has every rank copy a waiting request's blocks while
        # other requests compute, and vLLM schedules the request once they arrived.)
        assert self._worker is not None
        self._worker.start_load_kv(self._metadata())

    def wait_for_layer_load(self, layer_name: str) -> None:
        assert self._worker is not None
        self._worker.wait_for_layer_load(layer_name)

    def save_kv_layer(self, layer_name: str, kv_layer: Any, attn_metadata: Any, **kwargs: Any) -> None:
        # Saves run on kvbm's streams once every worker reports the step's forward pass ended
        # (build_connector_worker_meta): the forward pass never waits for them.
        return

    def wait_for_save(self) -> None:
        # Saves never hold the step (the blocks being saved stay pinned in vLLM's block pool
        # until their saves end); the step's layer-by-layer loads end here.
        assert self._worker is not None
        self._worker.wait_for_save()

    def get_finished(self, finished_req_ids: set[str]) -> tuple[set[str] | None, set[str] | None]:
        assert self._worker is not None
        return self._worker.get_finished(self._metadata())

    def get_block_ids_with_load_errors(self) -> set[int]:
        assert self._worker is not None
        return self._worker.failed_load_blocks(self._metadata())

    def build_connector_worker_meta(self):
        assert self._worker is not None
        return self._worker.worker_metadata(self._metadata())

    def shutdown(self):
        if self._worker is not None:
            self._worker.shutdown()
        if self._leader is not None:
            self._leader.shutdown()

    # ---- scheduler side ---------------------------------------------------------------------

    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int) -> tuple[int | None, bool]:
        assert self._leader is not None
        return self._leader.get_num_new_matched_tokens(request, num_computed_tokens)

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int) -> None:
        assert self._leader is not None
        self._leader.update_state_after_alloc(request, blocks, num_external_tokens)

    def build_connector_meta(self, scheduler_output: Any) -> KvbmMetadata:
        assert self._leader is not None
        return self._leader.build_connector_meta(scheduler_output)

    def update_connector_output(self, connector_output: Any) -> None:
        assert self._leader is not None
        self._leader.update_connector_output(connector_output)

    def bind_gpu_block_pool(self, gpu_block_pool: Any) -> None:
        assert self._leader is not None
        self._leader.bind_gpu_block_pool(gpu_block_pool)

    def request_finished(self, request: Any, block_ids: list[int]) -> tuple[bool, dict[str, Any] | None]:
        assert self._leader is not None
        return self._leader.request_finished(request), None

    def has_pending_push_work(self) -> bool:
        return self._leader is not None and self._leader.has_pending_work()

    def get_kv_connector_stats(self) -> KvbmStats | None:
        return self._leader.take_stats() if self._leader is not None else None

    @classmethod
    def requires_piecewise_for_cudagraph(cls, extra_config: dict[str, Any]) -> bool:
        # Layer-by-layer loads wait in wait_for_layer_load, which a full CUDA graph's replay
        # skips: a batch replayed whole (a new request whose prompt is cached but for its last
        # token runs as a one-token "decode") would read its KV before the copy. vLLM then
        # keeps attention out of the graphs (PIECEWISE), where the waits run.
        return ConnectorOptions.parse(extra_config).layerwise_loads

    @classmethod
    def build_kv_connector_stats(cls, data: dict[str, Any] | None = None) -> KvbmStats:
        return KvbmStats(data=dict(data) if data else {})

    @classmethod
    def build_prom_metrics(cls, vllm_config, metric_types, labelnames, per_engine_labelvalues):
        return KvbmPromMetrics(vllm_config, metric_types, labelnames, per_engine_labelvalues)
