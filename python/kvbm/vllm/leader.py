"""The connector's scheduler half: kvbm's leader inside vLLM's scheduler.

It keeps the books of the host and disk tiers that the workers hold (``TierIndex``), answers
vLLM's prefix lookups from them, and moves blocks by sending transfer requests to every
worker over kvbm's leader/worker channel (sharded mode: each rank moves its own shard):

- a lookup finds the longest run of a prompt's next blocks in host or disk; vLLM allocates GPU
  blocks for them and the request waits (an asynchronous load) while every rank copies
  Host -> Device and Disk -> Device;
- a block that a step's forward pass filled is saved Device -> Host once every worker reports
  that step's forward pass ended (write-through), then Host -> Disk when admitted;
- a finished request's GPU blocks stay vLLM's until its saves end.

Transfers run on a thread pool (the leader's calls release the GIL); their outcomes come back
through a queue that the scheduler's thread drains, so the books change on that thread alone.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import kvbm

from .metadata import KvbmMetadata
from .options import ConnectorOptions
from .stats import KvbmStats
from .tier_index import TierIndex

logger = logging.getLogger("kvbm.vllm")


@dataclass
class RequestState:
    request: Any
    gpu_blocks: list[int] = field(default_factory=list)
    computed_at_lookup: int = 0
    allocated: bool = False  # update_state_after_alloc has seen it (again after a preemption)
    save_cursor: int = 0  # blocks before it are saved or noted for saving
    saves: set = field(default_factory=set)  # save operations not yet ended
    pending_steps: int = 0  # steps whose blocks of this request wait to be saved
    loading: bool = False
    finished: bool = False
    delayed: bool = False  # request_finished kept its GPU blocks for its saves


@dataclass
class Operation:
    """A transfer the workers run: loads, saves or a write-through, and what to release after."""

    kind: str  # "load", "save", "offload"
    request_ids: list[str]
    pairs: dict[str, list[tuple[int, int]]]  # direction ("Host->Device", ...) -> (src, dst) pairs
    keys: list[Hashable]  # per pair of the one direction of saves and offloads; per gpu block of loads
    held: dict[str, list[int]]  # tier name -> slots to release when it ends
    gpu_blocks: list[int] = field(default_factory=list)
    error: str | None = None
    error_code: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)


class KvbmLeader:
    def __init__(
        self,
        options: ConnectorOptions,
        block_size: int,
        hashes_per_block: int,
        block_bytes: int,
        world_size: int,
        endpoint: str,
    ):
        options.check_machine(block_bytes, world_size)
        self.options = options
        self.block_size = block_size
        self.hashes_per_block = hashes_per_block
        self.block_bytes = block_bytes
        self.host = TierIndex("host", options.host_blocks(block_bytes))
        self.disk = TierIndex("disk", options.disk_blocks(block_bytes)) if options.disk_bytes else None
        self.leader = kvbm.Leader(endpoint, world_size=world_size)
        self.endpoint = endpoint
        logger.info(
            "kvbm: leader at %s waiting for %d worker(s); host %d blocks, disk %d blocks of %d bytes",
            endpoint, world_size, self.host.capacity, self.disk.capacity if self.disk else 0, block_bytes,
        )
        self.leader.wait_for_workers(timeout=options.worker_timeout_s)
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="kvbm-leader")
        self._outcomes: queue.SimpleQueue[Operation] = queue.SimpleQueue()
        self._in_flight: set[Future] = set()
        self._requests: dict[str, RequestState] = {}
        self._step = 0
        self._step_saves: dict[int, list[tuple[str, int, int]]] = {}  # step -> (request, first, end block)
        self._saving: set[Hashable] = set()  # keys whose save is in flight
        self._lookups: Counter[Hashable] = Counter()
        self._finished_loads: set[str] = set()
        self._finished_saves: set[str] = set()
        self._failed_load_blocks: set[int] = set()
        self._stats = KvbmStats()  # since vLLM last took them
        self.totals = KvbmStats()  # since the start
        self._stats_lock = threading.Lock()
        self._evictions_seen = 0
        self._expected_hashes: dict[Hashable, list[int]] = {}  # verify mode: per key, each rank's XXH3
        self.verified_blocks = 0

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
        matched = 0
        for key in keys[start:]:
            if key in self.host or (self.disk is not None and key in self.disk):
                matched += 1
            else:
                break
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
            if slot is None:  # cannot happen: the lookup and this call run back to back
                raise RuntimeError(f"kvbm connector: block {key!r} vanished between lookup and allocation")
            self.disk.hold(slot)
            held["disk"].append(slot)
            pairs["Disk->Device"].append((slot, gpu_block))
        self._bump("host_hit_blocks", len(pairs["Host->Device"]))
        self._bump("disk_hit_blocks", len(pairs["Disk->Device"]))
        state.loading = True
        operation = Operation("load", [request.request_id], pairs, keys[start : start + count], held, gpu)
        self._submit(operation)

    def build_connector_meta(self, scheduler_output: Any) -> KvbmMetadata:
        self._drain()
        step = self._step
        self._step += 1
        for request_id in scheduler_output.preempted_req_ids or ():
            self._preempted(request_id)
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
            step=step,
            finished_loads=self._finished_loads,
            finished_saves=self._finished_saves,
            failed_load_blocks=self._failed_load_blocks,
        )
        self._finished_loads, self._finished_saves, self._failed_load_blocks = set(), set(), set()
        return metadata

    def update_connector_output(self, connector_output: Any) -> None:
        meta = connector_output.kv_connector_worker_meta
        if meta is not None:
            for step in sorted(s for s in self._step_saves if s <= meta.step):
                self._start_saves(self._step_saves.pop(step))
        self._drain()

    def request_finished(self, request: Any) -> bool:
        """True when the request's GPU blocks must wait for its saves (reported later)."""
        state = self._requests.get(request.request_id)
        if state is None:
            return False
        state.finished = True
        state.delayed = bool(state.pending_steps or state.saves)
        if not state.delayed and not state.loading:
            del self._requests[request.request_id]
        return state.delayed

    def has_pending_work(self) -> bool:
        return bool(self._finished_saves or self._finished_loads or self._step_saves)

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

    def shutdown(self) -> None:
        wait(list(self._in_flight), timeout=self.options.transfer_timeout_s)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- saves ------------------------------------------------------------------------------

    def _record_save(self, step: int, request_id: str, state: RequestState, computed: int, output: Any) -> None:
        """Notes the blocks this step fills, to save once its forward pass has ended."""
        end_tokens = computed + output.num_scheduled_tokens.get(request_id, 0)
        full = min(end_tokens // self.block_size, len(self.keys(state.request)), len(state.gpu_blocks))
        # From the request's first block: blocks that came from vLLM's prefix cache or from the
        # disk are saved too where the host lacks them.
        first = state.save_cursor
        if full <= first:
            return
        state.save_cursor = full
        self._step_saves.setdefault(step, []).append((request_id, first, full))
        state.pending_steps += 1

    def _start_saves(self, entries: list[tuple[str, int, int]]) -> None:
        pairs, keys, request_ids, slots_wanted = [], [], [], []
        for request_id, first, end in entries:
            state = self._requests.get(request_id)
            if state is None:
                continue
            state.pending_steps -= 1
            request_keys = self.keys(state.request)
            for index in range(first, end):
                key = request_keys[index]
                if key in self.host or key in self._saving:
                    continue
                slots_wanted.append((key, state.gpu_blocks[index]))
                self._saving.add(key)
            request_ids.append(request_id)
        slots = self.host.allocate(len(slots_wanted))
        for key, _ in slots_wanted[len(slots):]:  # every host block is held: these stay uncached
            self._saving.discard(key)
        for slot, (key, gpu_block) in zip(slots, slots_wanted):
            pairs.append((gpu_block, slot))
            keys.append(key)
        if pairs:
            operation = Operation("save", request_ids, {"Device->Host": pairs}, keys, {"host": slots})
            for request_id in request_ids:
                self._requests[request_id].saves.add(id(operation))
            self._submit(operation)
        for request_id in request_ids:
            self._maybe_done(request_id)

    def _maybe_done(self, request_id: str) -> None:
        """Forgets a finished request once nothing of it is in flight; reports its saves as ended
        if vLLM waits for them to free its GPU blocks."""
        state = self._requests.get(request_id)
        if state is None or not state.finished or state.pending_steps or state.saves or state.loading:
            return
        if state.delayed:
            self._finished_saves.add(request_id)
        del self._requests[request_id]

    def _preempted(self, request_id: str) -> None:
        """vLLM takes a preempted request's GPU blocks back at once: its saves not yet started are
        dropped, and those in flight must end before the next forward pass may overwrite them."""
        state = self._requests.get(request_id)
        if state is None:
            return
        for step, entries in list(self._step_saves.items()):
            kept = [e for e in entries if e[0] != request_id]
            state.pending_steps -= len(entries) - len(kept)
            if kept:
                self._step_saves[step] = kept
            else:
                del self._step_saves[step]
        if state.saves:
            wait([f for f in self._in_flight if f.kvbm_operation in state.saves],
                 timeout=self.options.transfer_timeout_s)
            self._drain()
        state.gpu_blocks = []
        state.save_cursor = 0
        state.allocated = False

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
        self._submit(operation)

    # ---- running operations -----------------------------------------------------------------

    def _submit(self, operation: Operation) -> Future:
        future = self._pool.submit(self._run, operation)
        future.kvbm_operation = id(operation)  # type: ignore[attr-defined]
        self._in_flight.add(future)
        future.add_done_callback(lambda f: self._outcomes.put(operation))
        return future

    def _run(self, operation: Operation) -> None:
        """On a pool thread: every rank runs the transfers; verify mode checks the bytes."""
        try:
            for direction, pairs in operation.pairs.items():
                if not pairs:
                    continue
                source, destination = direction.split("->")
                started = time.perf_counter()
                self.leader.transfer(source, destination, pairs, timeout=self.options.transfer_timeout_s)
                operation.seconds[direction] = time.perf_counter() - started
            if self.options.verify:
                self._verify(operation)
        except kvbm.Error as error:
            operation.error, operation.error_code = str(error), error.code
        except Exception as error:  # never let a transfer's failure escape into vLLM's threads
            operation.error = f"{type(error).__name__}: {error}"

    def _hashes(self, pool: str, blocks: list[int]) -> list[list[int]]:
        """Each block's XXH3 on every rank: [block][rank]."""
        replies = self.leader.send("kvbm.hash", {"pool": pool, "blocks": blocks},
                                   timeout=self.options.transfer_timeout_s)
        per_rank = [reply["data"]["hashes"] for reply in sorted(replies, key=lambda r: r["rank"])]
        return [list(column) for column in zip(*per_rank)]

    def _verify(self, operation: Operation) -> None:
        if operation.kind == "save":
            pairs = operation.pairs["Device->Host"]
            device = self._hashes("Device", [gpu for gpu, _ in pairs])
            host = self._hashes("Host", [slot for _, slot in pairs])
            for key, on_device, on_host in zip(operation.keys, device, host):
                if on_device != on_host:
                    raise kvbm.Error(f"verify: block {key!r} differs between the GPU and host memory", "internal")
                self._expected_hashes[key] = on_device
        elif operation.kind == "load":
            loaded = self._hashes("Device", operation.gpu_blocks)
            for key, gpu_block, hashes in zip(operation.keys, operation.gpu_blocks, loaded):
                expected = self._expected_hashes.get(key)
                if expected is None or expected != hashes:
                    raise kvbm.Error(f"verify: GPU block {gpu_block} loaded for {key!r} differs from what was saved",
                                     "internal")
            self.verified_blocks += len(operation.gpu_blocks)

    def _drain(self) -> None:
        """Applies the outcomes of ended operations (on the scheduler's thread)."""
        while True:
            try:
                operation = self._outcomes.get_nowait()
            except queue.Empty:
                return
            self._in_flight = {f for f in self._in_flight if not f.done()}
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
            self._maybe_done(request_id)

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
        for request_id in operation.request_ids:
            state = self._requests.get(request_id)
            if state is not None:
                state.saves.discard(id(operation))
                self._maybe_done(request_id)

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
