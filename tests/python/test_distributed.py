"""A leader and an in-process worker from Python, over a real ZeroMQ ipc endpoint."""
import shutil
import subprocess
import tempfile

import numpy as np
import pytest

import kvbm
from conftest import CLI, GPU

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
    with pytest.raises(kvbm.Error, match="pair 0: dst block -2") as failure:
        leader.transfer("Host", "Disk", [(0, -2)])
    assert failure.value.code == "out_of_range"
    with pytest.raises(kvbm.Error, match="no_such_handler"):
        leader.send("no_such_handler")
    worker.stop()
    assert worker.wait(timeout=0) is True


def test_a_timeout_names_the_silent_ranks_and_the_errors_of_the_others(context, tmp_path, socket_dir):
    endpoint = f"ipc://{socket_dir}/leader"
    leader = kvbm.Leader(endpoint, world_size=2)
    for rank in range(2):
        (tmp_path / str(rank)).mkdir()
    workers = [
        kvbm.Worker(endpoint, context=context, rank=rank, world_size=2, host=kvbm.Layout.allocate(CFG, "system"),
                    disk=kvbm.Layout.allocate(CFG, "disk", dir=str(tmp_path / str(rank))))
        for rank in range(2)
    ]
    leader.wait_for_workers(timeout=60)
    workers[1].stop()  # registered, then silent
    with pytest.raises(kvbm.Error) as failure:
        leader.transfer("Host", "Disk", [(99, 0)], timeout=1)
    assert failure.value.code == "timeout"
    message = str(failure.value)
    assert "rank 0: source block index 99" in message and "from rank(s) 1" in message
    workers[0].stop()


def test_curve_keys_from_python(context, tmp_path, socket_dir):
    if not CLI:
        pytest.skip("KVBM_CLI (the kvbm command, for kvbm keygen) is not set")
    for name in ("leader", "worker"):
        subprocess.run([CLI, "keygen", str(tmp_path / name)], check=True, capture_output=True)
    (tmp_path / "peers").mkdir()
    shutil.copy(tmp_path / "worker.pub", tmp_path / "peers")
    endpoint = f"ipc://{socket_dir}/leader"
    leader = kvbm.Leader(endpoint, auth_key=str(tmp_path / "leader.key"), auth_peers=str(tmp_path / "peers"))
    worker = kvbm.Worker(endpoint, context=context, host=kvbm.Layout.allocate(CFG, "system"),
                         auth_key=str(tmp_path / "worker.key"), leader_pub=str(tmp_path / "leader.pub"))
    leader.wait_for_workers(timeout=60)
    assert leader.send("kvbm.ping") == [{"rank": 0, "data": None}]
    worker.stop()
    with pytest.raises(kvbm.Error, match="go together"):
        kvbm.Leader(f"ipc://{socket_dir}/other", auth_key=str(tmp_path / "leader.key"))


def test_a_worker_without_a_leader_stops_with_an_error(context, socket_dir):
    worker = kvbm.Worker(f"ipc://{socket_dir}/nobody", context=context, host=kvbm.Layout.allocate(CFG, "system"),
                         leader_wait=0.2)
    with pytest.raises(kvbm.Error) as failure:
        worker.wait(timeout=60)
    assert failure.value.code == "timeout"
    worker.stop()


REPLICATED_UNAVAILABLE = kvbm.replicated_unavailable_reason()


@pytest.mark.skipif(REPLICATED_UNAVAILABLE is not None, reason=f"replicated mode: {REPLICATED_UNAVAILABLE}")
def test_replicated_mode_from_python(context, socket_dir):
    # One rank: its broadcasts reach nobody, but the whole path runs (the communicator, the
    # status word, the packed broadcast, the agreement); the nccl suite runs several ranks.
    device = kvbm.Layout.allocate(CFG, "device")
    host = kvbm.Layout.allocate(CFG, "pinned")
    endpoint = f"ipc://{socket_dir}/leader"
    leader = kvbm.Leader(endpoint, world_size=1, replicated=True)
    worker = kvbm.Worker(endpoint, context=context, device=device, host=host, replicated=True, nccl_timeout=20,
                         broadcast_staging_bytes=1 << 20)
    leader.wait_for_workers(timeout=60)
    rng = np.random.default_rng(5)
    for b in range(CFG.num_blocks):
        np.asarray(host.block(b))[...] = rng.integers(0, 256, size=np.asarray(host.block(b)).shape, dtype=np.uint8)

    def moved(pairs):
        leader.transfer("Host", "Device", pairs)
        sources = leader.send("kvbm.hash", {"pool": "Host", "blocks": [s for s, _ in pairs]})[0]["data"]["hashes"]
        destinations = leader.send("kvbm.hash", {"pool": "Device", "blocks": [d for _, d in pairs]})[0]["data"]["hashes"]
        return sources == destinations

    assert moved([(1, 3), (2, 0), (7, 6)])
    leader.init_replicated(timeout=60)  # a new communicator, as after a failure
    assert moved([(4, 5)])
    assert leader.restarted_ranks() == []
    with pytest.raises(kvbm.Error, match="3"):
        leader.acknowledge_restart(3)
    worker.stop()


def test_replicated_mode_refuses_a_worker_without_a_device_pool(context, socket_dir):
    with pytest.raises(kvbm.Error, match="Device pool"):
        kvbm.Worker(f"ipc://{socket_dir}/leader", context=context, host=kvbm.Layout.allocate(CFG, "system"),
                    replicated=True)
    with pytest.raises(kvbm.Error, match="rank 2"):
        kvbm.Worker(f"ipc://{socket_dir}/leader", context=context, host=kvbm.Layout.allocate(CFG, "system"),
                    rank=2, world_size=2, replicated=True)


def test_replicated_mode_says_why_it_cannot_run_here():
    if not GPU:
        assert "no CUDA device" in REPLICATED_UNAVAILABLE
    else:
        assert REPLICATED_UNAVAILABLE is None or "NCCL" in REPLICATED_UNAVAILABLE
