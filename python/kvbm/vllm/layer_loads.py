"""Loads a layer at a time, inside the forward pass (worker side).

When a request's whole cached prefix is in host memory, the leader lets vLLM schedule it at
once and puts the (host slot, GPU block) pairs in the step's metadata. Before the forward pass
(``start_load_kv``) each rank posts one copy per layer, in layer order, on a transfer context of
its own (its own CUDA streams: the leader's saves and disk loads never queue in front of them).
Attention for layer L waits for copy L alone (``wait_for_layer_load``), so layer L+1's copy runs
while layer L computes. That wait is on the GPU: vLLM's stream waits on a fence kvbm recorded
after copy L, and the thread that launches the forward pass's kernels runs on (a wait on the
host would stop it until the copy ends, and the GPU would then idle while it launches layer L's
kernels). The step ends (``wait_for_save``) only once every copy has ended on the host too, so
the host slots the leader holds for the step are free to reuse once the step's output arrives,
and a failed copy is known.

A copy that fails marks every block of the step's loads as failed: vLLM recomputes them.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import kvbm

from .options import ConnectorOptions

logger = logging.getLogger("kvbm.vllm")


class LayerLoader:
    def __init__(self, host: Any, device: Any, num_layers: int, layer_index: dict[str, int],
                 options: ConnectorOptions):
        # A context of its own, whose streams carry only these copies. The copy engines take no
        # SM from the forward pass; the copy kernel takes layer_load_sms.
        self.copy_path = layer_copy_path(options.layer_load_path, device.config.chunk_bytes)
        self._context = kvbm.TransferContext(copy_path=self.copy_path, copy_ctas=options.layer_load_sms)
        self._paths = [self._context.prepare(host.layers(layer, 1), device.layers(layer, 1)) for layer in range(num_layers)]
        self._stream_waits = options.layer_load_waits == "stream" and _on_cuda_streams(self._paths[0])
        if self._stream_waits:
            import torch  # only where vLLM runs on CUDA; looked up once, not once a layer

            self._cuda = torch.cuda
        self._layer_index = layer_index
        self._handles: list[Any] = []
        self._fences: list[Any] = []  # after each layer's copy, for the GPU waits
        self._waited = 0  # copies [0, _waited) have ended (waited on the host)
        self._stream_waited = 0  # vLLM's stream waits for copies [0, _stream_waited)
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
                if self._stream_waits:
                    self._fences.append(path.fence())
        except Exception as error:  # bad pairs: the handles posted so far still run out
            self._fail(error)

    def wait_for(self, layer_name: str) -> None:
        """Waits until the copy of this layer has ended (every layer's, for a name not known)."""
        layer = self._layer_index.get(layer_name)
        end = len(self._handles) if layer is None else min(layer + 1, len(self._handles))
        if end <= max(self._waited, self._stream_waited):
            return
        # A CUDA graph being captured cannot wait on an event recorded outside it.
        if self._stream_waits and len(self._fences) >= end and not self._cuda.is_current_stream_capturing():
            try:
                # vLLM's stream; the fence covers the copies before it too
                self._fences[end - 1].enqueue_wait(self._cuda.current_stream().cuda_stream)
                self._stream_waited = end
                return
            except kvbm.Error as error:  # the runtime refused the wait: wait on the host instead
                logger.warning("kvbm: a GPU wait for a layer load failed; waiting on the host: %s", error)
        self._wait_until(end)

    def finish(self) -> None:
        """Waits (on the host) for every copy posted; records the step's seconds and failed blocks."""
        if not self._handles:
            return
        self._wait_until(len(self._handles))  # those vLLM's stream waited for on the GPU, too
        self.last_seconds = time.perf_counter() - self._started
        self.last_failed_blocks = len(self._failed)
        self._handles, self._fences, self._gpu_blocks = [], [], []
        self._waited = self._stream_waited = 0

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


# From this chunk size up the copy engines move a layer's chunks as fast as the kernel does.
COPY_ENGINE_CHUNK_BYTES = 64 << 10


def layer_copy_path(option: str, chunk_bytes: int) -> str:
    """The copy path of layer_load_path `option` for chunks of `chunk_bytes`."""
    if option != "auto":
        return option
    return "copy_engine" if chunk_bytes >= COPY_ENGINE_CHUNK_BYTES else "kernel"


def _on_cuda_streams(path: Any) -> bool:
    """Whether the path's copies run on CUDA streams, which a GPU fence can follow."""
    try:
        path.fence()
    except kvbm.Error:
        return False
    return True
