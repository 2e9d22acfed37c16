"""How the leader's transfers run: every rank moves its shard of each block through kvbm's
leader/worker channel, on thread pools (the leader's calls release the GIL), one for operations
that touch the disk and one for the rest, so slow disk I/O never holds back host loads and
saves. Each operation ends by coming back through a queue that the scheduler's thread drains.
In verify mode every save and load is checked by hashing the blocks on each rank."""

from __future__ import annotations

import queue
import time
from collections.abc import Hashable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

import kvbm


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
    disk_neighbours: int = 0  # disk operations in flight when it started, itself included

    def touches_disk(self) -> bool:
        return any("Disk" in direction and pairs for direction, pairs in self.pairs.items())


class TransferRunner:
    DISK_THREADS = 4

    def __init__(self, leader: kvbm.Leader, timeout_s: float, verify: bool):
        self.leader = leader
        self.timeout_s = timeout_s
        self.verify = verify
        self._pools = {
            "memory": ThreadPoolExecutor(max_workers=8, thread_name_prefix="kvbm-leader"),
            "disk": ThreadPoolExecutor(max_workers=self.DISK_THREADS, thread_name_prefix="kvbm-leader-disk"),
        }
        self._ended: queue.SimpleQueue[Operation] = queue.SimpleQueue()
        self._in_flight: set[Future] = set()
        self._disk_ops: set[Future] = set()
        self._expected_hashes: dict[Hashable, list[int]] = {}  # verify mode: per key, each rank's XXH3
        self.verified_blocks = 0

    @property
    def in_flight(self) -> int:
        """Operations submitted whose end has not been taken yet."""
        return len(self._in_flight)

    def submit(self, operation: Operation) -> None:
        disk = operation.touches_disk()
        if disk:
            self._disk_ops = {f for f in self._disk_ops if not f.done()}
            operation.disk_neighbours = min(len(self._disk_ops) + 1, self.DISK_THREADS)
        future = self._pools["disk" if disk else "memory"].submit(self._run, operation)
        if disk:
            self._disk_ops.add(future)
        self._in_flight.add(future)
        future.add_done_callback(lambda f: self._ended.put(operation))

    def take_ended(self) -> list[Operation]:
        """The operations that ended since the last call (on the scheduler's thread)."""
        ended = []
        while True:
            try:
                ended.append(self._ended.get_nowait())
            except queue.Empty:
                break
        if ended:
            self._in_flight = {f for f in self._in_flight if not f.done()}
        return ended

    def shutdown(self) -> None:
        wait(list(self._in_flight), timeout=self.timeout_s)
        for pool in self._pools.values():
            pool.shutdown(wait=False, cancel_futures=True)

    def _run(self, operation: Operation) -> None:
        """On a pool thread: every rank runs the transfers; verify mode checks the bytes."""
        try:
            for direction, pairs in operation.pairs.items():
                if not pairs:
                    continue
                source, destination = direction.split("->")
                started = time.perf_counter()
                self.leader.transfer(source, destination, pairs, timeout=self.timeout_s)
                operation.seconds[direction] = time.perf_counter() - started
            if self.verify:
                self._verify(operation)
        except kvbm.Error as error:
            operation.error, operation.error_code = str(error), error.code
        except Exception as error:  # never let a transfer's failure escape into vLLM's threads
            operation.error = f"{type(error).__name__}: {error}"

    def _hashes(self, pool: str, blocks: list[int]) -> list[list[int]]:
        """Each block's XXH3 on every rank: [block][rank]."""
        replies = self.leader.send("kvbm.hash", {"pool": pool, "blocks": blocks}, timeout=self.timeout_s)
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
            self.check_loaded(operation.keys, operation.gpu_blocks)

    def check_loaded(self, keys: list[Hashable], gpu_blocks: list[int]) -> None:
        """Verify mode: raises kvbm.Error unless each GPU block holds what was saved for its key."""
        loaded = self._hashes("Device", gpu_blocks)
        for key, gpu_block, hashes in zip(keys, gpu_blocks, loaded):
            expected = self._expected_hashes.get(key)
            if expected is None or expected != hashes:
                raise kvbm.Error(f"verify: GPU block {gpu_block} loaded for {key!r} differs from what was saved",
                                 "internal")
        self.verified_blocks += len(gpu_blocks)
