"""The leader's books for one tier (host or disk) of the workers' pools.

The workers own the memory; the leader decides which slot holds which block, so every rank
puts its shard of a block at the same slot. The rules are the block manager's (docs/manager.md):
a slot is free, held (by operations in flight: a save, a load, a write-through) or cached
(registered, held by none). Only cached slots are evicted, least recently used first; a slot
is registered only once its bytes arrived on every rank. Not thread-safe: the leader locks.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable, Iterable


class TierIndex:
    def __init__(self, name: str, capacity: int):
        if capacity <= 0:
            raise ValueError(f"kvbm connector: the {name} tier has {capacity} blocks")
        self.name = name
        self.capacity = capacity
        self._free = list(range(capacity - 1, -1, -1))  # popped from the end: slot 0 first
        self._slot_of: dict[Hashable, int] = {}
        self._key_of: dict[int, Hashable] = {}
        self._holds: dict[int, int] = {}
        self._cached: OrderedDict[int, None] = OrderedDict()  # evictable, least recent first
        self.evictions = 0

    def __contains__(self, key: Hashable) -> bool:
        return key in self._slot_of

    def slot(self, key: Hashable) -> int | None:
        return self._slot_of.get(key)

    def key(self, slot: int) -> Hashable | None:
        return self._key_of.get(slot)

    def hold(self, slot: int) -> None:
        self._holds[slot] = self._holds.get(slot, 0) + 1
        self._cached.pop(slot, None)

    def release(self, slot: int) -> None:
        count = self._holds.get(slot, 0)
        if count <= 0:
            raise RuntimeError(f"kvbm connector: {self.name} slot {slot} released more often than held")
        if count > 1:
            self._holds[slot] = count - 1
            return
        del self._holds[slot]
        if slot in self._key_of:
            self._cached[slot] = None  # most recent
        else:
            self._free.append(slot)

    def release_all(self, slots: Iterable[int]) -> None:
        for slot in slots:
            self.release(slot)

    def allocate(self, count: int) -> list[int]:
        """Up to `count` held, unregistered slots: free ones first, then the least recently
        used cached ones. Fewer when the rest are held."""
        slots: list[int] = []
        while len(slots) < count:
            if self._free:
                slot = self._free.pop()
            elif self._cached:
                slot, _ = self._cached.popitem(last=False)
                del self._slot_of[self._key_of.pop(slot)]
                self.evictions += 1
            else:
                break
            self._holds[slot] = 1
            slots.append(slot)
        return slots

    def register(self, slot: int, key: Hashable) -> bool:
        """Makes held `slot`, whose bytes arrived, findable as `key`. False when another slot
        has the key already (this one goes back to the free list once released)."""
        if self._holds.get(slot, 0) <= 0:
            raise RuntimeError(f"kvbm connector: {self.name} slot {slot} registered without a hold")
        if slot in self._key_of:
            raise RuntimeError(f"kvbm connector: {self.name} slot {slot} registered twice")
        if key in self._slot_of:
            return False
        self._slot_of[key] = slot
        self._key_of[slot] = key
        return True

    def forget(self, slot: int) -> None:
        """Unregisters `slot` (its bytes are not to be trusted); it is freed once released."""
        key = self._key_of.pop(slot, None)
        if key is not None:
            del self._slot_of[key]
        if slot in self._cached:
            del self._cached[slot]
            self._free.append(slot)

    def stats(self) -> dict[str, int]:
        return {
            "capacity": self.capacity,
            "free": len(self._free),
            "held": len(self._holds),
            "cached": len(self._cached),
            "registered": len(self._slot_of),
            "evictions": self.evictions,
        }
