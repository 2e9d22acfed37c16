import os

import numpy as np
import pytest

import kvbm


def gpu_present() -> bool:
    try:
        kvbm.Layout.allocate(kvbm.LayoutConfig(num_blocks=1, num_layers=1, page_size=1, inner_dim=1), "pinned")
        return True
    except kvbm.Error:
        return False


GPU = gpu_present()


@pytest.fixture
def disk_dir(tmp_path):
    return str(tmp_path)


@pytest.fixture(scope="module")
def context():
    return kvbm.TransferContext()


def fill_random(layout, blocks, rng):
    """Random bytes into `blocks` of a host layout, through its views; returns them."""
    written = {}
    for b in blocks:
        chunks = [np.asarray(layout.chunk(b, layer)) for layer in range(layout.config.num_layers)]
        data = rng.integers(0, 256, size=(len(chunks),) + chunks[0].shape, dtype=np.uint8)
        for layer, chunk in enumerate(chunks):
            chunk[...] = data[layer]
        written[b] = data
    return written


def read_block(layout, block):
    return np.stack([np.asarray(layout.chunk(block, layer)).copy() for layer in range(layout.config.num_layers)])


def poison(layout, value=0xA5):
    for b in range(layout.config.num_blocks):
        for layer in range(layout.config.num_layers):
            np.asarray(layout.chunk(b, layer))[...] = value


CLI = os.environ.get("KVBM_CLI")
