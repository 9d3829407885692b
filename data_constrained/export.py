"""Hugging Face export: `config.json` (LlamaConfig fields) + `model.safetensors` + the corpus tokenizer.

`transformers.LlamaForCausalLM.from_pretrained(out_dir)` loads the result with the same logits as our
`Transformer` (checked in tests/data_constrained/test_export.py), so `ssd` can serve the models trained here.

    python -m data_constrained.export <checkpoint.safetensors> <out_dir> [--corpus-dir DIR]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from data_constrained.model import ModelConfig, Transformer
from data_constrained.model_checkpoint import load_model_from_checkpoint


def hf_config(cfg: ModelConfig, eos_token_id: int | None = None) -> dict:
    """The `LlamaConfig` fields for a `ModelConfig` (rope given both ways for transformers 4.x and 5.x)."""
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": cfg.vocab_size,
        "hidden_size": cfg.d_model,
        "intermediate_size": cfg.hidden_dim,
        "num_hidden_layers": cfg.n_layers,
        "num_attention_heads": cfg.n_heads,
        "num_key_value_heads": cfg.kv_heads,
        "head_dim": cfg.head_dim,
        "max_position_embeddings": cfg.max_seq_len,
        "rms_norm_eps": cfg.norm_eps,
        "rope_theta": cfg.rope_theta,
        "rope_parameters": {"rope_type": "default", "rope_theta": cfg.rope_theta},
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
        "tie_word_embeddings": cfg.tie_embeddings,
        "initializer_range": cfg.init_std,
        "bos_token_id": eos_token_id,
        "eos_token_id": eos_token_id,
        "torch_dtype": "float32",
    }


def hf_state_dict(model: Transformer) -> dict[str, torch.Tensor]:
    """Our parameters under HF Llama names (`model.` prefix except `lm_head`), contiguous float32 copies."""
    state = {}
    for name, tensor in model.state_dict().items():
        if model.cfg.tie_embeddings and name == "lm_head.weight":
            continue
        hf_name = name if name.startswith("lm_head") else f"model.{name}"
        state[hf_name] = tensor.detach().to("cpu", torch.float32).contiguous().clone()
    return state


def export_hf(model: Transformer, out_dir: str | Path, tokenizer_dir: str | Path | None = None,
              eos_token_id: int | None = None) -> Path:
    """Write an HF-format folder; `tokenizer_dir` is a corpus (or packed) folder whose tokenizer is copied alongside."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = None
    if tokenizer_dir is not None:
        tokenizer, corpus_eos = corpus_tokenizer(Path(tokenizer_dir))
        eos_token_id = corpus_eos if eos_token_id is None else eos_token_id
    (out / "config.json").write_text(json.dumps(hf_config(model.cfg, eos_token_id), indent=2) + "\n")
    save_file(hf_state_dict(model), str(out / "model.safetensors"), metadata={"format": "pt"})
    if tokenizer is not None:
        tokenizer.save_pretrained(str(out))
    return out


def corpus_tokenizer(corpus_dir: Path):
    """(tokenizer, eos id) of a corpus folder (common.data.text) or a packed slice (data_constrained.data pack)."""
    meta = corpus_dir / "meta.json"
    if meta.exists() and not (corpus_dir / "manifest.json").exists():
        from transformers import PreTrainedTokenizerFast

        return (PreTrainedTokenizerFast.from_pretrained(str(corpus_dir / "tokenizer")),
                int(json.loads(meta.read_text())["eos_id"]))
    from common.data.text import eos_id, load_tokenizer

    return load_tokenizer(corpus_dir), eos_id(corpus_dir)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a training checkpoint (step_*.safetensors) written by train.py")
    parser.add_argument("out_dir")
    parser.add_argument("--corpus-dir", default=None, help="corpus folder whose tokenizer to ship")
    args = parser.parse_args(argv)
    model = load_model_from_checkpoint(args.checkpoint)
    print(export_hf(model, args.out_dir, args.corpus_dir))


if __name__ == "__main__":
    main()
