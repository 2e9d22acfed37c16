"""The connector's options (``kv_connector_extra_config``), checked once when vLLM starts.

Every refusal is one line naming the key and the value, raised as ``ValueError`` so that vLLM
stops at start-up instead of failing at the first request.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass, fields
from typing import Any

POLICIES = ("lru",)


@dataclass(frozen=True)
class ConnectorOptions:
    # Pinned host memory per tensor-parallel rank (each rank holds its shard of every block).
    host_bytes: int = 0
    # Disk tier per rank: a file of this size in disk_dir (O_DIRECT, io_uring). 0: no disk tier.
    disk_bytes: int = 0
    disk_dir: str | None = None
    # A block reaches the disk tier once its hash was looked up at least this many times (1:
    # every block written through to the host also goes to disk).
    disk_admission_lookups: int = 1
    # Eviction within each tier: least recently used among blocks no operation holds.
    policy: str = "lru"
    # "auto": a disk hit is loaded only while the disk's measured read rate beats the engine's
    # measured prefill rate (in KV bytes per second), else recomputed; "always": always loaded.
    disk_reads: str = "auto"
    # Requests whose blocks load at once (0: no limit). vLLM parks a loading request with its GPU
    # blocks allocated, so a small GPU cache fits few loads beside the requests computing; on the
    # bench's workload one at a time measured no better than no limit (bench/results).
    max_concurrent_loads: int = 0
    # Test mode: every block saved is hashed on the GPU and in host memory, and every block
    # loaded back is hashed on the GPU and compared; a mismatch fails an asynchronous load
    # (recomputed), and is logged and counted as a failed load for a layer-by-layer one (checked
    # when its step has ended).
    verify: bool = False
    # How long the leader waits for every worker to register, and for each transfer.
    worker_timeout_s: float = 300.0
    transfer_timeout_s: float = 60.0
    # Leader/worker channel: a Unix socket in this directory (default: the temp directory).
    endpoint_dir: str | None = None
    # A request whose cached prefix is all in host memory runs at once, and each rank copies the
    # prefix a layer at a time during the forward pass (layer L's copy runs while earlier layers
    # compute). False, and for prefixes that touch the disk: the request waits while the whole
    # prefix loads (an asynchronous load) and is scheduled once it is there.
    layerwise_loads: bool = True
    # How attention for layer L waits for layer L's copy: "stream" makes vLLM's CUDA stream wait
    # on the GPU (the forward pass's thread never blocks); "host" blocks that thread until the
    # copy has ended (on the copy engines: 2335 ms against 1764-1865 on the bench's workload).
    # Paths without CUDA streams wait on the host either way.
    layer_load_waits: str = "stream"
    # What runs the layer copies: "copy_engine" (the GPU's DMA engines: no SM taken from the
    # forward pass), "kernel" (kvbm's copy kernel, on layer_load_sms SMs), or "auto": the copy
    # engines for chunks of at least 64 KiB, the kernel for smaller ones. With the waits on the
    # GPU the copy engines measured 1764-1865 ms against the kernel's 1975 on the bench's 64 KiB
    # chunks (bench/results/h100-2026-12-07-layer-fences-vllm); below 64 KiB each DMA moves too
    # little (kvbm bench: 16 KiB at 0.45 of the link on the copy engines, 0.92 on the kernel).
    layer_load_path: str = "auto"
    layer_load_sms: int = 8  # the SMs the copy kernel may use, where it moves the layers

    @classmethod
    def parse(cls, extra: dict[str, Any] | None) -> "ConnectorOptions":
        extra = dict(extra or {})
        known = {f.name for f in fields(cls)}
        for key in extra:
            if key not in known:
                raise ValueError(
                    f"kvbm connector: unknown option {key!r} (value {extra[key]!r}); known: {', '.join(sorted(known))}"
                )
        values: dict[str, Any] = {}
        for key in ("host_bytes", "disk_bytes", "disk_admission_lookups", "max_concurrent_loads", "layer_load_sms"):
            if key in extra:
                minimum = 1 if key in ("disk_admission_lookups", "layer_load_sms") else 0
                maximum = 1024 if key == "layer_load_sms" else None  # the copy kernel's CTA limit
                values[key] = _integer(key, extra[key], minimum=minimum, maximum=maximum)
        for key in ("worker_timeout_s", "transfer_timeout_s"):
            if key in extra:
                values[key] = _positive_float(key, extra[key])
        for key in ("verify", "layerwise_loads"):
            if key in extra:
                values[key] = _boolean(key, extra[key])
        choices = {"disk_reads": ("auto", "always"), "layer_load_waits": ("stream", "host"),
                   "layer_load_path": ("auto", "copy_engine", "kernel")}
        for key, allowed in choices.items():
            if key in extra:
                if extra[key] not in allowed:
                    raise ValueError(f"kvbm connector: {key}={extra[key]!r} is not {' or '.join(allowed)}")
                values[key] = extra[key]
        if "policy" in extra:
            if extra["policy"] not in POLICIES:
                raise ValueError(f"kvbm connector: policy={extra['policy']!r} is not one of {', '.join(POLICIES)}")
            values["policy"] = extra["policy"]
        for key in ("disk_dir", "endpoint_dir"):
            if key in extra and extra[key] is not None:
                if not isinstance(extra[key], str) or not extra[key]:
                    raise ValueError(f"kvbm connector: {key}={extra[key]!r} is not a directory path")
                values[key] = extra[key]
        options = cls(**values)
        if options.host_bytes == 0:
            raise ValueError("kvbm connector: host_bytes=0: the host tier needs some pinned memory (bytes per rank)")
        if options.disk_bytes > 0 and options.disk_dir is None:
            raise ValueError(f"kvbm connector: disk_bytes={options.disk_bytes} needs disk_dir")
        if options.disk_dir is not None and options.disk_bytes == 0:
            raise ValueError(f"kvbm connector: disk_dir={options.disk_dir!r} needs disk_bytes > 0")
        return options

    def check_sizes(self, block_bytes: int) -> None:
        """Refuses tiers smaller than one KV block."""
        if block_bytes <= 0:
            raise ValueError(f"kvbm connector: a KV block of {block_bytes} bytes")
        if self.host_bytes < block_bytes:
            raise ValueError(
                f"kvbm connector: host_bytes={self.host_bytes} is smaller than one KV block ({block_bytes} bytes)"
            )
        if self.disk_bytes and self.disk_bytes < block_bytes:
            raise ValueError(
                f"kvbm connector: disk_bytes={self.disk_bytes} is smaller than one KV block ({block_bytes} bytes)"
            )

    def check_machine(self, block_bytes: int, world_size: int) -> None:
        """Refuses what this machine cannot hold, before a worker allocates its tiers: tiers
        smaller than one block, more pinned memory than the machine has available, a disk tier
        larger than its file system's free space, a directory that cannot be written."""
        self.check_sizes(block_bytes)
        available = available_memory_bytes()
        if available is not None and self.host_bytes * world_size > available:
            raise ValueError(
                f"kvbm connector: host_bytes={self.host_bytes} x {world_size} rank(s) is more than this machine's "
                f"available memory ({available} bytes)"
            )
        if self.disk_bytes == 0:
            return
        assert self.disk_dir is not None
        try:
            os.makedirs(self.disk_dir, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.disk_dir, prefix=".kvbm-probe-"):
                pass
        except OSError as error:
            raise ValueError(f"kvbm connector: disk_dir={self.disk_dir!r} is not writable ({error.strerror})") from None
        free = shutil.disk_usage(self.disk_dir).free
        if self.disk_bytes * world_size > free:
            raise ValueError(
                f"kvbm connector: disk_bytes={self.disk_bytes} x {world_size} rank(s) is more than the "
                f"{free} bytes free in disk_dir={self.disk_dir!r}"
            )

    def host_blocks(self, block_bytes: int) -> int:
        return self.host_bytes // block_bytes

    def disk_blocks(self, block_bytes: int) -> int:
        return self.disk_bytes // block_bytes

    def endpoint(self, engine_id: str) -> str:
        """The leader's ipc endpoint for one engine (an ipc path must fit in 107 bytes)."""
        directory = self.endpoint_dir or tempfile.gettempdir()
        path = os.path.join(directory, f"kvbm-{engine_id[:24]}")
        if len(path) + len(".replies") > 100:
            raise ValueError(f"kvbm connector: endpoint_dir={directory!r} is too long for a Unix socket path")
        return "ipc://" + path


def available_memory_bytes() -> int | None:
    """MemAvailable from /proc/meminfo (None where there is none)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def cuda_present() -> bool:
    """Whether this process sees a CUDA device (torch says)."""
    try:
        import torch

        return torch.cuda.is_available()
    except ImportError:
        return False


def _integer(key: str, value: Any, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(f"kvbm connector: {key}={value!r} is not a whole number")
    try:
        number = int(value) if not isinstance(value, float) or value.is_integer() else None
    except ValueError:
        number = None
    if number is None:
        raise ValueError(f"kvbm connector: {key}={value!r} is not a whole number")
    if number < minimum:
        raise ValueError(f"kvbm connector: {key}={value!r} is below {minimum}")
    if maximum is not None and number > maximum:
        raise ValueError(f"kvbm connector: {key}={value!r} is more than {maximum}")
    return number


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        value = value.lower() in ("true", "1")
    if not isinstance(value, bool):
        raise ValueError(f"kvbm connector: {key}={value!r} is not true or false")
    return value


def _positive_float(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"kvbm connector: {key}={value!r} is not a positive number of seconds")
    return float(value)
