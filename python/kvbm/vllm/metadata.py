"""What the connector's two halves tell each other each engine step.

Scheduler -> workers (``KvbmMetadata``, with the scheduler's output): the step's number, which
requests' loads the leader has seen finish on every rank, so that each worker's
``get_finished`` reports them (vLLM counts a request done only when every worker says so), and
the (host slot, GPU block) pairs each rank loads a layer at a time during this step's forward
pass.

Workers -> scheduler (``KvbmWorkerMetadata``, with the model runner's output): the steps whose
forward pass has ended on the worker, with every layer-by-layer load of them. The leader sends a
step's saves only then, so a save never reads a block the forward pass is still writing, and
frees the host slots those loads read.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from vllm.distributed.kv_transfer.kv_connector.v1.base import KVConnectorMetadata, KVConnectorWorkerMetadata


@dataclass
class KvbmMetadata(KVConnectorMetadata):
    step: int
    finished_loads: set[str] = field(default_factory=set)
    # vLLM block ids whose load failed: vLLM recomputes them.
    failed_load_blocks: set[int] = field(default_factory=set)
    # (host slot, GPU block): loaded a layer at a time during this step's forward pass.
    layer_loads: list[tuple[int, int]] = field(default_factory=list)


@dataclass
class KvbmWorkerMetadata(KVConnectorWorkerMetadata):
    # The last step whose forward pass ended, on every worker aggregated so far.
    step: int
    # Seconds from posting the step's layer-by-layer loads to the end of the last (the slowest rank's).
    layer_load_seconds: float = 0.0
    # Blocks of the step's layer-by-layer loads that failed (on the rank with most failures).
    failed_layer_load_blocks: int = 0

    def aggregate(self, other: KVConnectorWorkerMetadata) -> KVConnectorWorkerMetadata:
        assert isinstance(other, KvbmWorkerMetadata)
        return KvbmWorkerMetadata(
            step=min(self.step, other.step), layer_load_seconds=max(self.layer_load_seconds, other.layer_load_seconds),
            failed_layer_load_blocks=max(self.failed_layer_load_blocks, other.failed_layer_load_blocks),
        )
