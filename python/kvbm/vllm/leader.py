"""The connector's scheduler half: kvbm's leader inside vLLM's scheduler.

It keeps the books of the host and disk tiers that the workers hold (``TierIndex``), answers
vLLM's prefix lookups from them, and moves blocks by sending transfer requests to every
worker over kvbm's leader/worker channel (sharded mode: each rank moves its own shard):

- a lookup finds the longest run of a prompt's next blocks in host or disk. A run wholly in
  host memory is loaded a layer at a time: vLLM schedules the request at once, and each rank
  copies layer L of its blocks while the forward pass computes the layers before it
  (``layer_loads.py``); the host slots stay held until the step's forward pass has ended. A run
  that touches the disk is an asynchronous load: vLLM allocates GPU blocks for it and the
  request waits while every rank copies Host -> Device and Disk -> Device;
- a block that a step's forward pass filled is saved Device -> Host once every worker reports
  that step's forward pass ended (write-through), then Host -> Disk when admitted
  (``write_through.py``); a finished or preempted request's other blocks go back at once;
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
from .write_through import WriteThrough

logger = logging.getLogger("kvbm.vllm")


@dataclass
class RequestState:
    request: Any
    gpu_blocks: list[int] = field(default_factory=list)
    computed_at_lookup: int = 0
    allocated: bool = False  # update_state_after_alloc has seen it (again after a preemption)
    save_cursor: int = 0  # blocks before it are saved or noted for saving
    loading: bool = False
    layerwise: bool = False  # the lookup's run is loaded a layer at a time in the step that schedules it
    finished: bool = False


@dataclass
class LayerLoads:
    """Blocks loaded a layer at a time during one step's forward pass, and the host slots held for them."""

    slots: list[int] = field(default_factory=list)
    gpu_blocks: list[int] = field(default_factory=list)
    keys: list[Hashable] = field(default_factory=list)


class KvbmLeader(WriteThrough):
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
        self._layer_loads = LayerLoads()  # for the step being scheduled
        self._step_layer_loads: dict[int, LayerLoads] = {}  # sent with a step, until its forward pass ended
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
        all_host = True
        use_disk = self.disk is not None and self.rates.disk_worth_reading()
        for key in keys[start:]:
            if key in self.host:
                matched += 1
            elif use_disk and key in self.disk:
                matched += 1
                all_host = False
            else:
                break
        layerwise = matched > 0 and all_host and self.options.layerwise_loads
        limit = self.options.max_concurrent_loads
        if matched and not layerwise and limit and sum(s.loading for s in self._requests.values()) >= limit:
            return None, False  # asked again at a later step, once a load has ended
        state = self._requests.setdefault(request.request_id, RequestState(request))
        state.computed_at_lookup = num_computed_tokens
        state.layerwise = layerwise
        if matched == 0:
            return 0, False
        return matched * self.block_size, not layerwise

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
        if state.layerwise:
            self._note_layer_loads(keys[start : start + count], gpu)
            return
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
        layer_loads, self._layer_loads = self._layer_loads, LayerLoads()
        if layer_loads.slots:
            self._step_layer_loads[step] = layer_loads
        metadata = KvbmMetadata(
            step=step, finished_loads=self._finished_loads, failed_load_blocks=self._failed_load_blocks,
            layer_loads=list(zip(layer_loads.slots, layer_loads.gpu_blocks)),
        )
        self._finished_loads, self._failed_load_blocks = set(), set()
        return metadata

    def update_connector_output(self, connector_output: Any) -> None:
        meta = connector_output.kv_connector_worker_meta
        if meta is not None:
            for step in sorted(s for s in self._step_layer_loads if s <= meta.step):
                this_step = step == meta.step
                self._layer_loads_ended(self._step_layer_loads.pop(step), meta.layer_load_seconds if this_step else 0.0,
                                        meta.failed_layer_load_blocks if this_step else 0)
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
        return bool(self._finished_loads or self._failed_load_blocks or self._step_saves or self._pinned
                    or self._step_layer_loads or self._layer_loads.slots)

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

    # ---- layer-by-layer loads ---------------------------------------------------------------

    def _note_layer_loads(self, keys: list[Hashable], gpu_blocks: list[int]) -> None:
        """Holds the host slots of a run the scheduler just gave GPU blocks; the step's metadata
        sends the pairs to every rank."""
        loads = self._layer_loads
        for key, gpu_block in zip(keys, gpu_blocks):
            slot = self.host.slot(key)
            if slot is None:  # the lookup and this call run back to back: a defect, which is recomputed
                logger.error("kvbm: block %r left the host tier between lookup and allocation; vLLM recomputes it", key)
                self._failed_load_blocks.add(gpu_block)
                continue
            self.host.hold(slot)
            loads.slots.append(slot)
            loads.gpu_blocks.append(gpu_block)
            loads.keys.append(key)
        self._bump("host_hit_blocks", len(gpu_blocks))

    def _layer_loads_ended(self, loads: LayerLoads, seconds: float, failed_blocks: int) -> None:
        """A step whose forward pass ended on every rank: its loads have ended too (the workers
        told vLLM which blocks to recompute)."""
        if failed_blocks:
            self._bump("failed_loads", 1)
        elif self.options.verify:
            try:
                self.transfers.check_loaded(loads.keys, loads.gpu_blocks)
            except kvbm.Error as error:
                logger.error("kvbm: %s", error)
                self._bump("failed_loads", 1)
        with self._stats_lock:
            for stats in (self._stats, self.totals):
                stats.add_transfer("host_to_device", len(loads.slots), self.block_bytes, seconds)
        self.host.release_all(loads.slots)

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
