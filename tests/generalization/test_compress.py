"""The compression pipeline on digits: a real code that decodes, bits add up, the bound uses the coded model."""

import numpy as np
import pytest
import torch

from generalization.data import load_images
from generalization.models import build_model
from generalization.pac_bayes.bounds import kl_bound
from generalization.pac_bayes.compress import CompressionSettings, compress_and_bound
from generalization.pac_bayes.quantize import assign, kmeans_1d


def test_kmeans_1d_recovers_clusters():
    rng = np.random.default_rng(0)
    values = np.r_[rng.normal(-2, 0.01, 100), rng.normal(1, 0.01, 100), rng.normal(5, 0.01, 50)]
    centroids = kmeans_1d(values, 3)
    np.testing.assert_allclose(centroids, [-2, 1, 5], atol=0.01)
    assert (np.bincount(assign(values, centroids)) == [100, 100, 50]).all()


def test_pipeline_on_digits():
    x, y = map(torch.as_tensor, load_images("digits", "train"))
    xt, yt = map(torch.as_tensor, load_images("digits", "test"))
    torch.manual_seed(0)
    cfg = CompressionSettings(d=60, levels=8, epochs=8, batch_size=256, lr=0.1, qat_epochs=1, n_hypers=4)
    out = compress_and_bound(build_model("mlp", 64, 32, depth=1), x, y, xt, yt, cfg)
    assert out["d"] == 60 and out["D"] == 64 * 32 + 32 + 32 * 10 + 10
    assert out["total_bits"] == out["body_bits"] + out["header_bits"] + out["centroid_bits"]
    assert out["body_bits"] <= 60 * 3 + 2  # never more than log2(L) bits per weight
    assert out["kl_bound"] == pytest.approx(kl_bound(out["train_error"], out["total_bits"], len(x), 0.05, 4))
    assert out["train_error"] < 0.5 and out["train_error"] <= out["kl_bound"] < 1.0
