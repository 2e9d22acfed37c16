"""Layout.from_tensors over arrays the caller owns (numpy here; torch CUDA tensors in
test_gpu.py): no copy, the checks, and the arrays kept alive by the layout."""
import gc

import numpy as np
import pytest
from conftest import read_block

import kvbm

CFG = kvbm.LayoutConfig(num_blocks=6, num_layers=2, outer_dim=2, page_size=4, inner_dim=24, dtype_bytes=2)


def vllm_layer_tensors():
    # vLLM's per-layer paged KV cache: (2, num_blocks, block_size, num_kv_heads, head_size).
    return [np.zeros((2, CFG.num_blocks, CFG.page_size, 3, 8), dtype=np.float16) for _ in range(CFG.num_layers)]


def test_vllm_shaped_tensors_become_a_layout_without_a_copy(context, disk_dir):
    tensors = vllm_layer_tensors()
    layout = kvbm.Layout.from_tensors(CFG, tensors, form="layer_separate", order="outer")
    assert layout.kind == "system" and layout.form == "ls-outer"
    rng = np.random.default_rng(9)
    for t in tensors:
        t[...] = rng.standard_normal(t.shape).astype(np.float16)
    expected = [t.copy() for t in tensors]
    disk = kvbm.Layout.allocate(CFG, "disk", dir=disk_dir)
    context.transfer(layout, disk, [(b, b) for b in range(CFG.num_blocks)]).wait()
    for t in tensors:
        t[...] = 0
    del tensors
    gc.collect()  # the layout holds the arrays
    context.transfer(disk, layout, [(b, CFG.num_blocks - 1 - b) for b in range(CFG.num_blocks)]).wait()
    for layer in range(CFG.num_layers):
        for b in range(CFG.num_blocks):
            got = np.asarray(layout.chunk(CFG.num_blocks - 1 - b, layer)).view(np.float16)
            want = expected[layer][:, b].reshape(CFG.outer_dim, -1)
            np.testing.assert_array_equal(got, want)


def test_one_tensor_makes_a_fully_contiguous_layout(context):
    tensor = np.arange(CFG.num_blocks * CFG.num_layers * 2 * CFG.page_size * CFG.inner_dim, dtype=np.int16)
    tensor = tensor.reshape(CFG.num_blocks, CFG.num_layers, 2, CFG.page_size * CFG.inner_dim)
    layout = kvbm.Layout.from_tensors(CFG, [tensor])
    np.testing.assert_array_equal(np.asarray(layout.block(3)).view(np.int16).reshape(tensor[3].shape), tensor[3])
    copy = kvbm.Layout.allocate(CFG, "system", form="ls-block")
    context.transfer(layout, copy, [(3, 0)]).wait()
    np.testing.assert_array_equal(read_block(copy, 0).view(np.int16).reshape(tensor[3].shape), tensor[3])


def test_tensors_that_do_not_fit_are_refused_by_name():
    good = vllm_layer_tensors()

    def refused(tensors, match, **kwargs):
        kwargs.setdefault("form", "layer_separate")
        kwargs.setdefault("order", "outer")
        with pytest.raises(kvbm.Error, match=match) as failure:
            kvbm.Layout.from_tensors(CFG, tensors, **kwargs)
        assert failure.value.code == "invalid_argument"

    refused(good[:1], "1 tensors given")
    refused([good[0], good[1].astype(np.float32)], "4-byte elements")
    refused([good[0], np.zeros((2, CFG.num_blocks, 5, 3, 8), np.float16)], "holds")
    refused([good[0], np.zeros((CFG.num_blocks, 2, CFG.page_size, 3, 8), np.float16)], "should begin with")
    refused([good[0], np.zeros((2, CFG.num_blocks, CFG.page_size, 8, 3), np.float16).transpose(0, 1, 2, 4, 3)],
            "not contiguous")
    refused([good[0], "not a tensor"], "offers neither")
    refused(good, "order", order="diagonal")
    readonly = vllm_layer_tensors()[0]
    readonly.setflags(write=False)
    with pytest.raises((kvbm.Error, TypeError, ValueError)):
        kvbm.Layout.from_tensors(CFG, [readonly, good[1]], form="layer_separate", order="outer")


class CudaArrayInterfaceOnly:
    """An object that offers only __cuda_array_interface__ (as numba's device arrays do)."""

    def __init__(self, pointer, shape, typestr="<f2", strides=None, readonly=False):
        self.__cuda_array_interface__ = {"data": (pointer, readonly), "shape": shape, "typestr": typestr,
                                         "strides": strides, "version": 3}


def test_cuda_array_interface_tensors_are_read_and_checked():
    shape = (2, CFG.num_blocks, CFG.page_size, 3, 8)
    cases = [
        (CudaArrayInterfaceOnly(1 << 40, shape, readonly=True), "read-only"),
        (CudaArrayInterfaceOnly(1 << 40, shape, strides=(2, 4, 8, 16, 32)), "not contiguous"),
        (CudaArrayInterfaceOnly(1 << 40, shape, typestr="<f4"), "4-byte elements"),
        (CudaArrayInterfaceOnly(1 << 40, (2, CFG.num_blocks, 3)), "holds"),
        (CudaArrayInterfaceOnly(1 << 40, shape, typestr="f"), "malformed"),
        (CudaArrayInterfaceOnly("not a pointer", shape), "malformed"),
    ]
    for tensor, match in cases:
        with pytest.raises(kvbm.Error, match=match):
            kvbm.Layout.from_tensors(CFG, [tensor, tensor], form="layer_separate", order="outer")
    # A pointer CUDA does not know (or no CUDA at all) is refused when the memory is registered.
    bogus = CudaArrayInterfaceOnly(1 << 40, shape)
    with pytest.raises(kvbm.Error) as failure:
        kvbm.Layout.from_tensors(CFG, [bogus, bogus], form="layer_separate", order="outer")
    assert failure.value.code in ("cuda", "unsupported", "invalid_argument")
