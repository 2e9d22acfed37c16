"""Layouts and transfers from Python: every host tier pair with random bytes compared through
numpy views, the views' DLPack and buffer protocol, handles, and bad arguments."""
import asyncio
import json
import subprocess
import threading

import numpy as np
import pytest
from conftest import CLI, GPU, fill_random, poison, read_block

import kvbm

CFG = kvbm.LayoutConfig(num_blocks=12, num_layers=3, outer_dim=2, page_size=5, inner_dim=67, dtype_bytes=2)
FORMS = [("fully_contiguous", None), ("layer_separate", "block"), ("layer_separate", "outer")]
KINDS = ["system", "pinned", "disk"]


def allocate(kind, form, order, disk_dir):
    if kind == "pinned" and not GPU:
        pytest.skip("pinned memory needs a CUDA device")
    extra = {"dir": disk_dir} if kind == "disk" else {}
    return kvbm.Layout.allocate(CFG, kind, form=form, order=order, **extra)


def host_mirror(kind, layout, form, order):
    """A host layout that mirrors `layout` (itself when it is host memory) to write and read through."""
    if kind != "disk":
        return layout
    return kvbm.Layout.allocate(CFG, "system", form=form, order=order)


@pytest.mark.parametrize("src_kind", KINDS)
@pytest.mark.parametrize("dst_kind", KINDS)
@pytest.mark.parametrize("form,order", FORMS)
def test_every_host_tier_pair_moves_random_bytes(context, disk_dir, src_kind, dst_kind, form, order):
    rng = np.random.default_rng(hash((src_kind, dst_kind, form, order)) & 0xFFFF)
    src = allocate(src_kind, form, order, disk_dir)
    dst = allocate(dst_kind, "fully_contiguous", None, disk_dir)  # forms differ across the pair
    src_host = host_mirror(src_kind, src, form, order)
    pairs = [(1, 7), (0, 11), (5, 2), (11, 0), (6, 3)]
    written = fill_random(src_host, [s for s, _ in pairs], rng)
    if src_host is not src:
        context.transfer(src_host, src, [(s, s) for s, _ in pairs]).wait()
    dst_host = host_mirror(dst_kind, dst, "fully_contiguous", None)
    poison(dst_host)
    if dst_host is not dst:
        context.transfer(dst_host, dst, [(b, b) for b in range(CFG.num_blocks)]).wait()

    assert context.transfer(src, dst, pairs).wait(timeout=60)

    if dst_host is not dst:
        poison(dst_host, 0x11)
        context.transfer(dst, dst_host, [(b, b) for b in range(CFG.num_blocks)]).wait()
    for s, d in pairs:
        np.testing.assert_array_equal(read_block(dst_host, d), written[s], err_msg=f"block {s} -> {d}")
    untouched = set(range(CFG.num_blocks)) - {d for _, d in pairs}
    for d in untouched:
        assert (read_block(dst_host, d) == 0xA5).all(), f"block {d} was not a destination"


def test_a_prepared_path_posts_many_transfers(context, disk_dir):
    rng = np.random.default_rng(3)
    host = kvbm.Layout.allocate(CFG, "system")
    disk = kvbm.Layout.allocate(CFG, "disk", dir=disk_dir)
    back = kvbm.Layout.allocate(CFG, "system", form="ls-outer")
    written = fill_random(host, range(CFG.num_blocks), rng)
    out = context.prepare(host, disk)
    assert out.plan == {"plan": "direct", "strategy": "NixlWrite"}
    handles = [out.post([(b, CFG.num_blocks - 1 - b)]) for b in range(CFG.num_blocks)]
    for h in handles:
        h.wait()
        assert h.done()
    context.prepare(disk, back).post([(b, b) for b in range(CFG.num_blocks)]).wait()
    for b in range(CFG.num_blocks):
        np.testing.assert_array_equal(read_block(back, CFG.num_blocks - 1 - b), written[b])


