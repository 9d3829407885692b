"""Llama decoder for inference: RMSNorm, rotary (default / linear / llama3 scaling), GQA, SwiGLU, optional tied
embeddings; the same module serves Qwen3 (QK-norm) through `ssd/models/qwen3.py`.

    model = load_model("ckpt/target", torch.bfloat16, "cuda", max_len=2048)   # ssd/models/loading.py
    model.use_triton_kernels()                               # the fast decode path (CUDA)
    logits = model(input_ids, positions, cache, slots)      # (B, T, V) in the model's dtype

Parameter names equal Hugging Face's (`model.layers.0.self_attn.q_proj.weight`, `lm_head.weight`), so a
checkpoint's state dict loads as is; `fuse_projections()` then joins q/k/v and gate/up into one GEMM each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from ssd.models.layers import AttentionBatch, DecoderLayer, RMSNorm, rope_inverse_frequencies, rope_table


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

    def fuse_projections(self) -> None:
        """Join q/k/v and gate/up projections into one GEMM each (after the HF-named weights are loaded)."""
        for layer in self.model.layers:
            layer.self_attn.fuse()
            layer.mlp.fuse()

    def use_triton_kernels(self, on: bool = True, skinny_gemm: bool = False) -> None:
        """Run RMSNorm (+ fused residual add), QK-norm + rotary + cache write, decode attention and silu * up with
        the Triton kernels of `ssd/kernels/` (CUDA tensors, or CPU under TRITON_INTERPRET=1); `skinny_gemm` also
        runs the layers' projections of steps with <= 16 rows through `ssd.kernels.skinny_gemm` (CUDA)."""
        self.fused = on
        for module in self.modules():
            if hasattr(module, "fused") and module is not self:
                module.fused = on
            if hasattr(module, "skinny"):
                module.skinny = on and skinny_gemm

    def setup_rope(self, max_len: int, device: torch.device | str) -> None:
        """Precompute the (max_len, Dh/2) rotary tables on `device` (call after loading weights)."""
        inv_freq = rope_inverse_frequencies(self.config.head_dim, self.config.rope_theta, self.config.rope_scaling)
        self.cos, self.sin = rope_table(inv_freq, max_len, device)

    def forward(self, input_ids: Tensor, positions: Tensor, cache: Any, slots: Tensor, last_only: bool = False,
                prefix_slots: Tensor | None = None, prefix_lens: Tensor | None = None,
                prefill: bool = False) -> Tensor:
        """Logits (B, T, V) in the model's dtype (or (B, 1, V) with `last_only`) for tokens at `positions` of
        cache `slots`; see `AttentionBatch` for the shared prefix and `prefill`."""
        if self.cos is None:
            raise RuntimeError("call setup_rope(max_len, device) before the first forward")
        batch = AttentionBatch(positions, slots, prefix_slots, prefix_lens, prefill, cache.attention_locks)
        x, residual = self.model.embed_tokens(input_ids), None
        for i, layer in enumerate(self.model.layers):
            x, residual = layer(x, residual, self.cos, self.sin, cache.k[i], cache.v[i], batch)
        if last_only:
            x, residual = x[:, -1:], residual[:, -1:]
        return self.lm_head(self.model.norm(x, residual)[0])
