"""Seeding is deterministic; device/dtype choice falls back to the CPU with a warning; plotting style."""

import json
import warnings

import numpy as np
import pytest
import torch

from common.device import choose_device, choose_dtype, cuda_available
from common.plotting import new_figure, save_figure
from common.seed import seed_everything


def test_same_seed_same_numbers():
    a = seed_everything(3)
    xa, ta = a.normal(size=4), torch.randn(4)
    b = seed_everything(3)
    assert np.array_equal(xa, b.normal(size=4)) and torch.equal(ta, torch.randn(4))
    assert not np.array_equal(xa, seed_everything(4).normal(size=4))
    with pytest.raises(ValueError, match="seed must be >= 0"):
        seed_everything(-1)


@pytest.mark.skipif(cuda_available(), reason="checks the no-GPU fallback")
def test_cuda_request_falls_back_to_cpu_with_warning():
    with pytest.warns(RuntimeWarning, match="no CUDA device is visible; falling back to cpu"):
        assert choose_device("cuda") == "cpu"
    assert choose_device("auto") == "cpu"
    with pytest.raises(ValueError, match="device must be"):
        choose_device("tpu")


def test_dtype_choice():
    assert choose_dtype("auto", "cpu") == "float32"
    assert choose_dtype("auto", "cuda") == "bfloat16"
    assert choose_dtype("bf16", "cuda") == "bfloat16"
    with pytest.warns(RuntimeWarning, match="falls back to float32"):
        assert choose_dtype("bf16", "cpu") == "float32"
    with pytest.raises(ValueError, match="dtype must be one of"):
        choose_dtype("int3", "cpu")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert choose_dtype("fp64", "cpu") == "float64"


def test_figure_records_its_source(tmp_path):
    fig, ax = new_figure()
    ax.plot([0, 1], [1, 0], label="ours")
    path = save_figure(fig, tmp_path / "fig.png", source="experiments/ssd/results/x.json", caption="c")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(path.with_suffix(".json").read_text())["sources"] == ["experiments/ssd/results/x.json"]
