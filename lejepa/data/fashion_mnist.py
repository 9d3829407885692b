"""Fashion-MNIST from IDX files (Debian's `dataset-fashion-mnist` puts them in /usr/share/datasets/fashion-mnist/).

    images, labels = load_fashion_mnist("/usr/share/datasets/fashion-mnist", "train")  # (60000, 28, 28) uint8, (60000,)

Files are read and checked by `common.data.images`: gzip-compressed (`*.gz`) or not; sizes, magic numbers and
labels are checked; a missing or wrong folder raises `DatasetError` naming the path and how to install the data.
`load_digits_images` gives scikit-learn's 8x8 digits (bundled with sklearn) upscaled to 16x16, for the smallest tests.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from common.data import images as common_images
from common.errors import PaperclubError

DEFAULT_DIR = common_images.DEFAULT_FASHION_MNIST_DIR
SPLITS = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", 60000),
          "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte", 10000)}
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
_HINT = "set data.dir to a folder holding the IDX files"


class DatasetError(PaperclubError, FileNotFoundError):
    """The dataset folder or one of its files is missing or malformed."""


def load_fashion_mnist(directory: str | Path = DEFAULT_DIR, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels (N,) int64) of `split` ('train' 60k or 'test' 10k)."""
    if split not in SPLITS:
        raise DatasetError(f"split={split!r} is not one of {sorted(SPLITS)}")
    image_name, label_name, count = SPLITS[split]
    try:
        return common_images.load_idx_split(Path(directory), common_images.IdxSpec(image_name, label_name, count),
                                            dtype=np.uint8, hint=_HINT)
    except common_images.IdxError as err:
        raise DatasetError(str(err)) from err


def load_digits_images(size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1797 digits as (N, size, size) uint8 (nearest upscaling of the 8x8 originals), labels (N,)."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = (digits.images / 16.0 * 255.0).astype(np.uint8)
    rep = size // 8
    images = images.repeat(rep, axis=1).repeat(rep, axis=2)
    return images, digits.target.astype(np.int64)
