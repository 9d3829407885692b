"""IDX reader: real files parse, sizes/labels are checked, bad names and missing files give clear errors."""

import gzip
import struct

import numpy as np
import pytest

from generalization.data import (
    DEFAULT_FASHION_MNIST_DIR,
    DatasetError,
    alter_labels,
    downsample,
    load_images,
    read_idx,
)


def _write_idx(path, array, gz=False):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw = header + array.astype(np.uint8).tobytes()
    (gzip.open if gz else open)(path, "wb").write(raw)


def test_bad_dataset_name_is_a_clear_error():
    with pytest.raises(DatasetError, match="unknown dataset 'cifar10'.*fashion_mnist, digits"):
        load_images("cifar10")
    with pytest.raises(DatasetError, match="unknown split"):
        load_images("digits", "validation")


def test_missing_folder_and_files(tmp_path):
    with pytest.raises(DatasetError, match="does not exist.*dataset-fashion-mnist"):
        load_images("fashion_mnist", "train", tmp_path / "nowhere")
    with pytest.raises(DatasetError, match="missing IDX file .*train-images-idx3-ubyte"):
        load_images("fashion_mnist", "train", tmp_path)


def test_idx_round_trip_and_truncation(tmp_path):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    _write_idx(tmp_path / "a.idx", arr)
    _write_idx(tmp_path / "a.idx.gz", arr, gz=True)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), arr)
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx.gz"), arr)
    (tmp_path / "b.idx").write_bytes((tmp_path / "a.idx").read_bytes()[:-3])
    with pytest.raises(DatasetError, match="truncated"):
        read_idx(tmp_path / "b.idx")
    (tmp_path / "c.idx").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(DatasetError, match="not an IDX file"):
        read_idx(tmp_path / "c.idx")


def test_wrong_sizes_are_rejected(tmp_path):
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28)))
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", np.arange(5) % 10)
    with pytest.raises(DatasetError, match=r"shape \(5, 28, 28\), expected \(10000, 28, 28\)"):
        load_images("fashion_mnist", "test", tmp_path)


@pytest.mark.skipif(not __import__("os").path.isdir(DEFAULT_FASHION_MNIST_DIR),
                    reason="Debian dataset-fashion-mnist not installed")
def test_real_fashion_mnist_test_split():
    x, y = load_images("fashion_mnist", "test")
    assert x.shape == (10000, 784) and x.dtype == np.float32 and x.min() >= 0 and x.max() <= 1
    assert np.bincount(y).tolist() == [1000] * 10
    assert downsample(x[:3], 2).shape == (3, 196)


def test_digits_and_altered_labels():
    x, y = load_images("digits", "train")
    assert x.shape == (1297, 64) and set(np.unique(y)) == set(range(10))
    rng = np.random.default_rng(0)
    changed = (alter_labels(y, 0.5, 10, rng) != y).mean()
    assert 0.5 * 0.9 - 0.05 < changed < 0.5 * 0.9 + 0.05  # resampled uniformly: 9/10 of them change
    assert (alter_labels(y, 0.0, 10, rng) == y).all()
