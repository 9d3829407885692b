"""Load a Hugging Face checkpoint directory from local disk into our `Llama` / `Qwen3` modules.

A checkpoint directory holds `config.json` and either `model.safetensors` or shards listed in
`model.safetensors.index.json`; weights may be bf16/fp16/fp32 and are cast to the requested dtype.
Every failure raises `ModelLoadError` naming the path and what was expected: unknown path, missing config,
unsupported architecture, corrupt safetensors, missing or unexpected tensors, shape mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from common.errors import PaperclubError
from ssd.models.llama import Llama, LlamaConfig
from ssd.models.qwen3 import Qwen3, Qwen3Config

ARCHITECTURES: dict[str, tuple[type[LlamaConfig], type[Llama]]] = {
    "LlamaForCausalLM": (LlamaConfig, Llama),
    "Qwen3ForCausalLM": (Qwen3Config, Qwen3),
}
# configs without `architectures` (e.g. converted from GGUF) name only their model_type
MODEL_TYPES = {"llama": "LlamaForCausalLM", "qwen3": "Qwen3ForCausalLM"}
IGNORED_SUFFIXES = ("rotary_emb.inv_freq",)  # checkpoint tensors our models recompute (skipped on load)


class ModelLoadError(PaperclubError, RuntimeError):
    """A checkpoint directory cannot be loaded (the message names the path and the problem)."""


def check_checkpoint_shapes(path: Path, arch: str, config: LlamaConfig, expected: dict[str, tuple[int, ...]],
                            shapes: dict[str, tuple[int, ...]]) -> None:
    """ModelLoadError unless the checkpoint's tensor shapes `shapes` are exactly the `expected` ones of the `arch`
    model for `config` (the tied LM head is not expected from the checkpoint)."""
    expected, shapes = dict(expected), dict(shapes)
    if config.tie_word_embeddings:
        expected.pop("lm_head.weight", None)
        shapes.pop("lm_head.weight", None)
    missing, unexpected = sorted(set(expected) - set(shapes)), sorted(set(shapes) - set(expected))
    if missing:
        raise ModelLoadError(f"{path}: checkpoint is missing {len(missing)} tensor(s) the {arch} config needs, "
                             f"e.g. {missing[:4]}")
    if unexpected:
        raise ModelLoadError(f"{path}: checkpoint has {len(unexpected)} tensor(s) this architecture does not use, "
                             f"e.g. {unexpected[:4]} (config.json and weights disagree?)")
    for name, shape in shapes.items():
        if shape != expected[name]:
            raise ModelLoadError(f"{path}: tensor {name} has shape {shape}, config.json implies {expected[name]}")


def load_model(path: str | Path, dtype: torch.dtype = torch.float32, device: str = "cpu",
               max_len: int | None = None) -> Llama:
    """The model in `path` (HF layout) in eval mode on `device`, projections fused, rotary table ready for
    `max_len` positions."""
    path = Path(path)
    hf = read_hf_config(path)
    config_cls, model_cls = architecture(hf, path)
    config = config_cls.from_hf(hf)
    state = read_safetensors_state(path)
    if config.tie_word_embeddings:
        state.pop("lm_head.weight", None)
    with torch.device("meta"):
        model = model_cls(config)
    check_checkpoint_shapes(path, hf["architectures"][0], config, {n: tuple(p.shape) for n, p in model.state_dict().items()},
                            {name: tuple(t.shape) for name, t in state.items()})
    state = {name: t.to(device=device, dtype=dtype) for name, t in state.items()}
    model.load_state_dict(state, strict=False, assign=True)
    if config.tie_word_embeddings:
        model.lm_head.weight = model.model.embed_tokens.weight
    model.fuse_projections()
    model.setup_rope(max_len or config.max_position_embeddings, device)
    return model.eval().requires_grad_(False)


def read_hf_config(path: Path) -> dict[str, Any]:
    """config.json of a checkpoint directory as a dict."""
    if not path.exists():
        raise ModelLoadError(f"model path {path} does not exist; expected a Hugging Face checkpoint directory "
                             "(config.json + model.safetensors)")
    if not path.is_dir():
        raise ModelLoadError(f"model path {path} is a file; expected a checkpoint directory")
    config_path = path / "config.json"
    if not config_path.is_file():
        raise ModelLoadError(f"{path} has no config.json; expected a Hugging Face checkpoint directory")
    try:
        return json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise ModelLoadError(f"{config_path} is not valid JSON: {err}") from None


def read_safetensors_state(path: Path) -> dict[str, torch.Tensor]:
    """All tensors of `model.safetensors` or of the shards named in `model.safetensors.index.json`."""
    from safetensors.torch import load_file

    index = path / "model.safetensors.index.json"
    single = path / "model.safetensors"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise ModelLoadError(f"{index} is malformed (expected a 'weight_map'): {err}") from None
        files = sorted(set(weight_map.values()))
    elif single.is_file():
        files = [single.name]
    else:
        raise ModelLoadError(f"{path} has neither model.safetensors nor model.safetensors.index.json")
    state: dict[str, torch.Tensor] = {}
    for name in files:
        file = path / name
        if not file.is_file():
            raise ModelLoadError(f"shard {file} listed in {index.name} does not exist")
        try:
            tensors = load_file(str(file))
        except Exception as err:
            raise ModelLoadError(f"{file} is corrupt or not a safetensors file: {err}") from None
        state.update(tensors)
    return {k: v for k, v in state.items() if not k.endswith(IGNORED_SUFFIXES)}


def architecture(hf: dict[str, Any], path: Path) -> tuple[type[LlamaConfig], type[Llama]]:
    """(config class, model class) named by a config.json dict; ModelLoadError naming `path` if unsupported."""
    names = hf.get("architectures") or [MODEL_TYPES.get(hf.get("model_type"), "")]
    if names[0] not in ARCHITECTURES:
        raise ModelLoadError(f"{path}: unsupported architecture {names or hf.get('model_type')!r}; "
                             f"supported: {', '.join(ARCHITECTURES)}")
    if hf.get("use_sliding_window"):
        raise ModelLoadError(f"{path}: sliding-window attention (use_sliding_window=true) is not supported")
    return ARCHITECTURES[names[0]]
