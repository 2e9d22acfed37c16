"""The connector's worker half: a kvbm worker inside each of vLLM's model-runner processes.

It registers vLLM's own KV tensors as the worker's device pool (``Layout.from_tensors``, no
copy), allocates the host pool (pinned memory) and the disk pool (one O_DIRECT file per rank),
and serves the leader's transfer requests on kvbm's threads and CUDA streams, outside vLLM's
forward pass. Host hits of requests the leader let run at once load a layer at a time during
the forward pass (``layer_loads.py``). Each step it reports what the leader saw finish
(``get_finished``), the blocks whose load failed, and that the step's forward pass ended (the
leader saves that step's blocks and frees the host slots of its layer loads only then).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import kvbm

from .kv_shape import KvGeometry, block_bytes_from_config, cross_layer_layout, per_layer_layout
from .layer_loads import LayerLoader
from .metadata import KvbmMetadata, KvbmWorkerMetadata
from .options import ConnectorOptions, cuda_present

logger = logging.getLogger("kvbm.vllm")


class KvbmWorkerSide:
    def __init__(self, options: ConnectorOptions, kv_cache_config: Any, endpoint: str, rank: int, world_size: int):
        self.options = options
        self.kv_cache_config = kv_cache_config
        self.endpoint = endpoint
        self.rank = rank
        self.world_size = world_size
        self.geometry: KvGeometry | None = None
        self.worker: kvbm.Worker | None = None
        self.layer_loader: LayerLoader | None = None
        self._unloaded: set[int] = set()  # GPU blocks of layer-by-layer loads this rank could not run
        self._layouts: list[Any] = []

    def register_kv_caches(self, kv_caches: dict[str, Any]) -> None:
        geometry, device, layer_index = per_layer_layout(kv_caches, self.kv_cache_config.num_blocks)
        self._start(geometry, device, layer_index)

    def register_cross_layers_kv_cache(self, kv_cache: Any) -> None:
        layer_names = [list(t.shared_by) for t in self.kv_cache_config.kv_cache_tensors]
        geometry, device, layer_index = cross_layer_layout(kv_cache, self.kv_cache_config.num_blocks, layer_names)
        self._start(geometry, device, layer_index)

    def _start(self, geometry: KvGeometry, device: Any, layer_index: dict[str, int]) -> None:
        expected = block_bytes_from_config(self.kv_cache_config)
        if geometry.block_bytes != expected:
            raise ValueError(
                f"kvbm connector: vLLM's KV tensors hold {geometry.block_bytes} bytes a block; its KV cache config "
                f"says {expected}"
            )
        host_kind = "pinned" if cuda_present() else "system"  # pinned: the GPU copies it directly
        host = kvbm.Layout.allocate(geometry.config(self.options.host_blocks(expected)), host_kind)
        disk = None
        if self.options.disk_bytes:
            assert self.options.disk_dir is not None
            directory = os.path.join(self.options.disk_dir, f"rank{self.rank}")
            os.makedirs(directory, exist_ok=True)
            disk = kvbm.Layout.allocate(geometry.config(self.options.disk_blocks(expected)), "disk", dir=directory)
        context = kvbm.TransferContext()
        if self.options.layerwise_loads:
            self.layer_loader = LayerLoader(host, device, geometry.num_layers, layer_index, self.options)
        self.geometry = geometry
        self._layouts = [device, host, disk]
        self.worker = kvbm.Worker(
            self.endpoint,
            context=context,
            rank=self.rank,
            world_size=self.world_size,
            device=device,
            host=host,
            disk=disk,
            leader_wait=self.options.worker_timeout_s,
            # The leader keeps up to 8 memory and 4 disk operations in flight: all of them run
            # at once, so a slow disk read never holds a host load back.
            concurrent_transfers=12,
        )
        logger.info(
            "kvbm: rank %d serves %s at %s: %s blocks of %d bytes (%s), host %d (%s), disk %d",
            self.rank, "cross-layer KV" if geometry.cross_layer else f"{geometry.num_layers} KV layers",
            self.endpoint, geometry.num_blocks, geometry.block_bytes, "device", host.config.num_blocks, host_kind,
            disk.config.num_blocks if disk is not None else 0,
        )

    def start_load_kv(self, metadata: KvbmMetadata | None) -> None:
        if metadata is None or not metadata.layer_loads:
            return
        if self.layer_loader is None:  # the leader and this worker read the same options: a defect, recomputed
            logger.error("kvbm: rank %d got layer-by-layer loads without layerwise_loads; vLLM recomputes them",
                         self.rank)
            self._unloaded = {gpu for _, gpu in metadata.layer_loads}
            return
        self.layer_loader.start(metadata.layer_loads)

    def wait_for_layer_load(self, layer_name: str) -> None:
        if self.layer_loader is not None:
            self.layer_loader.wait_for(layer_name)

    def wait_for_save(self) -> None:
        if self.layer_loader is not None:
            self.layer_loader.finish()

    def get_finished(self, metadata: KvbmMetadata | None) -> tuple[set[str] | None, set[str] | None]:
        if metadata is None:
            return None, None
        return None, (metadata.finished_loads or None)  # saves never delay vLLM's freeing

    def failed_load_blocks(self, metadata: KvbmMetadata | None) -> set[int]:
        failed = set(metadata.failed_load_blocks) if metadata is not None else set()
        failed |= self._unloaded
        self._unloaded = set()
        if self.layer_loader is not None:
            failed |= self.layer_loader.take_failed()
        return failed

    def worker_metadata(self, metadata: KvbmMetadata | None) -> KvbmWorkerMetadata | None:
        if metadata is None:
            return None
        loader = self.layer_loader
        if loader is None or not metadata.layer_loads:
            return KvbmWorkerMetadata(step=metadata.step)
        loader.finish()  # no-op after wait_for_save; the leader frees the step's host slots on this metadata
        return KvbmWorkerMetadata(
            step=metadata.step, layer_load_seconds=loader.last_seconds, failed_layer_load_blocks=loader.last_failed_blocks
        )

    def shutdown(self) -> None:
        if self.layer_loader is not None:
            self.layer_loader.finish()
            self.layer_loader = None
        if self.worker is not None:
            self.worker.stop()
            self.worker = None
        self._layouts = []

