"""Loads a layer at a time, inside the forward pass (worker side).

When a request's whole cached prefix is in host memory, the leader lets vLLM schedule it at
once and puts the (host slot, GPU block) pairs in the step's metadata. Before the forward pass
(``start_load_kv``) each rank posts one copy per layer, in layer order, on a transfer context of
its own (its own CUDA streams: the leader's saves and disk loads never queue in front of them).
Attention for layer L waits for copy L alone (``wait_for_layer_load``), so layer L+1's copy runs
while layer L computes. The step ends (``wait_for_save``) only once every copy has ended, so the
host slots the leader holds for the step are free to reuse once the step's output arrives.

A copy that fails marks every block of the step's loads as failed: vLLM recomputes them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kvbm

logger = logging.getLogger("kvbm.vllm")


class LayerLoader:
    def __init__(self, host: Any, device: Any, num_layers: int, layer_index: dict[str, int]):
        # A context of its own, whose streams carry only these copies. Its `auto` path moves the
        # 64 KiB layer chunks of an 8B Llama on the copy kernel: beside the forward pass on an
        # H100 that measured 30.5 GB/s a step, and the copy engines 19.6 (another H100 of a
        # slower host; bench/results/h100-2026-12-07-layerwise-vllm).
        self._context = kvbm.TransferContext()
        self._paths = [self._context.prepare(host.layers(layer, 1), device.layers(layer, 1)) for layer in range(num_layers)]
        self._layer_index = layer_index
        self._handles: list[Any] = []
        self._waited = 0  # copies [0, _waited) have ended
        self._gpu_blocks: list[int] = []
        self._failed: set[int] = set()
        self._started = 0.0
        self.last_seconds = 0.0  # of the last step with loads: seconds, blocks that failed
        self.last_failed_blocks = 0

    def start(self, pairs: list[tuple[int, int]]) -> None:
        """Posts one copy per layer of the (host slot, GPU block) pairs, in layer order."""
        self.finish()  # a step whose forward pass never waited (no forward at all) ends here
        self._failed = set()
        self.last_seconds, self.last_failed_blocks = 0.0, 0
        if not pairs:
            return
        self._gpu_blocks = [gpu for _, gpu in pairs]
        self._started = time.perf_counter()
        try:
            block_pairs = kvbm.BlockPairs(pairs)  # read once, posted once per layer
            for path in self._paths:
                self._handles.append(path.post(block_pairs))
        except Exception as error:  # bad pairs: the handles posted so far still run out
            self._fail(error)

    def wait_for(self, layer_name: str) -> None:
        """Waits until the copy of this layer has ended (every layer's, for a name not known)."""
        if self._waited >= len(self._handles):
            return
        layer = self._layer_index.get(layer_name)
        self._wait_until(len(self._handles) if layer is None else min(layer + 1, len(self._handles)))

    def finish(self) -> None:
        """Waits for every copy posted; records the step's seconds and failed blocks."""
        if not self._handles:
            return
        self._wait_until(len(self._handles))
        self.last_seconds = time.perf_counter() - self._started
        self.last_failed_blocks = len(self._failed)
        self._handles, self._waited, self._gpu_blocks = [], 0, []

    def take_failed(self) -> set[int]:
        """The GPU blocks whose load failed this step (once)."""
        self.finish()
        failed, self._failed = self._failed, set()
        return failed

    def _wait_until(self, end: int) -> None:
        while self._waited < end:
            handle = self._handles[self._waited]
            self._waited += 1
            try:
                handle.wait()
            except Exception as error:
                self._fail(error)

    def _fail(self, error: Exception) -> None:
        if not self._failed:
            logger.warning("kvbm: a layer-by-layer load of %d blocks failed; vLLM recomputes them: %s",
                           len(self._gpu_blocks), error)
        self._failed.update(self._gpu_blocks)
