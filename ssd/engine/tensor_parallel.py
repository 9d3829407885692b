"""Tensor parallelism for the target: each rank builds its own shard of a Llama / Qwen3 model at load time.

Over P ranks (one process per GPU; torch.distributed, NCCL on GPUs, gloo on the CPU) rank r of the group holds

    q / k / v projections  column-parallel: the rows of query heads [r H/P, (r+1) H/P) and of KV heads
                           [r Hkv/P, (r+1) Hkv/P), so every GQA group stays on one rank; fused into one GEMM
    gate / up projections  column-parallel: intermediate rows [r I/P, (r+1) I/P); fused into one GEMM
    o / down projections   row-parallel: the matching input columns. Each rank's output is a partial sum that
                           `DecoderLayer.all_reduce` sums over the ranks: one all-reduce per block half. A bias, if
                           any, is kept on rank 0 only (zeros elsewhere), so the sum adds it once.
    KV cache               Hkv/P heads per layer: the shard's config (`shard_config`) says so, and
                           `KVCache.for_model` sizes the cache from it
    LM head                vocab-parallel: rows [r V', (r+1) V') with V' = ceil(V / P) (the last rank's padded with
                           zero rows); the logits are all-gathered into the full (..., V) on every rank
    embeddings, norms      replicated

Why the ranks stay in lock step without exchanging tokens: every decision of a round (argmax, sampling,
verification) reads the gathered logits, which are the same bytes on every rank, and every rank's strategy draws
its random numbers from a generator seeded alike. So every rank runs the same round on its shard
(`ssd.engine.distributed`) and the strategies need no change. Against one device only the order of the
floating-point sums in the o / down projections changes: logits agree to rounding (fp32: within 1e-5 in
`tests/ssd/test_tensor_parallel.py`). On one rank (P = 1) nothing here is used: `load_tensor_parallel` is
`load_model`.

Weights come from a tensor source: `CheckpointTensors` reads only this rank's slice of each tensor of an HF
checkpoint's safetensors; `RandomTensors` draws seeded N(0, std) weights for timing runs (the same tensor on every
rank, each keeping its slice).
"""

from __future__ import annotations

import dataclasses
import json
import zlib
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

from common.errors import PaperclubError
from ssd.models.llama import Llama, LlamaConfig
from ssd.models.loading import (
    IGNORED_SUFFIXES,
    ModelLoadError,
    architecture,
    check_checkpoint_shapes,
    load_model,
    read_hf_config,
)

# module path suffix -> which width it splits (column-parallel: output rows; row-parallel: input columns)
COLUMN_PARALLEL = {"self_attn.q_proj": "q", "self_attn.k_proj": "kv", "self_attn.v_proj": "kv",
                   "mlp.gate_proj": "ffn", "mlp.up_proj": "ffn"}
ROW_PARALLEL = {"self_attn.o_proj": "q", "mlp.down_proj": "ffn"}
# the newer name first (torch >= 2.13 deprecates all_gather_into_tensor); same arguments
_all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


class TensorParallelError(PaperclubError, ValueError):
    """A model cannot be split over the requested number of ranks (the message names the key and the sizes)."""


@dataclass
class TensorParallelGroup:
    """The target's ranks: this process is `rank` of `size` in the torch.distributed `group`."""

    group: Any
    rank: int
    size: int

    @classmethod
    def of(cls, group: Any) -> TensorParallelGroup:
        """This process's place in `group` (a torch.distributed ProcessGroup it belongs to)."""
        return cls(group, dist.get_rank(group), dist.get_world_size(group))

    def all_reduce(self, x: Tensor) -> Tensor:
        """Sum x over the ranks, in place; returns x."""
        dist.all_reduce(x, group=self.group)
        return x

    def gather_last(self, local: Tensor, total: int) -> Tensor:
        """Every rank's (..., V') block side by side along the last dim, cut to (..., total): rank r's block lands at
        columns [r V', (r+1) V'). One all-gather; the result is the same bytes on every rank."""
        shape, width = local.shape[:-1], local.shape[-1]
        flat = local.reshape(-1, width).contiguous()
        rows = flat.shape[0]
        out = torch.empty((self.size * rows, width), dtype=local.dtype, device=local.device)
        _all_gather(out, flat, group=self.group)
        full = out.view(self.size, rows, width).permute(1, 0, 2).reshape(rows, self.size * width)
        if full.shape[1] != total:
            full = full[:, :total].contiguous()
        return full.view(*shape, total)


