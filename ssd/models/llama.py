"""Llama decoder for inference: RMSNorm, rotary (default / linear / llama3 scaling), GQA, SwiGLU, optional tied
embeddings; the same module serves Qwen3 (QK-norm) through `ssd/models/qwen3.py`.

    model = Llama(LlamaConfig.from_hf(json.load(open("config.json"))))
    model.setup_rope(max_len=2048, device="cpu")
    logits = model(input_ids, positions, cache, slots)      # (B, T, V)

Parameter names equal Hugging Face's (`model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`), so a
checkpoint's state dict loads as is (`ssd/models/loading.py`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ssd.models.layers import DecoderLayer, RMSNorm, rope_inverse_frequencies, rope_table


@dataclass
class LlamaConfig:
    """Architecture hyper-parameters (HF names in `from_hf`)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float = 1e-5
    rope_theta: float = 10000.0
    rope_scaling: dict[str, Any] | None = None
    max_position_embeddings: int = 2048
    tie_word_embeddings: bool = False
    attention_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    eos_token_id: list[int] = field(default_factory=list)
    bos_token_id: int | None = None

    @classmethod
    def from_hf(cls, hf: dict[str, Any]) -> LlamaConfig:
        """From a Hugging Face `config.json` dict (transformers 4 `rope_theta`/`rope_scaling` or 5 `rope_parameters`)."""
        heads = hf["num_attention_heads"]
        rope = dict(hf.get("rope_parameters") or hf.get("rope_scaling") or {})
        theta = float(rope.pop("rope_theta", hf.get("rope_theta", 10000.0)))
        kind = rope.get("rope_type", rope.get("type", "default"))
        eos = hf.get("eos_token_id")
        eos = [] if eos is None else ([eos] if isinstance(eos, int) else list(eos))
        return cls(
            vocab_size=hf["vocab_size"], hidden_size=hf["hidden_size"], intermediate_size=hf["intermediate_size"],
            num_layers=hf["num_hidden_layers"], num_heads=heads,
            num_kv_heads=hf.get("num_key_value_heads") or heads,
            head_dim=hf.get("head_dim") or hf["hidden_size"] // heads,
            rms_norm_eps=hf.get("rms_norm_eps", 1e-5), rope_theta=theta,
            rope_scaling=None if kind == "default" else rope,
            max_position_embeddings=hf.get("max_position_embeddings", 2048),
            tie_word_embeddings=bool(hf.get("tie_word_embeddings", False)),
            attention_bias=bool(hf.get("attention_bias", False)), mlp_bias=bool(hf.get("mlp_bias", False)),
            qk_norm=cls.qk_norm, eos_token_id=eos, bos_token_id=hf.get("bos_token_id"),
        )


class Llama(nn.Module):
    """Decoder-only LM. `forward(input_ids (B,T), positions (B,T), cache, slots (B,)) -> logits (B,T,V)`.

    `cache` has per-layer `k[i]`, `v[i]` tensors (S, Hkv, L, Dh) (`ssd.engine.kv_cache.KVCache`); the new tokens'
    keys/values are written at (slot, position) and each query attends to cache positions <= its own.
    """

    def __init__(self, config: LlamaConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.model.layers = nn.ModuleList(
            DecoderLayer(c.hidden_size, c.intermediate_size, c.num_heads, c.num_kv_heads, c.head_dim,
                         c.rms_norm_eps, c.attention_bias, c.mlp_bias, c.qk_norm)
            for _ in range(c.num_layers))
        self.model.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.cos: Tensor | None = None
        self.sin: Tensor | None = None
        self.fused = False

    def use_triton_kernels(self, on: bool = True) -> None:
        """Run RMSNorm (+ fused residual add) and rotary with the Triton kernels of `ssd.kernels.rmsnorm_rotary`
        (CUDA tensors, or CPU under TRITON_INTERPRET=1)."""
        self.fused = on
        for module in self.modules():
            if hasattr(module, "fused") and module is not self:
                module.fused = on

    def setup_rope(self, max_len: int, device: torch.device | str) -> None:
        """Precompute the rotary table for positions < max_len on `device` (call after loading weights)."""
        inv_freq = rope_inverse_frequencies(self.config.head_dim, self.config.rope_theta, self.config.rope_scaling)
        self.cos, self.sin = rope_table(inv_freq, max_len, device)
        half = self.config.head_dim // 2  # the table repeats across the two halves; the Triton kernel takes one
        self.cos_half, self.sin_half = self.cos[:, :half].contiguous(), self.sin[:, :half].contiguous()

    def forward(self, input_ids: Tensor, positions: Tensor, cache: Any, slots: Tensor,
                last_only: bool = False) -> Tensor:
        """Logits (B, T, V) float32 (or (B, 1, V) with `last_only`) for tokens at `positions` of cache `slots`."""
        if self.cos is None:
            raise RuntimeError("call setup_rope(max_len, device) before the first forward")
        x = self.model.embed_tokens(input_ids)
        if self.fused:  # the kernel looks rows up itself in (L, Dh/2) tables
            cos, sin = self.cos_half, self.sin_half
        else:
            cos, sin = self.cos[positions], self.sin[positions]
        key_pos = torch.arange(cache.max_len, device=input_ids.device)
        mask = (key_pos[None, None, :] <= positions[:, :, None]).unsqueeze(1)  # (B, 1, T, L)
        for i, layer in enumerate(self.model.layers):
            x = layer(x, cos, sin, cache.k[i], cache.v[i], slots, positions, mask)
        if last_only:
            x = x[:, -1:]
        return self.lm_head(self.model.norm(x)).float()
