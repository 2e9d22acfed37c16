"""A leader and an in-process worker from Python, over a real ZeroMQ ipc endpoint."""
import shutil
import tempfile

import numpy as np
import pytest

import kvbm

CFG = kvbm.LayoutConfig(num_blocks=8, num_layers=2, outer_dim=2, page_size=4, inner_dim=40, dtype_bytes=2)


@pytest.fixture
def socket_dir():
    # A short path: an ipc endpoint (and its ".replies" twin) must fit in 107 bytes, which
    # pytest's tmp_path, named after the test, can exceed.
    path = tempfile.mkdtemp(prefix="kvbm-ipc-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_leader_moves_blocks_between_an_in_process_workers_pools(context, tmp_path, socket_dir):
    host = kvbm.Layout.allocate(CFG, "system")
    disk = kvbm.Layout.allocate(CFG, "disk", dir=str(tmp_path))
    endpoint = f"ipc://{socket_dir}/leader"
    leader = kvbm.Leader(endpoint, world_size=1)
    worker = kvbm.Worker(endpoint, context=context, host=host, disk=disk)
    leader.wait_for_workers(timeout=60)
    assert leader.send("kvbm.ping") == [{"rank": 0, "data": None}]

    data = np.random.default_rng(2).integers(0, 256, size=np.asarray(host.block(1)).shape, dtype=np.uint8)
    np.asarray(host.block(1))[...] = data
    leader.transfer("Host", "Disk", [(1, 6)])
    host_hash = leader.send("kvbm.hash", {"pool": "Host", "blocks": [1, 2]})[0]["data"]["hashes"]
    disk_hash = leader.send("kvbm.hash", {"pool": "Disk", "blocks": [6]})[0]["data"]["hashes"]
    assert disk_hash[0] == host_hash[0] != host_hash[1]

    with pytest.raises(kvbm.Error, match="Nowhere"):
        leader.transfer("Host", "Nowhere", [(0, 0)])
    with pytest.raises(kvbm.Error, match="99"):
        leader.transfer("Host", "Disk", [(99, 0)])
    with pytest.raises(kvbm.Error, match="no_such_handler"):
        leader.send("no_such_handler")
    worker.stop()
    assert worker.wait(timeout=0) is True


def test_a_worker_without_a_leader_stops_with_an_error(context, socket_dir):
    worker = kvbm.Worker(f"ipc://{socket_dir}/nobody", context=context, host=kvbm.Layout.allocate(CFG, "system"),
                         leader_wait=0.2)
    with pytest.raises(kvbm.Error) as failure:
        worker.wait(timeout=60)
    assert failure.value.code == "timeout"
    worker.stop()
