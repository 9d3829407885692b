"""IDX image data sets (LeCun's format), e.g. Fashion-MNIST from Debian's `dataset-fashion-mnist`.

    images, labels = load_idx_split(Path(DEFAULT_FASHION_MNIST_DIR), FASHION_MNIST["test"])
    # images (10000, 28, 28) uint8, labels (10000,) int64

The IDX format: big-endian magic `0x00 0x00 <dtype> <ndim>`, then `ndim` uint32 sizes, then the data. Files may be
gzip-compressed (`<stem>.gz`, as Debian ships them) or raw (`<stem>`). Magic numbers, byte counts, shapes and label
ranges are checked, so a missing folder, a truncated download or a wrong folder fails with one `IdxError` naming
the file and how to install the data. NumPy only (no torch): packages convert as they need.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import DTypeLike

from common.errors import PaperclubError

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_PACKAGE = "dataset-fashion-mnist"

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class IdxError(PaperclubError, ValueError):
    """An IDX folder or file is missing, unreadable, truncated or of the wrong shape, dtype or label range."""


@dataclass(frozen=True)
class IdxSpec:
    """One split: file stems (without `.gz`) of images and labels, image count, image shape (H, W), classes."""

    images: str
    labels: str
    count: int
    shape: tuple[int, int] = (28, 28)
    classes: int = 10


FASHION_MNIST = {
    "train": IdxSpec("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": IdxSpec("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}


def read_idx(path: str | os.PathLike, dtype: DTypeLike | None = None) -> np.ndarray:
    """Parse one IDX file (raw, or gzip when the name ends in `.gz`) into a writable array of its declared
    shape and dtype (e.g. (N, 28, 28) uint8 images, (N,) uint8 labels). With `dtype`, other declared dtypes
    are rejected."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise IdxError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise IdxError(f"{path} is not an IDX file (bad magic {raw[:4].hex()})")
    declared, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    if dtype is not None and declared != np.dtype(dtype):
        raise IdxError(f"{path} is an IDX file of {declared}, expected {np.dtype(dtype)}")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise IdxError(f"{path}: {len(raw)} bytes, too short for a {ndim}-dimensional IDX header (truncated?)")
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = int(np.prod(shape)) * declared.itemsize
    if len(raw) - header != expected:
        raise IdxError(f"{path}: header says shape {shape} ({expected} bytes) but the file holds "
                       f"{len(raw) - header} (truncated?)")
    return np.frombuffer(raw, dtype=declared, offset=header).reshape(shape).copy()


def find_idx(folder: str | os.PathLike, stem: str, package: str = FASHION_MNIST_PACKAGE, hint: str = "") -> Path:
    """`folder/stem` or `folder/stem.gz`, whichever exists; else an `IdxError` naming the file and `package`
    (and `hint`, e.g. which setting points at another folder)."""
    folder = Path(folder)
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise IdxError(f"missing IDX file in {folder}: it lacks {stem} (or {stem}.gz); install it with "
                   f"`apt-get install {package}`{_or(hint)}")


def load_idx_split(folder: str | os.PathLike, spec: IdxSpec, dtype: DTypeLike | None = np.uint8,
                   all_classes: bool = False, package: str = FASHION_MNIST_PACKAGE,
                   hint: str = "") -> tuple[np.ndarray, np.ndarray]:
    """(images (count, H, W) of `dtype` (uint8 for Fashion-MNIST; None: as declared), labels (count,) int64)
    of one split in `folder`, with shape checks and labels in 0..classes-1 (`all_classes`: each class present).

    Errors name the folder or file and `package` to install; `hint` is appended as an alternative
    (e.g. "set data.dir to a folder holding the IDX files")."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IdxError(f"dataset folder {folder} does not exist; install it with `apt-get install {package}`"
                       f"{_or(hint)}")
    image_path, label_path = find_idx(folder, spec.images, package, hint), find_idx(folder, spec.labels, package, hint)
    images, labels = read_idx(image_path, dtype), read_idx(label_path, dtype)
    _check_shape(image_path, images, (spec.count, *spec.shape))
    _check_shape(label_path, labels, (spec.count,))
    low, high = (int(labels.min()), int(labels.max())) if labels.size else (0, -1)
    if low < 0 or high >= spec.classes:
        raise IdxError(f"{label_path}: labels must be in 0..{spec.classes - 1}, got range [{low}, {high}]")
    if all_classes and len(np.unique(labels)) != spec.classes:
        raise IdxError(f"{label_path}: labels must cover 0..{spec.classes - 1}, got {len(np.unique(labels))} "
                       f"distinct labels in range [{low}, {high}]")
    return images, labels.astype(np.int64)


def _check_shape(path: Path, array: np.ndarray, expected: tuple[int, ...]) -> None:
    if array.shape != expected:
        raise IdxError(f"{path}: shape {array.shape}, expected {expected} (truncated download or wrong folder? "
                       f"expected shape {expected})")


def _or(hint: str) -> str:
    return f" or {hint}" if hint else ""
