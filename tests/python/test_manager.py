"""The block manager from Python: prefix lookup of a token sequence, write-through to host and
disk, onboarding a prefix found on disk, metrics."""
import numpy as np

import kvbm

CFG_BLOCKS = dict(num_layers=2, outer_dim=2, page_size=4, inner_dim=32, dtype_bytes=2)


def test_offload_lookup_and_onboard_from_disk(context, disk_dir):
    top = kvbm.Layout.allocate(kvbm.LayoutConfig(num_blocks=4, **CFG_BLOCKS), "system")
    disk = kvbm.Layout.allocate(kvbm.LayoutConfig(num_blocks=16, **CFG_BLOCKS), "disk", dir=disk_dir)
    manager = kvbm.BlockManager(context, host=top, disk=disk)
    assert manager.top_tier == "host"
    tokens = list(range(1000, 1000 + 4 * 3))
    hashes = kvbm.sequence_hashes(tokens, 4)
    assert len(hashes) == 3 and len(set(hashes)) == 3
    assert kvbm.sequence_hashes(tokens, 4, salt="lora-1") != hashes

    blocks = manager.allocate(3)
    assert [b.tier for b in blocks] == ["host"] * 3
    rng = np.random.default_rng(1)
    written = []
    for b in blocks:
        data = rng.integers(0, 256, size=np.asarray(top.block(b.block)).shape, dtype=np.uint8)
        np.asarray(top.block(b.block))[...] = data
        written.append(data)
    assert manager.register_blocks(blocks, hashes) == 3
    del blocks, b  # the last holds go: the blocks become evictable
    manager.flush_offloads()

    # Other sequences push ours out of the host tier; the disk keeps them.
    for other in range(2):
        others = manager.allocate(4)
        other_hashes = kvbm.sequence_hashes(list(range(other * 100, other * 100 + 16)), 4)
        assert manager.register_blocks(others, other_hashes) == 4
        del others
        manager.flush_offloads()  # a write-through holds its blocks until it is done

    match = manager.match(hashes + [12345])
    assert len(match) == 3 and match.disk >= 1
    below = [b for b in match.blocks if b.tier != "host"]
    destinations = manager.allocate(len(below))
    for d in destinations:
        np.asarray(top.block(d.block))[...] = 0
    manager.onboard(match, destinations).wait(timeout=60)
    again = manager.match(hashes)
    assert again.host == 3
    for block, data in zip(again.blocks, written):
        np.testing.assert_array_equal(np.asarray(top.block(block.block)), data)
    metrics = manager.metrics()
    assert metrics["disk_hits"] >= 1 and metrics["tiers"]["host"]["capacity"] == 4
    assert any(key.endswith("->host") for key in metrics["onboards"])
    assert "kvbm_" in manager.prometheus()


def test_bad_manager_arguments_raise_kvbm_error(context):
    host = kvbm.Layout.allocate(kvbm.LayoutConfig(num_blocks=4, **CFG_BLOCKS), "system")
    for kwargs, code in [({}, "invalid_argument"), ({"host": host, "policy": "random"}, "invalid_argument")]:
        try:
            kvbm.BlockManager(context, **kwargs)
        except kvbm.Error as e:
            assert e.code == code
        else:
            raise AssertionError(f"accepted {kwargs}")
    manager = kvbm.BlockManager(context, host=host)
    blocks = manager.allocate(2)
    try:
        manager.register_blocks(blocks, [1])
    except kvbm.Error as e:
        assert e.code == "invalid_argument"
    else:
        raise AssertionError("accepted 2 blocks with 1 hash")
