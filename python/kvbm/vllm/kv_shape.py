"""vLLM's KV tensors as kvbm layouts.

vLLM hands the connector either one tensor per attention layer (``register_kv_caches``) or, when
the connector prefers it and the model allows, one tensor for all layers whose blocks each hold
every layer (``register_cross_layers_kv_cache``). Each backend orders the dimensions its own way
(FlashAttention and FlashInfer: blocks outermost, K and V packed; MLA: blocks outermost, one
latent; older layouts: K and V outermost, then blocks), and the logical shape vLLM shows is a
permuted view of the memory. kvbm needs only where each block's bytes are: this module finds the
memory's outermost dimensions from the strides and describes them as a layout.

    blocks outermost            -> one chunk per layer and block          (outer_dim 1)
    (2, blocks, ...) outermost  -> a K chunk and a V chunk per layer and block (outer_dim 2)

Anything else is refused with the layer's name, shape and strides.

Layouts keep one chunk per layer wherever the memory allows (the cross-layer tensor with its
layers right inside its blocks), so that a load can move one layer at a time (``Layout.layers``)
while the forward pass computes the layers before it; ``layer_index`` maps vLLM's layer names
onto those layers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import kvbm


@dataclass(frozen=True)
class KvGeometry:
    num_blocks: int
    num_layers: int
    outer_dim: int  # 1: a block's bytes are one run per layer; 2: a K run and a V run
    inner_elements: int  # elements of one run
    dtype_bytes: int
    cross_layer: bool

    @property
    def block_bytes(self) -> int:
        return self.num_layers * self.outer_dim * self.inner_elements * self.dtype_bytes

    def config(self, num_blocks: int | None = None) -> kvbm.LayoutConfig:
        return kvbm.LayoutConfig(
            num_blocks=self.num_blocks if num_blocks is None else num_blocks,
            num_layers=self.num_layers,
            outer_dim=self.outer_dim,
            page_size=1,
            inner_dim=self.inner_elements,
            dtype_bytes=self.dtype_bytes,
        )


def _physical_dims(tensor: Any, name: str) -> list[tuple[int, int]]:
    """(size, stride) of each dimension, outermost in memory first; refuses a tensor whose
    elements do not fill one dense range (gaps or overlaps)."""
    dims = sorted(
        ((size, stride) for size, stride in zip(tensor.shape, tensor.stride()) if size != 1),
        key=lambda d: -d[1],
    )
    expected = 1
    for size, stride in reversed(dims):
        if stride != expected:
            raise ValueError(
                f"kvbm connector: KV tensor {name} of shape {tuple(tensor.shape)} and strides {tuple(tensor.stride())} "
                "does not cover one dense range of memory"
            )
        expected *= size
    return dims


def _raw_view(tensor: Any, name: str, num_blocks: int) -> tuple[Any, int, int]:
    """The tensor's memory as (num_blocks, inner) or (2, num_blocks, inner): (view, outer_dim, inner)."""
    import torch

    dims = _physical_dims(tensor, name)
    total = tensor.numel()
    if dims and dims[0][0] % num_blocks == 0:
        outer_dim, inner = 1, total // num_blocks
        shape, strides = (num_blocks, inner), (inner, 1)
    elif len(dims) >= 2 and dims[0][0] == 2 and dims[1][0] % num_blocks == 0:
        outer_dim, inner = 2, total // (2 * num_blocks)
        shape, strides = (2, num_blocks, inner), (num_blocks * inner, inner, 1)
    else:
        raise ValueError(
            f"kvbm connector: KV tensor {name} of shape {tuple(tensor.shape)} and strides {tuple(tensor.stride())} "
            f"has neither its {num_blocks} blocks nor (2, blocks) outermost in memory; this backend's layout "
            "is not supported"
        )
    view = torch.as_strided(tensor, shape, strides, tensor.storage_offset())
    return view, outer_dim, inner


