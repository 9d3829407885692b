"""Fashion-MNIST from IDX files (Debian's `dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist/).

    images, labels = load_fashion_mnist("/usr/share/datasets/fashion-mnist", "train")  # (60000, 28, 28) uint8, (60000,)

Files may be gzip-compressed (`*.gz`) or not. Sizes, magic numbers and labels are checked; a missing or wrong
folder raises `DatasetError` naming the path and how to install the data. `load_digits_images` gives scikit-learn's
8x8 digits (bundled with sklearn) upscaled to 16x16, for the smallest tests.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

DEFAULT_DIR = "/usr/share/datasets/fashion-mnist"
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000)}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


class DatasetError(FileNotFoundError):
    """The dataset folder or one of its files is missing or malformed."""


def load_fashion_mnist(directory: str | Path = DEFAULT_DIR, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of `split` ('train' 60k or 'test' 10k)."""
    if split not in SPLITS:
        raise DatasetError(f"split={split!r} is not one of {sorted(SPLITS)}")
    directory = Path(directory)
    if not directory.is_dir():
        raise DatasetError(f"Fashion-MNIST folder {directory} does not exist; install it with "
                           f"`apt-get install dataset-fashion-mnist` or set data.dir to a folder holding the IDX files")
    image_name, label_name, count = SPLITS[split]
    images = _read_idx(_find(directory, image_name))
    labels = _read_idx(_find(directory, label_name))
    if images.shape != (count, 28, 28):
        raise DatasetError(f"{directory}/{image_name}: expected shape ({count}, 28, 28), got {images.shape}")
    if labels.shape != (count,):
        raise DatasetError(f"{directory}/{label_name}: expected {count} labels, got shape {labels.shape}")
    if labels.min() < 0 or labels.max() > 9:
        raise DatasetError(f"{directory}/{label_name}: labels must be in 0..9, got {labels.min()}..{labels.max()}")
    return images, labels.astype(np.int64)


def load_digits_images(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits as (N, size, size) uint8 (nearest upscaling of the 8x8 originals), labels (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).astype(np.uint8)
    rep = size // 8
    images = images.repeat(rep, axis=1).repeat(rep, axis=2)
    return images, digits.target.astype(np.int64)


def _find(directory: Path, stem: str) -> Path:
    for candidate in (directory / stem, directory / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"{directory} lacks {stem} (or {stem}.gz); install `dataset-fashion-mnist` or point "
                       f"data.dir at a folder with the Fashion-MNIST IDX files")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"cannot read {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{path} is not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    offset = 4 + 4 * ndim
    expected = int(np.prod(dims))
    if len(raw) - offset != expected:
        raise DatasetError(f"{path}: header says {dims} ({expected} bytes) but the file holds {len(raw) - offset}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(dims).copy()
