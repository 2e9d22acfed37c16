"""The leader's writes: a block a step's forward pass filled is saved Device -> Host once every
worker reports that step's forward pass ended (write-through), then written Host -> Disk when
the disk admits it. From the step that fills it until its save ends, the leader holds a
reference on the GPU block in vLLM's block pool, so vLLM cannot hand it to another request.

A mixin of ``KvbmLeader`` (leader.py), whose books (``host``, ``disk``, ``transfers``, the
pinned GPU blocks) it uses; it runs on the scheduler's thread alone, as the rest of the leader.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable
from typing import Any

from .transfers import Operation

logger = logging.getLogger("kvbm.vllm")


class WriteThrough:
    # ---- saves ------------------------------------------------------------------------------

    def _record_save(self, step: int, request_id: str, state: Any, computed: int, output: Any) -> None:
        """Notes the blocks this step fills, to save once its forward pass has ended, and pins
        them in vLLM's block pool until then."""
        if not self.saves_enabled:
            return
        end_tokens = computed + output.num_scheduled_tokens.get(request_id, 0)
        hashes = state.request.block_hashes
        full = min(end_tokens // self.block_size, len(hashes) // self.hashes_per_block, len(state.gpu_blocks))
        # From the request's first block: blocks that came from vLLM's prefix cache or from the
        # disk are saved too where the host lacks them. (Most steps fill no block: they return
        # here, before any key is looked at.)
        first = state.save_cursor
        if full <= first:
            return
        state.save_cursor = full
        step_hashes = self.hashes_per_block
        entries = []
        for i in range(first, full):
            key = hashes[(i + 1) * step_hashes - 1]
            if key not in self.host and key not in self._saving:
                entries.append((key, state.gpu_blocks[i]))
        if not entries:
            return
        self._pin([gpu for _, gpu in entries])
        self._step_saves.setdefault(step, []).extend(entries)

    def _pin(self, gpu_blocks: list[int]) -> None:
        if self._block_pool is not None:
            self._block_pool.touch([self._block_pool.blocks[b] for b in gpu_blocks])
        self._pinned += len(gpu_blocks)

    def _unpin(self, gpu_blocks: list[int]) -> None:
        if self._block_pool is not None and gpu_blocks:
            self._block_pool.free_blocks([self._block_pool.blocks[b] for b in gpu_blocks])
        self._pinned -= len(gpu_blocks)

    def _start_saves(self, entries: list[tuple[Hashable, int]]) -> None:
        wanted, skipped = [], []
        for key, gpu_block in entries:
            if key in self.host or key in self._saving:
                skipped.append(gpu_block)
            else:
                wanted.append((key, gpu_block))
                self._saving.add(key)
        slots = self.host.allocate(len(wanted))
        for key, gpu_block in wanted[len(slots):]:  # every host block is held: these stay uncached
            self._saving.discard(key)
            skipped.append(gpu_block)
        self._unpin(skipped)
        wanted = wanted[: len(slots)]
        if wanted:
            pairs = [(gpu_block, slot) for (_, gpu_block), slot in zip(wanted, slots)]
            self.transfers.submit(
                Operation("save", [], {"Device->Host": pairs}, [key for key, _ in wanted], {"host": slots}))

    # ---- write-through to disk --------------------------------------------------------------

    def _start_offload(self, host_slots: list[int], keys: list[Hashable]) -> None:
        if self.disk is None:
            return
        threshold = self.options.disk_admission_lookups
        admitted = [
            (slot, key)
            for slot, key in zip(host_slots, keys)
            if key not in self.disk and (threshold <= 1 or self._lookups[key] >= threshold)
        ]
        disk_slots = self.disk.allocate(len(admitted))
        if not disk_slots:
            return
        admitted = admitted[: len(disk_slots)]
        for slot, _ in admitted:
            self.host.hold(slot)
        operation = Operation(
            "offload",
            [],
            {"Host->Disk": [(slot, disk_slot) for (slot, _), disk_slot in zip(admitted, disk_slots)]},
            [key for _, key in admitted],
            {"host": [slot for slot, _ in admitted], "disk": disk_slots},
        )
        self.transfers.submit(operation)

    # ---- their ends (on the scheduler's thread) ---------------------------------------------

    def _save_ended(self, operation: Operation) -> None:
        self._count(operation)
        slots = operation.held["host"]
        saved_slots, saved_keys = [], []
        for (_, slot), key in zip(operation.pairs["Device->Host"], operation.keys):
            self._saving.discard(key)
            if operation.error is None and self.host.register(slot, key):
                saved_slots.append(slot)
                saved_keys.append(key)
        if operation.error:
            logger.warning("kvbm: saving %d blocks failed; they are not cached: %s", len(slots), operation.error)
            self._bump("failed_saves", 1)
        self._start_offload(saved_slots, saved_keys)
        self.host.release_all(slots)
        self._unpin([gpu for gpu, _ in operation.pairs["Device->Host"]])

    def _offload_ended(self, operation: Operation) -> None:
        self._count(operation)
        assert self.disk is not None
        if operation.error is None:
            for (_, disk_slot), key in zip(operation.pairs["Host->Disk"], operation.keys):
                self.disk.register(disk_slot, key)
        else:
            logger.warning("kvbm: writing %d blocks to disk failed; they stay in host memory only: %s",
                           len(operation.keys), operation.error)
            self._bump("failed_saves", 1)
        self.host.release_all(operation.held["host"])
        self.disk.release_all(operation.held["disk"])
