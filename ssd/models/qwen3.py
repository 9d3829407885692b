"""Qwen3 decoder: the Llama block with RMSNorm on each head's queries and keys (QK-norm) before rotary.

Parameter names follow HF `Qwen3ForCausalLM` (`self_attn.q_norm.weight`, `self_attn.k_norm.weight`).
Sliding-window layers are not supported (`loading.py` refuses a config that enables them).
"""

from __future__ import annotations

from dataclasses import dataclass

from ssd.models.llama import Llama, LlamaConfig


@dataclass
class Qwen3Config(LlamaConfig):
    """LlamaConfig with QK-norm on (explicit `head_dim` in Qwen3 configs)."""

    qk_norm: bool = True


class Qwen3(Llama):
    """Same forward as `Llama`; the config switches QK-norm on."""

    def __init__(self, config: Qwen3Config) -> None:
        if not config.qk_norm:
            raise ValueError("Qwen3 needs qk_norm=True")
        super().__init__(config)
