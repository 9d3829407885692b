"""Image datasets: our own IDX reader for Fashion-MNIST (Debian `dataset-fashion-mnist`) and sklearn digits.

    x_train, y_train = load_images("fashion_mnist", "train")        # (60000, 784) float32 in [0, 1], int64 labels
    x, y = load_images("digits", "train")                            # sklearn's 8x8 digits, 64 features

The IDX format (LeCun): big-endian magic `0x0000 <dtype> <ndim>`, then `ndim` uint32 sizes, then the data.
Files may be gzip-compressed (`.gz`, as Debian ships them) or raw. Sizes and label ranges are checked against
the dataset's known shape, so a truncated download or a wrong folder fails with one clear error.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
DATASETS = ("fashion_mnist", "digits")
SPLITS = ("train", "test")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
               0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


class DatasetError(ValueError):
    """A dataset name is unknown, or its files are missing, truncated or inconsistent."""


@dataclass(frozen=True)
class IdxSpec:
    """Expected file stem, count and image shape of one split."""

    images: str
    labels: str
    count: int
    shape: tuple[int, int] = (28, 28)
    classes: int = 10


FASHION_MNIST = {
    "train": IdxSpec("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
    "test": IdxSpec("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000),
}


def load_images(name: str, split: str = "train", data_dir: str | os.PathLike | None = None,
                flatten: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(x, y) for `name` in DATASETS and `split` in SPLITS.

    x: (N, H*W) float32 in [0, 1] (or (N, 1, H, W) with `flatten=False`); y: (N,) int64 class labels.
    `data_dir` overrides the Fashion-MNIST folder (default $PAPERCLUB_FASHION_MNIST or the Debian path).
    digits has no official split: a fixed, stratified 1297/500 split (seed 0) is used.
    """
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; expected one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise DatasetError(f"unknown split {split!r} for {name}; expected one of {', '.join(SPLITS)}")
    if name == "digits":
        x, y = _load_digits(split)
        side = 8
    else:
        folder = Path(data_dir or os.environ.get("PAPERCLUB_FASHION_MNIST", DEFAULT_FASHION_MNIST_DIR))
        x, y = load_idx_split(folder, FASHION_MNIST[split])
        x = x.reshape(len(x), -1).astype(np.float32) / 255.0
        side = 28
    return (x, y) if flatten else (x.reshape(len(x), 1, side, side), y)


def load_idx_split(folder: Path, spec: IdxSpec) -> tuple[np.ndarray, np.ndarray]:
    """Raw uint8 images (N, H, W) and int64 labels (N,) of one IDX split, with size and label checks."""
    if not folder.is_dir():
        raise DatasetError(f"dataset folder {folder} does not exist; install Debian's dataset-fashion-mnist "
                           f"(apt-get install dataset-fashion-mnist) or set data.dir / PAPERCLUB_FASHION_MNIST")
    images = read_idx(_find(folder, spec.images))
    labels = read_idx(_find(folder, spec.labels))
    if images.shape != (spec.count, *spec.shape):
        raise DatasetError(f"{folder}/{spec.images}: shape {images.shape}, expected {(spec.count, *spec.shape)}")
    if labels.shape != (spec.count,):
        raise DatasetError(f"{folder}/{spec.labels}: shape {labels.shape}, expected ({spec.count},)")
    if labels.min() < 0 or labels.max() >= spec.classes or len(np.unique(labels)) != spec.classes:
        raise DatasetError(f"{folder}/{spec.labels}: labels must cover 0..{spec.classes - 1}, "
                           f"got range [{labels.min()}, {labels.max()}]")
    return images, labels.astype(np.int64)


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (raw or .gz) into an array of its declared dtype and shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"cannot read IDX file {path}: {err}") from err
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic {raw[:4].hex()})")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    shape = tuple(int(s) for s in np.frombuffer(raw[4:header], dtype=">u4"))
    expected = header + int(np.prod(shape)) * dtype.itemsize
    if len(raw) != expected:
        raise DatasetError(f"{path}: {len(raw)} bytes, expected {expected} for shape {shape} (truncated?)")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(shape)


def subset(x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A uniformly random subset of `n` rows (all rows when n >= len(x))."""
    if n >= len(x):
        return x, y
    idx = rng.choice(len(x), size=n, replace=False)
    return x[idx], y[idx]


def alter_labels(y: np.ndarray, fraction: float, classes: int, rng: np.random.Generator) -> np.ndarray:
    """Zhang et al.'s corrupted labels: a random `fraction` of the labels is resampled uniformly from all
    classes (so fraction 1 gives fully random labels, and about fraction (1 - 1/C) of labels change)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction of altered labels must be in [0, 1], got {fraction}")
    y = y.copy()
    n_alter = int(round(fraction * len(y)))
    idx = rng.choice(len(y), size=n_alter, replace=False)
    y[idx] = rng.integers(0, classes, size=n_alter)
    return y


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(f"missing IDX file {folder / stem}[.gz]; expected the Fashion-MNIST files "
                       f"{', '.join(s for spec in FASHION_MNIST.values() for s in (spec.images, spec.labels))}")


def _load_digits(split: str) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    x_tr, x_te, y_tr, y_te = train_test_split(x, data.target.astype(np.int64), test_size=500, random_state=0,
                                              stratify=data.target)
    return (x_tr, y_tr) if split == "train" else (x_te, y_te)


def downsample(x: np.ndarray, factor: int, side: int = 28) -> np.ndarray:
    """Average-pool flat square images (N, side*side) by `factor` -> (N, (side/factor)^2)."""
    if factor == 1:
        return x
    if side % factor:
        raise DatasetError(f"downsample factor {factor} does not divide the image side {side}")
    s = side // factor
    return x.reshape(len(x), s, factor, s, factor).mean(axis=(2, 4)).reshape(len(x), s * s)


def pca_project(x_train: np.ndarray, x_test: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Project both sets on the top-`dim` principal axes of x_train (label-free), scaled to unit mean
    variance per kept component; float32."""
    mean = x_train.mean(0)
    _, s, vt = np.linalg.svd(x_train - mean, full_matrices=False)
    axes = vt[:dim].T / (s[:dim].mean() / np.sqrt(len(x_train)))
    return ((x_train - mean) @ axes).astype(np.float32), ((x_test - mean) @ axes).astype(np.float32)