def test_layer_views_move_their_layers_only(context, disk_dir):
    rng = np.random.default_rng(5)
    host = kvbm.Layout.allocate(CFG, "system")
    disk = kvbm.Layout.allocate(CFG, "disk", dir=disk_dir)
    back = kvbm.Layout.allocate(CFG, "system", form="layer_separate", order="outer")
    written = fill_random(host, range(CFG.num_blocks), rng)
    context.transfer(host, disk, [(b, b) for b in range(CFG.num_blocks)]).wait()
    poison(back, 0x5A)
    # Layer 1 of blocks 3 and 7, through a prepared path between two views, from the disk.
    view = back.layers(1)
    assert view.config.num_layers == 1 and "layers 1..1 of 3" in repr(view)
    pairs = kvbm.BlockPairs([(3, 3), (7, 7)])  # read once, posted as often as wanted
    assert len(pairs) == 2
    context.prepare(disk.layers(1), view).post(pairs).wait()
    for b in range(CFG.num_blocks):
        for layer in range(CFG.num_layers):
            got = np.asarray(back.chunk(b, layer))
            if b in (3, 7) and layer == 1:
                np.testing.assert_array_equal(got, written[b][layer])
            else:
                assert (got == 0x5A).all(), (b, layer)
    with pytest.raises(kvbm.Error, match=r"layers 2\.\.3 are out of range \(num_layers=3\)"):
        host.layers(2, 2)
    with pytest.raises(kvbm.Error, match="layer view"):
        host.layers(0, 2).block(0)
    with pytest.raises(kvbm.Error, match="pair 1: src block -1"):
        kvbm.BlockPairs([(0, 0), (-1, 2)])


def test_views_share_the_layouts_memory_and_keep_it_alive():
    layout = kvbm.Layout.allocate(CFG, "system")
    view = np.asarray(layout.block(4))
    assert view.shape == (CFG.num_layers, CFG.outer_dim, CFG.chunk_bytes)
    assert view.dtype == np.uint8 and view.flags.writeable
    view[...] = 7
    through_dlpack = np.from_dlpack(layout.block(4))
    assert (through_dlpack == 7).all()
    through_buffer = memoryview(layout.block(4))
    assert through_buffer.nbytes == view.nbytes and not through_buffer.readonly
    chunk = np.asarray(layout.chunk(4, 2))
    chunk[1, :] = 9  # V of layer 2
    assert (view[2, 1] == 9).all() and (view[2, 0] == 7).all()
    del layout  # the views hold the memory
    assert (view[0] == 7).all()


def test_handles_wait_poll_and_await(context, disk_dir):
    host = kvbm.Layout.allocate(CFG, "system")
    disk = kvbm.Layout.allocate(CFG, "disk", dir=disk_dir)
    handle = context.transfer(host, disk, [(0, 0)])
    assert handle.wait(timeout=60) is True
    assert handle.done()
    assert handle.wait(timeout=0) is True

    async def both():
        await context.transfer(host, disk, [(1, 1), (2, 2)])
        with pytest.raises(kvbm.Error) as failure:
            await context.transfer(host, disk, [(99, 1)])
        return failure.value

    error = asyncio.run(both())
    assert error.code == "out_of_range" and "99" in str(error)

    seen = []
    done = threading.Event()
    h = context.transfer(host, disk, [(3, 3)])
    h.add_done_callback(lambda e: (seen.append(e), done.set()))
    assert done.wait(60) and seen == [None]


def test_a_blocked_done_callback_holds_no_transfer_back():
    # One memcpy thread: were callbacks run on the thread that ends a transfer, the first one,
    # blocked below, would keep the second transfer from ending.
    context = kvbm.TransferContext(memcpy_threads=1)
    src = kvbm.Layout.allocate(CFG, "system")
    dst = kvbm.Layout.allocate(CFG, "system")
    running, release = threading.Event(), threading.Event()
    callback_threads = []

    def blocked(error):
        callback_threads.append(threading.get_ident())
        running.set()
        release.wait()

    first = context.transfer(src, dst, [(0, 0)])
    first.add_done_callback(blocked)
    try:
        assert running.wait(60), "the done-callback never ran"
        assert context.transfer(src, dst, [(1, 1)]).wait(timeout=60), "a transfer waited for a blocked callback"
    finally:
        release.set()
    ran = threading.Event()
    context.transfer(src, dst, [(2, 2)]).add_done_callback(lambda e: (callback_threads.append(threading.get_ident()),
                                                                      ran.set()))
    assert ran.wait(60)
    assert callback_threads[0] == callback_threads[1] != threading.get_ident()  # one thread of kvbm's


