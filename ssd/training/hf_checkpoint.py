"""Hugging Face Llama models for training: build, export (config.json + model.safetensors + tokenizer), reload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import torch


def build_llama(vocab_size: int, hidden_size: int, num_layers: int, num_heads: int, num_kv_heads: int,
                intermediate_size: int, context_length: int, rope_theta: float, tie_word_embeddings: bool,
                eos_id: int, pad_id: int | None, init_std: float = 0.02):
    """A freshly initialised `transformers.LlamaForCausalLM` (float32, SDPA attention)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    if hidden_size % num_heads or num_heads % num_kv_heads:
        raise ValueError(f"hidden_size={hidden_size} must divide by num_heads={num_heads}, and num_heads by "
                         f"num_kv_heads={num_kv_heads}")
    config = LlamaConfig(vocab_size=vocab_size, hidden_size=hidden_size, intermediate_size=intermediate_size,
                         num_hidden_layers=num_layers, num_attention_heads=num_heads,
                         num_key_value_heads=num_kv_heads, max_position_embeddings=context_length,
                         rope_theta=rope_theta, tie_word_embeddings=tie_word_embeddings, bos_token_id=eos_id,
                         eos_token_id=eos_id, pad_token_id=pad_id, initializer_range=init_std, rms_norm_eps=1e-5,
                         attention_bias=False, mlp_bias=False, use_cache=False)
    config._attn_implementation = "sdpa"
    return LlamaForCausalLM(config)


def export_hf(model, tokenizer, out_dir: str | Path, dtype: str, record: dict[str, Any]) -> Path:
    """Save `model` (cast to `dtype`) and `tokenizer` as a Hugging Face directory, atomically (tmp dir + rename).

    `record` (training provenance: config fingerprint, steps, losses) goes to `<out_dir>/training.json`.
    """
    import copy

    out = Path(out_dir)
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    export = copy.deepcopy(model).to("cpu", getattr(torch, dtype))
    export.config.use_cache = True
    export.generation_config.use_cache = True
    export.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "training.json").write_text(json.dumps(record, indent=2, default=str) + "\n")
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def read_training_record(model_dir: str | Path) -> dict[str, Any] | None:
    """The `training.json` of an exported model directory, or None if it is absent or incomplete."""
    path = Path(model_dir) / "training.json"
    if not (path.is_file() and (Path(model_dir) / "config.json").is_file()):
        return None
    return json.loads(path.read_text())


def load_hf(model_dir: str | Path, device: str = "cpu"):
    """`LlamaForCausalLM.from_pretrained(model_dir)` in float32 on `device`, in eval mode."""
    from transformers import LlamaForCausalLM

    model = LlamaForCausalLM.from_pretrained(str(model_dir), dtype=torch.float32)
    return model.to(device).eval()
