"""On a GPU with torch: Layout.from_tensors over torch CUDA tensors shaped like vLLM's paged KV
cache, moved to pinned memory and to disk and back, verified with torch. Skips without both."""
import numpy as np
import pytest
from conftest import GPU

import kvbm

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.skipif(not (GPU and torch.cuda.is_available()), reason="needs a CUDA GPU and torch")

LAYERS, BLOCKS, PAGE, HEADS, HEAD = 4, 32, 16, 8, 128
CFG = kvbm.LayoutConfig(num_blocks=BLOCKS, num_layers=LAYERS, outer_dim=2, page_size=PAGE, inner_dim=HEADS * HEAD,
                        dtype_bytes=2)


def vllm_kv_cache():
    return [torch.randn(2, BLOCKS, PAGE, HEADS, HEAD, dtype=torch.float16, device="cuda:0") for _ in range(LAYERS)]


@pytest.mark.parametrize("via", ["pinned", "disk"])
def test_torch_cuda_kv_cache_round_trips(context, disk_dir, via):
    cache = vllm_kv_cache()
    expected = [t.clone() for t in cache]
    gpu = kvbm.Layout.from_tensors(CFG, cache, form="layer_separate", order="outer")
    assert gpu.kind == "device:0"
    extra = {"dir": disk_dir} if via == "disk" else {}
    other = kvbm.Layout.allocate(CFG, via, **extra)
    blocks = [0, 5, 17, 31, 8]
    context.transfer(gpu, other, [(b, b) for b in blocks]).wait(timeout=60)
    for t in cache:
        t.fill_(-1.0)
    torch.cuda.synchronize()
    context.transfer(other, gpu, [(b, (b + 1) % BLOCKS) for b in blocks]).wait(timeout=60)
    torch.cuda.synchronize()
    for layer in range(LAYERS):
        for b in blocks:
            assert torch.equal(cache[layer][:, (b + 1) % BLOCKS], expected[layer][:, b]), f"layer {layer} block {b}"
        untouched = set(range(BLOCKS)) - {(b + 1) % BLOCKS for b in blocks}
        assert all(bool((cache[layer][:, u] == -1.0).all()) for u in untouched)


def test_device_views_are_torch_tensors_on_the_layouts_memory():
    gpu = kvbm.Layout.allocate(CFG, "device:0")
    view = gpu.block(3)
    assert isinstance(view, torch.Tensor) and view.is_cuda and view.dtype == torch.uint8
    view.fill_(7)
    pinned = kvbm.Layout.allocate(CFG, "pinned")
    kvbm.TransferContext().transfer(gpu, pinned, [(3, 0)]).wait()
    assert (np.asarray(pinned.block(0)) == 7).all()
    fc = torch.zeros(BLOCKS, LAYERS, 2, PAGE * HEADS * HEAD, dtype=torch.float16, device="cuda:0")
    assert kvbm.Layout.from_tensors(CFG, [fc]).kind == "device:0"


def test_cuda_tensors_that_do_not_fit_are_refused():
    cache = vllm_kv_cache()
    with pytest.raises(kvbm.Error, match="one device"):
        kvbm.Layout.from_tensors(CFG, cache[:-1] + [cache[-1].cpu()], form="layer_separate", order="outer")
    with pytest.raises(kvbm.Error, match="not contiguous"):
        kvbm.Layout.from_tensors(CFG, cache[:-1] + [cache[-1].transpose(3, 4)], form="layer_separate", order="outer")
    with pytest.raises(kvbm.Error, match="2-byte|4-byte"):
        kvbm.Layout.from_tensors(CFG, cache[:-1] + [cache[-1].float()], form="layer_separate", order="outer")
