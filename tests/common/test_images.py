"""common.data.images: IDX round trip (gz and raw), split loading with checks, and clear errors."""

import gzip
import struct

import numpy as np
import pytest

from common.data.images import FASHION_MNIST, IdxError, IdxSpec, find_idx, load_idx_split, read_idx

SPEC = IdxSpec("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 4, shape=(3, 2), classes=3)


def write_idx(path, array, gz=False, code=0x08):
    array = np.asarray(array)
    raw = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    raw += array.tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        path.write_bytes(gzip.compress(raw))
    else:
        path.write_bytes(raw)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_round_trip_raw_and_gz(tmp_path, gz):
    arr = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    out = read_idx(write_idx(tmp_path / "a", arr, gz))
    assert out.dtype == np.uint8 and out.shape == (2, 3, 4) and np.array_equal(out, arr)
    out[0, 0, 0] = 7  # writable copy
    ints = np.array([-3, 5, 1 << 20], dtype=">i4")
    assert np.array_equal(read_idx(write_idx(tmp_path / "b", ints, gz, code=0x0C)), ints)


@pytest.mark.parametrize("gz", [False, True])
def test_split_loads_and_finds_gz_or_raw(tmp_path, gz):
    images = (np.arange(4 * 3 * 2) % 256).astype(np.uint8).reshape(4, 3, 2)
    write_idx(tmp_path / SPEC.images, images, gz)
    write_idx(tmp_path / SPEC.labels, np.array([0, 2, 1, 2], dtype=np.uint8), gz)
    assert find_idx(tmp_path, SPEC.images).name == SPEC.images + (".gz" if gz else "")
    x, y = load_idx_split(tmp_path, SPEC, all_classes=True)
    assert np.array_equal(x, images) and y.tolist() == [0, 2, 1, 2] and y.dtype == np.int64


def test_wrong_magic_size_dtype_and_labels(tmp_path):
    (tmp_path / "bad").write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(IdxError, match="bad is not an IDX file"):
        read_idx(tmp_path / "bad")
    good = write_idx(tmp_path / "a", np.zeros((2, 3), dtype=np.uint8))
    (tmp_path / "short").write_bytes(good.read_bytes()[:-1])
    with pytest.raises(IdxError, match=r"short: header says shape \(2, 3\) \(6 bytes\).*holds 5 \(truncated\?\)"):
        read_idx(tmp_path / "short")
    (tmp_path / "broken.gz").write_bytes(b"not gzip")
    with pytest.raises(IdxError, match="cannot read IDX file .*broken.gz"):
        read_idx(tmp_path / "broken.gz")
    with pytest.raises(IdxError, match="is an IDX file of >i4, expected uint8"):
        read_idx(write_idx(tmp_path / "i", np.zeros(2, dtype=">i4"), code=0x0C), np.uint8)

    write_idx(tmp_path / SPEC.images, np.zeros((3, 3, 2), dtype=np.uint8))
    write_idx(tmp_path / SPEC.labels, np.array([0, 1, 2, 0], dtype=np.uint8))
    with pytest.raises(IdxError, match=rf"{SPEC.images}: shape \(3, 3, 2\), expected \(4, 3, 2\)"):
        load_idx_split(tmp_path, SPEC)
    write_idx(tmp_path / SPEC.images, np.zeros((4, 3, 2), dtype=np.uint8))
    write_idx(tmp_path / SPEC.labels, np.array([0, 1, 3, 0], dtype=np.uint8))
    with pytest.raises(IdxError, match=rf"{SPEC.labels}: labels must be in 0..2, got range \[0, 3\]"):
        load_idx_split(tmp_path, SPEC)
    write_idx(tmp_path / SPEC.labels, np.array([0, 1, 1, 0], dtype=np.uint8))
    assert load_idx_split(tmp_path, SPEC)[1].tolist() == [0, 1, 1, 0]
    with pytest.raises(IdxError, match="labels must cover 0..2"):
        load_idx_split(tmp_path, SPEC, all_classes=True)


def test_missing_folder_and_files_name_the_package(tmp_path):
    with pytest.raises(IdxError, match=r"folder .*nowhere does not exist; install it with "
                                       r"`apt-get install dataset-fashion-mnist` or set data\.dir"):
        load_idx_split(tmp_path / "nowhere", FASHION_MNIST["train"], hint="set data.dir")
    with pytest.raises(IdxError, match=r"missing IDX file in .*: it lacks train-images-idx3-ubyte \(or "
                                       r"train-images-idx3-ubyte\.gz\); install it with `apt-get install pkg`"):
        load_idx_split(tmp_path, FASHION_MNIST["train"], package="pkg")
    assert FASHION_MNIST["train"].count == 60000 and FASHION_MNIST["test"].shape == (28, 28)
