"""Shared fixtures: the tiny corpus (built once per session) and a ~0.1M-parameter training config."""

from __future__ import annotations

import pytest

from common.config import compose
from data_constrained.train import TrainConfig


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    from common.data.text import build_tiny_corpus

    path = tmp_path_factory.mktemp("tiny_corpus")
    build_tiny_corpus(path)
    return path


@pytest.fixture
def tiny_cfg(tiny_dir):
    def make(*overrides: str) -> TrainConfig:
        return compose("data_constrained", "train", TrainConfig, [
            "model=c32", "logger=jsonl", "logger.progress=false", f"data.dir={tiny_dir}",
            "data.token_budget=4096", "seq_len=32", "batch_size=8", "lr=1e-2", "epochs=2", *overrides])
    return make
