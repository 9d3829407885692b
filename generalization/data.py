"""Image datasets: Fashion-MNIST (Debian `dataset-fashion-mnist`, read by `common.data.images`) and sklearn digits.

    x_train, y_train = load_images("fashion_mnist", "train")        # (60000, 784) float32 in [0, 1], int64 labels
    x, y = load_images("digits", "train")                            # sklearn's 8x8 digits, 64 features

The IDX files may be gzip-compressed (`.gz`, as Debian ships them) or raw. Sizes and label ranges are checked
against the dataset's known shape, so a truncated download or a wrong folder fails with one clear `DatasetError`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from common.data import images as common_images
from common.data.images import DEFAULT_FASHION_MNIST_DIR, FASHION_MNIST, IdxSpec
from common.errors import PaperclubError

DATASETS = ("fashion_mnist", "digits")
SPLITS = ("train", "test")
_HINT = "set data.dir / PAPERCLUB_FASHION_MNIST"


class DatasetError(PaperclubError, ValueError):
    """A dataset name is unknown, or its files are missing, truncated or inconsistent."""


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
    """Raw images (N, H, W) (uint8 for Fashion-MNIST) and int64 labels (N,) of one IDX split, with size and
    label checks (every class present); see `common.data.images.load_idx_split`."""
    try:
        return common_images.load_idx_split(folder, spec, dtype=None, all_classes=True, hint=_HINT)
    except common_images.IdxError as err:
        raise DatasetError(str(err)) from err


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse one IDX file (raw or .gz) into an array of its declared dtype and shape."""
    try:
        return common_images.read_idx(path)
    except common_images.IdxError as err:
        raise DatasetError(str(err)) from err


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
