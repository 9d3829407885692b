"""Sampling as pure functions: logits -> the distribution we sample from -> a token by inverse CDF.

Every strategy (autoregressive, speculative, Saguaro) draws from the same processed distribution
`processed_probs(logits, temperature, top_p)`, so "lossless" means: the emitted tokens are distributed exactly
as autoregressive sampling from this distribution. Temperature 0 is greedy (a one-hot at the argmax; ties go to
the lowest token id, as `torch.argmax`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import Tensor


@dataclass
class SamplingParams:
    """Per-request sampling: temperature (0 = greedy), nucleus `top_p`, length and stop conditions."""

    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    stop_token_ids: list[int] = field(default_factory=list)
    ignore_eos: bool = False

    def __post_init__(self) -> None:
        if self.temperature < 0:
            raise ValueError(f"temperature={self.temperature} must be >= 0")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p={self.top_p} must be in (0, 1]")
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens={self.max_new_tokens} must be >= 1")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0


def processed_probs(logits: Tensor, temperature: float, top_p: float = 1.0) -> Tensor:
    """(..., V) float32 probabilities after temperature and nucleus filtering (one-hot argmax if temperature 0)."""
    logits = logits.float()
    if temperature == 0:
        return torch.nn.functional.one_hot(logits.argmax(-1), logits.shape[-1]).float()
    probs = torch.softmax(logits / temperature, dim=-1)
    if top_p < 1.0:
        sorted_p, order = probs.sort(dim=-1, descending=True)
        mass_before = sorted_p.cumsum(-1) - sorted_p
        sorted_p = torch.where(mass_before < top_p, sorted_p, torch.zeros_like(sorted_p))
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_p)
        probs = probs / probs.sum(-1, keepdim=True)
    return probs


def sample_from(probs: Tensor, uniforms: Tensor) -> Tensor:
    """Inverse-CDF sample: (..., V) probabilities (need not be normalised) and (...) uniforms in [0,1) -> ids."""
    cdf = probs.cumsum(-1)
    target = uniforms.unsqueeze(-1) * cdf[..., -1:]
    index = torch.searchsorted(cdf, target, right=True).squeeze(-1)
    return index.clamp_max(probs.shape[-1] - 1)


def sample_tokens(logits: Tensor, params: SamplingParams, uniforms: Tensor | None) -> tuple[Tensor, Tensor | None]:
    """(tokens (...), the distribution they were drawn from (..., V) float32, or None when greedy).

    `uniforms` (...) in [0, 1) drive the inverse-CDF sample (unused, and may be None, when greedy).

    Greedy takes the argmax of the logits in their own dtype (bf16 logits need no float32 copy for it).
    """
    if params.greedy:
        return greedy_tokens(logits), None
    probs = processed_probs(logits, params.temperature, params.top_p)
    return sample_from(probs, uniforms), probs


def greedy_tokens(logits: Tensor) -> Tensor:
    """argmax over the vocabulary (ties to the smallest id): the split Triton kernel on CUDA, torch elsewhere."""
    if logits.is_cuda:
        from ssd.kernels.argmax import argmax

        return argmax(logits)
    return logits.argmax(-1)
