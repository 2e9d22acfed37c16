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


@pytest.mark.parametrize("path", ["kernel", "copy_engine"])
def test_layer_loads_order_the_forward_pass_stream_after_each_layers_copy(path):
    """vLLM's connector loads a layer at a time and makes the forward pass's stream wait for
    layer L's copy on the GPU: kernels queued on that stream right after the wait see every
    byte of layer L."""
    pytest.importorskip("vllm")  # kvbm.vllm's package imports vLLM
    from kvbm.vllm.layer_loads import LayerLoader
    from kvbm.vllm.options import ConnectorOptions

    cache = vllm_kv_cache()
    for t in cache:
        t.fill_(-1.0)
    gpu = kvbm.Layout.from_tensors(CFG, cache, form="layer_separate", order="outer")
    host = kvbm.Layout.allocate(CFG, "pinned")
    rng = np.random.default_rng(5)
    for b in range(BLOCKS):
        np.asarray(host.block(b))[...] = rng.integers(0, 256, size=np.asarray(host.block(b)).shape, dtype=np.uint8)
    names = {f"layer.{i}": i for i in range(LAYERS)}
    loader = LayerLoader(host, gpu, LAYERS, names, ConnectorOptions(host_bytes=1, layer_load_path=path))
    assert loader._stream_waits
    pairs = [(b, (b * 7 + 3) % BLOCKS) for b in range(0, BLOCKS, 2)]
    torch.cuda.synchronize()
    loader.start(pairs)
    seen = []
    for name, layer in names.items():
        loader.wait_for(name)
        seen.append(cache[layer].clone())  # queued on the stream that waits: ordered after the copy
    loader.finish()
    torch.cuda.synchronize()
    assert loader.take_failed() == set()
    chunk = PAGE * HEADS * HEAD * 2
    for layer in range(LAYERS):
        for host_block, gpu_block in pairs:
            want = np.asarray(host.block(host_block)).reshape(-1)[layer * 2 * chunk:(layer + 1) * 2 * chunk]
            got = seen[layer][:, gpu_block].contiguous().view(torch.uint8).cpu().numpy().reshape(-1)
            assert np.array_equal(got, want), f"layer {layer}, GPU block {gpu_block}"
