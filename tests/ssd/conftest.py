"""Tiny random HF-format checkpoints shared by the ssd tests (made once per session with transformers)."""

from __future__ import annotations

from contextlib import contextmanager

import pytest
import torch

from ssd.models.tiny import make_tiny_pair


@contextmanager
def one_thread():
    """Tiny models run fastest single-threaded; on a shared 2-core machine extra threads only contend."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="session")
def llama_pair(tmp_path_factory):
    """(target, draft) Llama dirs with a byte-level BPE tokenizer, vocab ~320, llama3 rope scaling."""
    rope = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64}
    with one_thread():
        return make_tiny_pair(tmp_path_factory.mktemp("llama"), arch="llama", rope_scaling=rope, seed=1)


@pytest.fixture(scope="session")
def qwen3_pair(tmp_path_factory):
    """(target, draft) Qwen3 dirs (QK-norm, tied embeddings)."""
    with one_thread():
        return make_tiny_pair(tmp_path_factory.mktemp("qwen3"), arch="qwen3", tie_word_embeddings=True, seed=2)


@pytest.fixture(scope="session")
def tiny_vocab_pair(tmp_path_factory):
    """(target, draft) Llama dirs over a 12-token vocabulary, no tokenizer (distribution tests)."""
    with one_thread():
        return make_tiny_pair(tmp_path_factory.mktemp("v12"), vocab_size=12, hidden_size=32, intermediate_size=64,
                              target_layers=2, draft_layers=1, max_position_embeddings=32, init_std=0.4,
                              deep_layer_scale=0.5, with_tokenizer=False, seed=3)


@pytest.fixture(autouse=True)
def _one_torch_thread():
    with one_thread():
        yield
