"""The connector's scheduler half: kvbm's leader inside vLLM's scheduler.

It keeps the books of the host and disk tiers that the workers hold (``TierIndex``), answers
vLLM's prefix lookups from them, and moves blocks by sending transfer requests to every
worker over kvbm's leader/worker channel (sharded mode: each rank moves its own shard):

- a lookup finds the longest run of a prompt's next blocks in host or disk; vLLM allocates GPU
  blocks for them and the request waits (an asynchronous load) while every rank copies
  Host -> Device and Disk -> Device;
- a block that a step's forward pass filled is saved Device -> Host once every worker reports
  that step's forward pass ended (write-through), then Host -> Disk when admitted; from the step
  that fills it until its save ends, the connector holds a reference on the GPU block in vLLM's
  block pool, so vLLM cannot hand it to another request (a finished or preempted request's other
  blocks go back at once);
- a disk whose reads are slower than the engine's prefill is skipped: recomputing is faster.

Transfers run on kvbm's threads (transfers.py); their ends are taken on the scheduler's thread,
so the books, and vLLM's block pool, change on that thread alone.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any

import kvbm

from .metadata import KvbmMetadata
from .options import ConnectorOptions
from .rates import LoadOrRecompute
from .stats import KvbmStats
from .tier_index import TierIndex
from .transfers import Operation, TransferRunner

logger = logging.getLogger("kvbm.vllm")


@dataclass
class RequestState:
    request: Any
    gpu_blocks: list[int] = field(default_factory=list)
    computed_at_lookup: int = 0
    allocated: bool = False  # update_state_after_alloc has seen it (again after a preemption)
    save_cursor: int = 0  # blocks before it are saved or noted for saving
    loading: bool = False
    finished: bool = False


class KvbmLeader:
    def __init__(
        self,
        options: ConnectorOptions,
        block_size: int,
        hashes_per_block: int,
        block_bytes: int,
        world_size: int,
        endpoint: str,
        loads: bool = True,
        saves: bool = True,
    ):
        # The machine's memory and disk were checked by the workers before they allocated.
        options.check_sizes(block_bytes)
        self.options = options
        self.block_size = block_size
        self.hashes_per_block = hashes_per_block
        self.block_bytes = block_bytes
        self.loads_enabled = loads
        self.saves_enabled = saves
        self.host = TierIndex("host", options.host_blocks(block_bytes))
        self.disk = TierIndex("disk", options.disk_blocks(block_bytes)) if options.disk_bytes else None
        self.leader = kvbm.Leader(endpoint, world_size=world_size)
        self.endpoint = endpoint
        logger.info(
            "kvbm: leader at %s waiting for %d worker(s); host %d blocks, disk %d blocks of %d bytes",
            endpoint, world_size, self.host.capacity, self.disk.capacity if self.disk else 0, block_bytes,
        )
        self.leader.wait_for_workers(timeout=options.worker_timeout_s)
        self.transfers = TransferRunner(self.leader, options.transfer_timeout_s, options.verify)
        self.rates = LoadOrRecompute(block_bytes, block_size, always_load=options.disk_reads == "always")
        self._block_pool: Any = None  # vLLM's GPU block pool (bind_gpu_block_pool)
        self._pinned = 0  # references the connector holds on GPU blocks being saved
        self._requests: dict[str, RequestState] = {}
        self._step = 0
        self._step_saves: dict[int, list[tuple[Hashable, int]]] = {}  # step -> (key, pinned GPU block)
        self._saving: set[Hashable] = set()  # keys whose save is in flight
        self._lookups: Counter[Hashable] = Counter()
        self._finished_loads: set[str] = set()
        self._failed_load_blocks: set[int] = set()
        self._stats = KvbmStats()  # since vLLM last took them
        self.totals = KvbmStats()  # since the start
        self._stats_lock = threading.Lock()
        self._evictions_seen = 0

    # ---- keys -------------------------------------------------------------------------------

    def keys(self, request: Any) -> list[Hashable]:
        """One key per full block: vLLM's own block hash (see the README for why)."""
        hashes = request.block_hashes
        step = self.hashes_per_block
        return [hashes[i * step + step - 1] for i in range(len(hashes) // step)]

    # ---- scheduler calls --------------------------------------------------------------------

    def get_num_new_matched_tokens(self, request: Any, num_computed_tokens: int) -> tuple[int, bool]:
        self._drain()
        if num_computed_tokens % self.block_size:
            return 0, False
        keys = self.keys(request)
        start = num_computed_tokens // self.block_size
        if not self.loads_enabled:
            keys = []
        matched = 0
        use_disk = self.disk is not None and self.rates.disk_worth_reading()
        for key in keys[start:]:
            if key in self.host or (use_disk and key in self.disk):
                matched += 1
            else:
                break
        limit = self.options.max_concurrent_loads
        if matched and limit and sum(s.loading for s in self._requests.values()) >= limit:
            return None, False  # asked again at a later step, once a load has ended
        state = self._requests.setdefault(request.request_id, RequestState(request))
        state.computed_at_lookup = num_computed_tokens
        if matched == 0:
            return 0, False
        return matched * self.block_size, True

    def update_state_after_alloc(self, request: Any, blocks: Any, num_external_tokens: int) -> None:
        state = self._requests.setdefault(request.request_id, RequestState(request))
        if state.allocated:
            return  # the second call, after an asynchronous load: nothing to do
        state.allocated = True
        keys = self.keys(request)
        start = state.computed_at_lookup // self.block_size
        if len(self._lookups) > 1 << 20:  # counts age: halved, the ones that reach 0 forgotten
            self._lookups = Counter({k: c // 2 for k, c in self._lookups.items() if c > 1})
        for key in keys[start:]:
            self._lookups[key] += 1
        count = num_external_tokens // self.block_size
        self._bump("lookup_blocks", len(keys) - start)
        if count == 0:
            return
        block_ids = blocks.get_block_ids()[0]
        gpu = list(block_ids[start : start + count])
        pairs: dict[str, list[tuple[int, int]]] = {"Host->Device": [], "Disk->Device": []}
        held: dict[str, list[int]] = {"host": [], "disk": []}
        for key, gpu_block in zip(keys[start : start + count], gpu):
            slot = self.host.slot(key)
            if slot is not None:
                self.host.hold(slot)
                held["host"].append(slot)
                pairs["Host->Device"].append((slot, gpu_block))
                continue
            slot = self.disk.slot(key) if self.disk is not None else None
            if slot is None:  # the lookup and this call run back to back: a defect, which is recomputed
                logger.error("kvbm: block %r left the tiers between lookup and allocation; vLLM recomputes it", key)
                self._failed_load_blocks.add(gpu_block)
                continue
            self.disk.hold(slot)
            held["disk"].append(slot)
            pairs["Disk->Device"].append((slot, gpu_block))
        self._bump("host_hit_blocks", len(pairs["Host->Device"]))
        self._bump("disk_hit_blocks", len(pairs["Disk->Device"]))
        state.loading = True
        operation = Operation("load", [request.request_id], pairs, keys[start : start + count], held, gpu)
        self.transfers.submit(operation)

    def build_connector_meta(self, scheduler_output: Any) -> KvbmMetadata:
        self._drain()
        step = self._step
        self._step += 1
        self.rates.step_scheduled(scheduler_output.total_num_scheduled_tokens)
        for request_id in scheduler_output.preempted_req_ids or ():
            state = self._requests.get(request_id)
            if state is not None:  # vLLM took its blocks back (those being saved stay pinned)
                state.gpu_blocks, state.save_cursor, state.allocated = [], 0, False
        for new in scheduler_output.scheduled_new_reqs:
            state = self._requests.get(new.req_id)
            if state is not None:
                state.gpu_blocks = list(new.block_ids[0])
                self._record_save(step, new.req_id, state, new.num_computed_tokens, scheduler_output)
        cached = scheduler_output.scheduled_cached_reqs
        for i, request_id in enumerate(cached.req_ids):
            state = self._requests.get(request_id)
            if state is None:
                continue
            new_blocks = cached.new_block_ids[i]
            if request_id in cached.resumed_req_ids:
                state.gpu_blocks = list(new_blocks[0]) if new_blocks else []
            elif new_blocks:
                state.gpu_blocks.extend(new_blocks[0])
            self._record_save(step, request_id, state, cached.num_computed_tokens[i], scheduler_output)
        metadata = KvbmMetadata(
            step=step, finished_loads=self._finished_loads, failed_load_blocks=self._failed_load_blocks
        )
        self._finished_loads, self._failed_load_blocks = set(), set()
        return metadata

    def update_connector_output(self, connector_output: Any) -> None:
        meta = connector_output.kv_connector_worker_meta
        if meta is not None:
            for step in sorted(s for s in self._step_saves if s <= meta.step):
                self._start_saves(self._step_saves.pop(step))
        self.rates.step_ended()
        self._drain()

    def bind_gpu_block_pool(self, block_pool: Any) -> None:
        self._block_pool = block_pool

    def request_finished(self, request: Any) -> bool:
        """Never delays vLLM's freeing: the blocks still to be saved are pinned in its pool."""
        state = self._requests.get(request.request_id)
        if state is not None:
            state.finished = True
            if not state.loading:  # a request aborted while loading is forgotten once its load ends
                del self._requests[request.request_id]
        return False

    def has_pending_work(self) -> bool:
        """Keeps vLLM stepping while blocks wait to be saved or a load waits to be reported."""
        return bool(self._finished_loads or self._failed_load_blocks or self._step_saves or self._pinned)

    def take_stats(self) -> KvbmStats | None:
        with self._stats_lock:
            evictions = self.host.evictions + (self.disk.evictions if self.disk else 0)
            self._stats.data["evictions"] += evictions - self._evictions_seen
            self.totals.data["evictions"] += evictions - self._evictions_seen
            self._evictions_seen = evictions
            if self._stats.is_empty():
                return None
            stats, self._stats = self._stats, KvbmStats()
        return stats

    @property
    def verified_blocks(self) -> int:
        return self.transfers.verified_blocks

    def shutdown(self) -> None:
        self.transfers.shutdown()
        logger.info("kvbm: connector totals: %s", self.totals.reduce())

    # ---- saves ------------------------------------------------------------------------------

    def _record_save(self, step: int, request_id: str, state: RequestState, computed: int, output: Any) -> None:
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

    # ---- running operations -----------------------------------------------------------------

    def _drain(self) -> None:
        """Applies the outcomes of ended operations (on the scheduler's thread)."""
        for operation in self.transfers.take_ended():
            if operation.touches_disk():
                self.rates.disk_operation_ended(operation)
            getattr(self, f"_{operation.kind}_ended")(operation)

    def _bump(self, counter: str, amount: int) -> None:
        with self._stats_lock:
            self._stats.data[counter] += amount
            self.totals.data[counter] += amount

    def _count(self, operation: Operation) -> None:
        with self._stats_lock:
            for direction, seconds in operation.seconds.items():
                name = direction.lower().replace("->", "_to_")
                for stats in (self._stats, self.totals):
                    stats.add_transfer(name, len(operation.pairs[direction]), self.block_bytes, seconds)

    def _load_ended(self, operation: Operation) -> None:
        (request_id,) = operation.request_ids
        self._count(operation)
        self.host.release_all(operation.held["host"])
        if self.disk is not None:
            if operation.error_code == "io":
                for slot in operation.held["disk"]:
                    self.disk.forget(slot)  # what the disk could not read is not served again
            self.disk.release_all(operation.held["disk"])
        if operation.error:
            logger.warning("kvbm: loading %d blocks of request %s failed; vLLM recomputes them: %s",
                           len(operation.gpu_blocks), request_id, operation.error)
            self._failed_load_blocks.update(operation.gpu_blocks)
            self._bump("failed_loads", 1)
        self._finished_loads.add(request_id)
        state = self._requests.get(request_id)
        if state is not None:
            state.loading = False
            if state.finished:
                del self._requests[request_id]

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
