"""kvbm: a KV-cache block manager and transfer engine.

Layouts of KV blocks in system, pinned, GPU or disk memory (``Layout.allocate``, or an engine's
own tensors with ``Layout.from_tensors``), transfers between them (``TransferContext``), and
the block manager over device, host and disk tiers (``BlockManager``), and the leader/worker
channel (``Leader``, ``Worker``; ``replicated=True`` for replicated mode over NCCL). Every failure raises
``kvbm.Error``, whose ``code`` names its kind.
"""


class Error(Exception):
    """A kvbm failure. ``code`` is one of: invalid_argument, out_of_range, unsupported, io,
    cuda, timeout, cancelled, restarted, internal."""

    def __init__(self, message: str, code: str):
        super().__init__(message)
        self.code = code

    def __reduce__(self):
        return (Error, (str(self), self.code))


from ._kvbm import (  # noqa: E402  (Error must exist first: the extension raises it)
    BlockHandle,
    BlockManager,
    BlockPairs,
    Handle,
    Layout,
    LayoutConfig,
    Leader,
    PrefixMatch,
    TransferContext,
    TransferPath,
    Worker,
    plan,
    replicated_unavailable_reason,
    sequence_hashes,
)

__all__ = [
    "BlockHandle",
    "BlockManager",
    "BlockPairs",
    "Error",
    "Handle",
    "Layout",
    "LayoutConfig",
    "Leader",
    "PrefixMatch",
    "TransferContext",
    "TransferPath",
    "Worker",
    "plan",
    "replicated_unavailable_reason",
    "sequence_hashes",
]
