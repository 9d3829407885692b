"""The Fashion-MNIST IDX reader (gz or not), its checks and errors, and the digits fallback."""

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from lejepa.data.fashion_mnist import DEFAULT_DIR, DatasetError, load_digits_images, load_fashion_mnist


def write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(data))
    else:
        path.write_bytes(data)


@pytest.mark.parametrize("compress", [True, False])
def test_reads_idx_files(tmp_path, monkeypatch, compress):
    import lejepa.data.fashion_mnist as fm

    monkeypatch.setitem(fm.SPLITS, "test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 3))
    images = np.arange(3 * 28 * 28).reshape(3, 28, 28) % 256
    write_idx(tmp_path / "t10k-images-idx3-ubyte", images, compress)
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 9, 4]), compress)
    x, y = load_fashion_mnist(tmp_path, "test")
    assert np.array_equal(x, images) and y.tolist() == [0, 9, 4] and y.dtype == np.int64


def test_errors_name_the_problem(tmp_path, monkeypatch):
    import lejepa.data.fashion_mnist as fm

    with pytest.raises(DatasetError, match="does not exist; install it with `apt-get install dataset-fashion"):
        load_fashion_mnist(tmp_path / "missing", "train")
    with pytest.raises(DatasetError, match="lacks train-images-idx3-ubyte"):
        load_fashion_mnist(tmp_path, "train")
    with pytest.raises(DatasetError, match="split='val'"):
        load_fashion_mnist(tmp_path, "val")
    monkeypatch.setitem(fm.SPLITS, "test", ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 3))
    write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((2, 28, 28)), False)  # wrong count
    write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.array([0, 1, 2]), False)
    with pytest.raises(DatasetError, match=r"expected shape \(3, 28, 28\)"):
        load_fashion_mnist(tmp_path, "test")
    (tmp_path / "t10k-images-idx3-ubyte").write_bytes(b"\x00\x00\x08\x03" + struct.pack(">III", 3, 28, 28) + b"x")
    with pytest.raises(DatasetError, match="header says"):
        load_fashion_mnist(tmp_path, "test")


@pytest.mark.skipif(not Path(DEFAULT_DIR).is_dir(), reason="dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split():
    x, y = load_fashion_mnist(DEFAULT_DIR, "test")
    assert x.shape == (10000, 28, 28) and np.bincount(y).tolist() == [1000] * 10


def test_digits():
    x, y = load_digits_images(16)
    assert x.shape == (1797, 16, 16) and x.dtype == np.uint8 and set(np.unique(y)) == set(range(10))