def test_transfers_from_many_python_threads_at_once(context, disk_dir):
    host = kvbm.Layout.allocate(CFG, "system")
    disk = kvbm.Layout.allocate(CFG, "disk", dir=disk_dir)
    back = kvbm.Layout.allocate(CFG, "system")
    written = fill_random(host, range(CFG.num_blocks), np.random.default_rng(5))
    errors = []
    start = threading.Barrier(6)

    def worker(t):
        try:
            start.wait()
            for round in range(10):
                b = (t * 2 + round) % CFG.num_blocks
                context.transfer(host, disk, [(b, b)]).wait()
                context.transfer(disk, back, [(b, b)]).wait()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for b in range(CFG.num_blocks):
        np.testing.assert_array_equal(read_block(back, b), written[b])


def test_bad_arguments_raise_kvbm_error(context, disk_dir):
    host = kvbm.Layout.allocate(CFG, "system")
    disk = kvbm.Layout.allocate(CFG, "disk", dir=disk_dir)
    cases = {
        "invalid_argument": [
            lambda: kvbm.Layout.allocate(CFG, "tape"),
            lambda: kvbm.Layout.allocate(CFG, "system", form="spiral"),
            lambda: kvbm.Layout.allocate(CFG, "system", form="layer_separate", order="sideways"),
            lambda: kvbm.Layout.allocate(CFG, "system", dir=disk_dir),
            lambda: kvbm.LayoutConfig(num_blocks=0, num_layers=1, page_size=1, inner_dim=1),
            lambda: kvbm.TransferContext(disk_backend="floppy"),
            lambda: kvbm.TransferContext(copy_path="teleport"),
            lambda: kvbm.Layout.allocate(CFG, "system", form="ls").block(0),
        ],
        "out_of_range": [
            lambda: host.block(CFG.num_blocks),
            lambda: host.chunk(0, CFG.num_layers),
            lambda: context.transfer(host, disk, [(0, CFG.num_blocks)]).wait(),
        ],
        "unsupported": [lambda: disk.block(0)],
    }
    for code, calls in cases.items():
        for call in calls:
            with pytest.raises(kvbm.Error) as failure:
                call()
            assert failure.value.code == code, str(failure.value)
    # Indices that fit no block are out of range, named, whatever integer type carries them.
    for pairs, text in [([(-1, 0)], "src block -1"), ([(0, np.int64(-3))], "dst block -3"),
                        ([(0, 1), (1 << 64, 2)], "pair 1: src block 18446744073709551616")]:
        with pytest.raises(kvbm.Error, match=text) as failure:
            context.transfer(host, disk, pairs)
        assert failure.value.code == "out_of_range"
        with pytest.raises(kvbm.Error, match=text):
            context.prepare(host, disk).post(pairs)
    for pairs, text in [([(0.5, 1)], "src block 0.5 is not an integer"), ([(1, 2, 3)], r"\(1, 2, 3\) is not a"),
                        (7, "pairs must be a sequence")]:
        with pytest.raises(kvbm.Error, match=text) as failure:
            context.transfer(host, disk, pairs)
        assert failure.value.code == "invalid_argument"
    assert context.transfer(host, disk, [(np.int64(1), np.uint32(2))]).wait()
    with pytest.raises(kvbm.Error, match="timeout"):
        context.transfer(host, disk, [(0, 0)]).wait(timeout=-1)


def test_plan_is_the_clis_json():
    assert kvbm.plan("system", "device:0") == {
        "plan": "two_hop", "first": "Memcpy", "bounce": "Pinned", "second": "CudaAsyncH2D"}
    assert kvbm.plan("device:0", "disk", gds=True)["plan"] == "direct"
    with pytest.raises(kvbm.Error) as failure:
        kvbm.plan("disk", "system", remote_src=True)
    assert failure.value.code in ("unsupported", "invalid_argument")
    if CLI:
        for src, dst in [("system", "disk"), ("device:1", "pinned"), ("disk", "device")]:
            cli = json.loads(subprocess.run([CLI, "plan", src, dst, "--json"], check=True, capture_output=True,
                                            text=True).stdout)
            assert kvbm.plan(src, dst) == cli
