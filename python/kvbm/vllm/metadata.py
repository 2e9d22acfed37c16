"""What the connector's two halves tell each other each engine step.

Scheduler -> workers (``KvbmMetadata``, with the scheduler's output): the step's number, and
which requests' loads the leader has seen finish on every rank, so that each worker's
``get_finished`` reports them (vLLM counts a request done only when every worker says so).

Workers -> scheduler (``KvbmWorkerMetadata``, with the model runner's output): the steps whose
forward pass has ended on the worker. The leader sends a step's saves only then, so a save never
reads a block the forward pass is still writing.
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


@dataclass
class KvbmWorkerMetadata(KVConnectorWorkerMetadata):
    # The last step whose forward pass ended, on every worker aggregated so far.
    step: int

    def aggregate(self, other: KVConnectorWorkerMetadata) -> KVConnectorWorkerMetadata:
        assert isinstance(other, KvbmWorkerMetadata)
        return KvbmWorkerMetadata(step=min(self.step, other.step))