class VocabParallelHead(nn.Module):
    """One rank's rows of the LM head, (V', D); `forward(x (..., D))` returns the full logits (..., V) on every rank."""

    def __init__(self, weight: Tensor, vocab: int, group: TensorParallelGroup) -> None:
        super().__init__()
        self.weight = nn.Parameter(weight, requires_grad=False)
        self.vocab, self.group = vocab, group

    def forward(self, x: Tensor) -> Tensor:
        return self.group.gather_last(F.linear(x, self.weight), self.vocab)


# ------------------------------------------------------------------------------------------------ the shards


@dataclass(frozen=True)
class Shard:
    """A rank's slice of a tensor: indices [start, stop) of dimension `dim`, zero-padded to `size` along it."""

    dim: int
    start: int
    stop: int
    size: int


def shard_config(config: LlamaConfig, size: int) -> LlamaConfig:
    """The config of one rank's shard: H/P query heads, Hkv/P KV heads, I/P intermediate rows (vocab and hidden
    size unchanged). Raises TensorParallelError naming the HF key that P does not divide."""
    if size < 1:
        raise TensorParallelError(f"tensor_parallel={size} must be >= 1")
    for key, value in (("num_attention_heads", config.num_heads), ("num_key_value_heads", config.num_kv_heads),
                       ("intermediate_size", config.intermediate_size)):
        if value % size:
            raise TensorParallelError(f"{key}={value} is not divisible by tensor_parallel={size}; each rank holds "
                                      f"{key}/tensor_parallel of them (pick a tensor_parallel that divides {value})")
    return dataclasses.replace(config, num_heads=config.num_heads // size, num_kv_heads=config.num_kv_heads // size,
                               intermediate_size=config.intermediate_size // size)


def tensor_shard(name: str, config: LlamaConfig, rank: int, size: int) -> Shard | None:
    """How rank `rank` of `size` holds the HF-named tensor `name`: a Shard, or None for the whole tensor.

    A row-parallel bias is whole on rank 0 and an empty range padded with zeros elsewhere (added once by the sum).
    """
    if size == 1:
        return None
    vocab = config.vocab_size
    if name == "lm_head.weight":
        per = -(-vocab // size)
        start = min(rank * per, vocab)
        return Shard(0, start, min(start + per, vocab), per)
    module, _, kind = name.rpartition(".")
    part = ".".join(module.split(".")[-2:])
    widths = {"q": config.num_heads * config.head_dim, "kv": config.num_kv_heads * config.head_dim,
              "ffn": config.intermediate_size}
    if part in COLUMN_PARALLEL:
        per = widths[COLUMN_PARALLEL[part]] // size
        return Shard(0, rank * per, (rank + 1) * per, per)
    if part in ROW_PARALLEL:
        if kind == "bias":
            return Shard(0, 0, config.hidden_size if rank == 0 else 0, config.hidden_size)
        per = widths[ROW_PARALLEL[part]] // size
        return Shard(1, rank * per, (rank + 1) * per, per)
    return None


def take_shard(full: Tensor, shard: Shard | None) -> Tensor:
    """`shard` of a whole tensor (a copy, zero-padded to the shard's size), or the tensor itself for None."""
    if shard is None:
        return full
    part = full.narrow(shard.dim, shard.start, shard.stop - shard.start)
    return pad_shard(part.clone(), shard)


def pad_shard(part: Tensor, shard: Shard) -> Tensor:
    """`part` (the indices [start, stop) of the shard's dim) zero-padded to `shard.size` along that dim."""
    missing = shard.size - part.shape[shard.dim]
    if missing == 0:
        return part
    pad_shape = list(part.shape)
    pad_shape[shard.dim] = missing
    return torch.cat([part, part.new_zeros(pad_shape)], shard.dim)


class TensorSource(Protocol):
    """Where a shard's weights come from: `read(name, shape, shard, dtype, device)` -> that slice of the tensor
    `name` (whole shape `shape`) as `dtype` on `device`."""

    def read(self, name: str, shape: tuple[int, ...], shard: Shard | None, dtype: torch.dtype,
             device: torch.device | str) -> Tensor: ...


def build_shard(config: LlamaConfig, model_cls: type[Llama], source: TensorSource,
                group: TensorParallelGroup | None, dtype: torch.dtype, device: torch.device | str,
                max_len: int) -> Llama:
    """This rank's shard of `model_cls(config)` with weights from `source` (whole model when `group` is None):
    projections fused, the all-reduce hooks and the vocab-parallel head installed, rotary table for `max_len`."""
    rank, size = (0, 1) if group is None else (group.rank, group.size)
    local = shard_config(config, size)
    with torch.device("meta"):
        shapes = {name: tuple(t.shape) for name, t in model_cls(config).state_dict().items()}
        model = model_cls(local)
    skip_head = config.tie_word_embeddings or size > 1
    state = {name: source.read(name, shapes[name], tensor_shard(name, config, rank, size), dtype, device)
             for name in model.state_dict() if not (name == "lm_head.weight" and skip_head)}
    model.load_state_dict(state, strict=False, assign=True)
    embed = model.model.embed_tokens.weight
    if size == 1:
        if config.tie_word_embeddings:
            model.lm_head.weight = embed
    else:
        shard = tensor_shard("lm_head.weight", config, rank, size)
        if config.tie_word_embeddings:
            weight = pad_shard(embed.data[shard.start:shard.stop], shard)
        else:
            weight = source.read("lm_head.weight", shapes["lm_head.weight"], shard, dtype, device)
        model.lm_head = VocabParallelHead(weight, config.vocab_size, group)
        for layer in model.model.layers:
            layer.all_reduce = group.all_reduce
    left = [name for name, p in model.named_parameters() if p.is_meta]
    if left:
        raise RuntimeError(f"shard of {model_cls.__name__} left tensors unloaded: {left[:4]}")
    model.fuse_projections()
    model.setup_rope(max_len, device)
    return model.eval().requires_grad_(False)


# ----------------------------------------------------------------------------------------- from a checkpoint


def load_tensor_parallel(path: str | Path, group: TensorParallelGroup | None, dtype: torch.dtype = torch.float32,
                         device: torch.device | str = "cpu", max_len: int | None = None) -> Llama:
    """This rank's shard of the HF checkpoint in `path` (only its slices are read); `load_model` when one rank.

    Checks as `load_model` does (one ModelLoadError naming the path: missing / unexpected tensors, shapes) plus
    that the ranks divide the heads and the intermediate size.
    """
    if group is None or group.size == 1:
        return load_model(path, dtype, str(device), max_len)
    path = Path(path)
    hf = read_hf_config(path)
    config_cls, model_cls = architecture(hf, path)
    config = config_cls.from_hf(hf)
    try:
        shard_config(config, group.size)
    except TensorParallelError as err:
        raise TensorParallelError(f"{path}: {err}") from None
    with CheckpointTensors(path) as tensors:
        with torch.device("meta"):
            expected = {name: tuple(t.shape) for name, t in model_cls(config).state_dict().items()}
        check_checkpoint_shapes(path, hf["architectures"][0], config, expected, tensors.shapes())
        return build_shard(config, model_cls, tensors, group, dtype, device,
                           max_len or config.max_position_embeddings)


class CheckpointTensors:
    """The safetensors of an HF checkpoint directory (one file or index + shards), read one slice at a time.

    Use as a context manager: the files stay open (memory-mapped) inside it.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.file_of = _tensor_files(path)
        self._stack = ExitStack()
        self._open: dict[Path, Any] = {}

    def __enter__(self) -> CheckpointTensors:
        return self

    def __exit__(self, *exc: object) -> None:
        self._stack.close()

    def _handle(self, file: Path) -> Any:
        from safetensors import safe_open

        if file not in self._open:
            try:
                self._open[file] = self._stack.enter_context(safe_open(str(file), framework="pt", device="cpu"))
            except Exception as err:
                raise ModelLoadError(f"{file} is corrupt or not a safetensors file: {err}") from None
        return self._open[file]

    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Every tensor's shape from the file headers (no data read)."""
        return {name: tuple(self._handle(file).get_slice(name).get_shape()) for name, file in self.file_of.items()}

    def read(self, name: str, shape: tuple[int, ...], shard: Shard | None, dtype: torch.dtype,
             device: torch.device | str) -> Tensor:
        view = self._handle(self.file_of[name]).get_slice(name)
        if shard is None:
            part = view[:]
        elif shard.dim == 0:
            part = view[shard.start:shard.stop]
        else:
            part = view[:, shard.start:shard.stop]
        part = part.to(device=device, dtype=dtype)
        return part if shard is None else pad_shard(part, shard)


def _tensor_files(path: Path) -> dict[str, Path]:
    """Tensor name -> the safetensors file holding it (`model.safetensors` or the index's shards)."""
    index, single = path / "model.safetensors.index.json", path / "model.safetensors"
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text())["weight_map"]
        except (json.JSONDecodeError, KeyError) as err:
            raise ModelLoadError(f"{index} is malformed (expected a 'weight_map'): {err}") from None
        for name in sorted(set(weight_map.values())):
            if not (path / name).is_file():
                raise ModelLoadError(f"shard {path / name} listed in {index.name} does not exist")
        files = {tensor: path / name for tensor, name in weight_map.items()}
    elif single.is_file():
        from safetensors import safe_open

        try:
            with safe_open(str(single), framework="pt", device="cpu") as f:
                files = {tensor: single for tensor in f.keys()}  # noqa: SIM118 - a safetensors handle, not a dict
        except Exception as err:
            raise ModelLoadError(f"{single} is corrupt or not a safetensors file: {err}") from None
    else:
        raise ModelLoadError(f"{path} has neither model.safetensors nor model.safetensors.index.json")
    return {name: file for name, file in files.items() if not name.endswith(IGNORED_SUFFIXES)}


# ------------------------------------------------------------------------------------------ random weights


class RandomTensors:
    """Seeded random weights for timing runs (no checkpoint on disk, however large the shape).

    Tensor `name` is N(0, std), drawn whole on `device` from a seed of its own (crc32 of the name, plus `seed`), so
    every rank draws the same tensor and keeps its slice, and a model with fewer layers (a self-draft) gets the same
    embeddings, head and first layers. Norm gains are 1. The o / down projections of layers >= `scaled_from` are
    multiplied by `layer_scale`: a self-draft made of the first `scaled_from` layers then agrees with the target
    about as often as a trained pair does (the trick of `ssd.models.tiny`), so speculation has work to time.
    """

    def __init__(self, seed: int = 0, std: float = 0.02, scaled_from: int | None = None,
                 layer_scale: float = 1.0) -> None:
        self.seed, self.std, self.scaled_from, self.layer_scale = seed, std, scaled_from, layer_scale

    def read(self, name: str, shape: tuple[int, ...], shard: Shard | None, dtype: torch.dtype,
             device: torch.device | str) -> Tensor:
        if name.endswith("norm.weight"):
            full = torch.ones(shape, dtype=dtype, device=device)
        else:
            generator = torch.Generator(device=device).manual_seed(self.seed + zlib.crc32(name.encode()))
            full = torch.randn(shape, generator=generator, dtype=dtype, device=device).mul_(self.std * self._scale(name))
        return take_shard(full, shard)

    def _scale(self, name: str) -> float:
        parts = name.split(".")
        deep = (self.scaled_from is not None and name.startswith("model.layers.")
                and int(parts[2]) >= self.scaled_from and name.endswith(("o_proj.weight", "down_proj.weight")))
        return self.layer_scale if deep else 1.0


def random_model(hf_config: dict[str, Any], group: TensorParallelGroup | None, dtype: torch.dtype,
                 device: torch.device | str, max_len: int, source: RandomTensors) -> Llama:
    """This rank's shard (the whole model when `group` is None) of a Llama with this HF config and random weights."""
    config = LlamaConfig.from_hf(hf_config)
    return build_shard(config, Llama, source, group, dtype, device, max_len)