def per_layer_layout(kv_caches: dict[str, Any], num_blocks: int) -> tuple[KvGeometry, Any, dict[str, int]]:
    """A device layout over vLLM's per-layer KV tensors (layers sharing one tensor count once),
    and each layer name's layer in it."""
    if not kv_caches:
        raise ValueError("kvbm connector: vLLM registered no KV tensors")
    views, seen, names = [], {}, []
    layer_index: dict[str, int] = {}
    outer_dims, inners = set(), set()
    for name, tensor in kv_caches.items():
        if tensor.data_ptr() in seen:
            layer_index[name] = seen[tensor.data_ptr()]
            continue
        seen[tensor.data_ptr()] = layer_index[name] = len(views)
        view, outer_dim, inner = _raw_view(tensor, name, num_blocks)
        views.append(view)
        names.append(name)
        outer_dims.add(outer_dim)
        inners.add((inner, tensor.element_size()))
    if len(outer_dims) != 1 or len(inners) != 1:
        raise ValueError(
            f"kvbm connector: the KV tensors of layers {names[0]} .. {names[-1]} differ in shape; kvbm takes "
            "one KV shape for every layer (one KV cache group)"
        )
    (outer_dim,), ((inner, dtype_bytes),) = outer_dims, inners
    geometry = KvGeometry(num_blocks, len(views), outer_dim, inner, dtype_bytes, cross_layer=False)
    order = "block" if outer_dim == 1 else "outer"
    layout = kvbm.Layout.from_tensors(geometry.config(), views, form="layer_separate", order=order)
    return geometry, layout, layer_index


def cross_layer_layout(tensor: Any, num_blocks: int, layer_names: list[list[str]]) -> tuple[KvGeometry, Any, dict[str, int]]:
    """A device layout over vLLM's one tensor for all layers (each block holds every layer;
    ``layer_names[i]``: the names of the layers whose KV is the tensor's layer i).

    With the layers next inside the blocks, each layer of a block is a chunk of its own; with
    another order a block is one chunk, and a layer-by-layer load waits for the whole block at
    the first layer (an empty ``layer_index``)."""
    view, outer_dim, inner = _raw_view(tensor, "cross-layer", num_blocks)
    if outer_dim != 1:
        raise ValueError(
            f"kvbm connector: the cross-layer KV tensor of shape {tuple(tensor.shape)} does not keep its blocks "
            "outermost"
        )
    dims = _physical_dims(tensor, "cross-layer")
    num_layers = len(layer_names)
    layer_index: dict[str, int] = {}
    if num_layers > 1 and len(dims) >= 2 and dims[0][0] == num_blocks and dims[1][0] == num_layers:
        inner //= num_layers
        layer_index = {name: i for i, names in enumerate(layer_names) for name in names}
    else:
        num_layers = 1
    geometry = KvGeometry(num_blocks, num_layers, 1, inner, tensor.element_size(), cross_layer=True)
    layout = kvbm.Layout.from_tensors(geometry.config(), [view], form="fully_contiguous")
    return geometry, layout, layer_index


def block_bytes_from_config(kv_cache_config: Any) -> int:
    """Bytes of one block over every layer of one rank, from vLLM's KVCacheConfig (what the
    workers' tensors will hold)."""
    groups = kv_cache_config.kv_cache_groups
    if len(groups) != 1:
        raise ValueError(
            f"kvbm connector: the model has {len(groups)} KV cache groups; kvbm's connector takes models with one "
            "(full attention in every layer)"
        )
    spec = groups[0].kv_cache_spec
    kind = type(spec).__name__
    if kind not in ("FullAttentionSpec", "MLAAttentionSpec"):
        raise ValueError(f"kvbm connector: KV cache spec {kind} is not supported (full attention or MLA only)")
    total = sum(t.size for t in kv_cache_config.kv_cache_tensors)
    if total % kv_cache_config.num_blocks:
        raise ValueError(
            f"kvbm connector: {total} KV bytes do not divide into {kv_cache_config.num_blocks} blocks"
        )
    return total // kv_cache_config.num_blocks
