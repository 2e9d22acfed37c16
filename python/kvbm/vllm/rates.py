"""Whether a disk hit is worth loading: the disk's read rate against the engine's prefill rate,
both in KV bytes per second and both measured as the engine runs. A disk slower than the engine
recomputes its blocks is skipped (the blocks are recomputed). Until a disk read is measured, the
write-through's rate stands in for it; while either rate is unmeasured, the disk is read."""

from __future__ import annotations

import time

from .transfers import Operation


def _average(average: float | None, sample: float) -> float:
    return sample if average is None else 0.7 * average + 0.3 * sample


class LoadOrRecompute:
    def __init__(self, block_bytes: int, block_size: int, always_load: bool):
        self.block_bytes = block_bytes
        self.block_size = block_size
        self.always_load = always_load
        self.disk_read_rate: float | None = None
        self.disk_write_rate: float | None = None
        self.prefill_rate: float | None = None
        self._last_output_time: float | None = None
        self._last_step_tokens = 0

    def step_scheduled(self, tokens: int) -> None:
        self._last_step_tokens = tokens

    def step_ended(self) -> None:
        """A step's output arrived: its tokens over the time since the last one (steps of a few
        tokens, decode, say little about prefill and are left out)."""
        now = time.perf_counter()
        if self._last_output_time is not None and self._last_step_tokens >= 256:
            seconds = now - self._last_output_time
            self.prefill_rate = _average(self.prefill_rate, self._last_step_tokens * self.block_bytes / self.block_size / seconds)
        self._last_output_time = now

    def disk_operation_ended(self, operation: Operation) -> None:
        """Its rate times the disk operations that shared the disk with it."""
        if operation.error:
            return
        for direction in ("Disk->Device", "Host->Disk"):
            seconds = operation.seconds.get(direction)
            if not seconds:
                continue
            rate = len(operation.pairs[direction]) * self.block_bytes / seconds * max(1, operation.disk_neighbours)
            if direction == "Disk->Device":
                self.disk_read_rate = _average(self.disk_read_rate, rate)
            else:
                self.disk_write_rate = _average(self.disk_write_rate, rate)

    def disk_worth_reading(self) -> bool:
        disk_rate = self.disk_read_rate if self.disk_read_rate is not None else self.disk_write_rate
        if self.always_load or disk_rate is None or self.prefill_rate is None:
            return True
        return disk_rate >= self.prefill_rate
