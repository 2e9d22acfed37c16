"""The connector's statistics: lookups and hits per tier, and bytes, seconds and GB/s of each
direction (device->host saves, host->disk write-through, host->device and disk->device loads).

The leader counts them as its operations end; vLLM collects them each step through
``get_kv_connector_stats`` (logged as "KV Transfer metrics: ...") and feeds them to
``KvbmPromMetrics`` for its Prometheus endpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vllm.distributed.kv_transfer.kv_connector.v1.metrics import KVConnectorPromMetrics, KVConnectorStats

DIRECTIONS = ("device_to_host", "host_to_disk", "host_to_device", "disk_to_device")
COUNTERS = ("lookup_blocks", "host_hit_blocks", "disk_hit_blocks", "failed_loads", "failed_saves", "evictions")


def empty_data() -> dict[str, Any]:
    data: dict[str, Any] = {name: 0 for name in COUNTERS}
    for direction in DIRECTIONS:
        data[f"{direction}_bytes"] = 0
        data[f"{direction}_blocks"] = 0
        data[f"{direction}_seconds"] = 0.0
    return data


@dataclass
class KvbmStats(KVConnectorStats):
    def __post_init__(self):
        if not self.data:
            self.data = empty_data()

    def reset(self):
        self.data = empty_data()

    def add_transfer(self, direction: str, blocks: int, block_bytes: int, seconds: float) -> None:
        self.data[f"{direction}_blocks"] += blocks
        self.data[f"{direction}_bytes"] += blocks * block_bytes
        self.data[f"{direction}_seconds"] += seconds

    def aggregate(self, other: KVConnectorStats) -> "KvbmStats":
        for key, value in other.data.items():
            self.data[key] = self.data.get(key, 0) + value
        return self

    def reduce(self) -> dict[str, int | float]:
        out: dict[str, int | float] = {name: self.data[name] for name in COUNTERS}
        lookups = self.data["lookup_blocks"]
        out["hit_rate"] = round((self.data["host_hit_blocks"] + self.data["disk_hit_blocks"]) / lookups, 3) if lookups else 0.0
        for direction in DIRECTIONS:
            moved = self.data[f"{direction}_bytes"]
            seconds = self.data[f"{direction}_seconds"]
            out[f"{direction}_GB"] = round(moved / 1e9, 3)
            out[f"{direction}_GBps"] = round(moved / seconds / 1e9, 2) if seconds > 0 else 0.0
        return out

    def is_empty(self) -> bool:
        return not any(self.data.values())


class KvbmPromMetrics(KVConnectorPromMetrics):
    """Counters (``kvbm_*``) of the statistics above, one set per engine."""

    def __init__(self, vllm_config, metric_types, labelnames, per_engine_labelvalues):
        super().__init__(vllm_config, metric_types, labelnames, per_engine_labelvalues)
        self._counters: dict[str, dict[int, Any]] = {}
        documented = {
            "lookup_blocks": "Blocks of prompts looked up in kvbm's tiers",
            "host_hit_blocks": "Blocks found in kvbm's host tier",
            "disk_hit_blocks": "Blocks found in kvbm's disk tier",
            "failed_loads": "Loads that failed (their blocks were recomputed)",
            "failed_saves": "Saves that failed (their blocks were not cached)",
            "evictions": "Blocks evicted from kvbm's tiers",
        }
        for direction in DIRECTIONS:
            documented[f"{direction}_bytes"] = f"Bytes moved {direction.replace('_', ' ')}"
            documented[f"{direction}_seconds"] = f"Seconds spent moving blocks {direction.replace('_', ' ')}"
        for key, documentation in documented.items():
            counter = self._counter_cls(name=f"kvbm_{key}", documentation=documentation, labelnames=labelnames)
            self._counters[key] = {
                engine: counter.labels(*values) for engine, values in per_engine_labelvalues.items()
            }

    def observe(self, transfer_stats_data: dict[str, Any], engine_idx: int = 0):
        for key, per_engine in self._counters.items():
            value = transfer_stats_data.get(key, 0)
            if value:
                per_engine[engine_idx].inc(value)
