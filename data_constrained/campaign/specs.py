"""One run of a campaign (`RunSpec`), the `TrainConfig` it trains, its id, and what it costs.

A run's id is the sha256 (16 hex digits) of its training config without the keys that may change on resume
(`train.RESUME_IGNORED`: devices, logging, checkpoint cadence, ...), plus the ids of its distillation teachers or
of the run whose weights it starts from. Two groups that ask for the same config therefore share one run, and a
changed config (another learning rate, data slice, batch size) is another run: finished results are never reused
for a config they were not made with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from functools import cache
from typing import Any

from common.run_config import config_hash, without_keys
from data_constrained.campaign.config import CampaignConfig
from data_constrained.data import DataConfig, corpus_dir, read_pack_meta
from data_constrained.presets import model_preset
from data_constrained.train import RESUME_IGNORED, TrainConfig, resume_config

MAIN, CPT = "main", "cpt"
TRAIN, DISTILL, SELF_DISTILL = "train", "distill", "selfdistill"
SEARCH, REPLICATE, STUDENT = "search", "replicate", "student"


@dataclass(frozen=True)
class RunSpec:
    """What to train and why. `group`/`role` are labels (which search or experiment asked for it); the training
    config comes from the other fields. `scale` multiplies the corpus's base budget (D0, or the cpt budget);
    `teachers`: the ensemble a student distils from; `init`: the run whose final weights this one starts from."""

    group: str
    role: str
    recipe: str
    size: str
    weight_decay: float
    epochs: float
    lr: float
    scale: float = 1.0
    seed: int = 0
    corpus: str = MAIN
    kind: str = TRAIN
    teachers: tuple[RunSpec, ...] = ()
    init: RunSpec | None = None

    def label(self) -> str:
        return (f"{self.group}:{self.role} {self.size} wd={self.weight_decay:g} ep={self.epochs:g} lr={self.lr:g} "
                f"D={self.scale:g}x s{self.seed}")


class Campaign:
    """The campaign's settings and the base training config every run derives from."""

    def __init__(self, settings: CampaignConfig, base: TrainConfig) -> None:
        self.settings, self.base = settings, base
        self._ids: dict[RunSpec, str] = {}

    def train_config(self, spec: RunSpec, init_path: str = "") -> TrainConfig:
        """The TrainConfig of `spec`. `init_path`: the checkpoint of `spec.init` (symbolic `run:<id>` when
        computing ids, so ids do not depend on where a chunk keeps its checkpoints)."""
        data = self.base.data if spec.corpus == MAIN else self.settings.cpt_data
        budget = max(self.base.seq_len + 1, round(data.token_budget * spec.scale))
        model = model_preset(spec.size)
        if spec.corpus == CPT:
            model = replace(model, vocab_size=max(model.vocab_size, self.base.model.vocab_size))
        init_from = ""
        if spec.init is not None:
            init_from = init_path or f"run:{self.run_id(spec.init)}"
        return replace(self.base, model=model, recipe=spec.recipe, weight_decay=spec.weight_decay,
                       epochs=spec.epochs, lr=spec.lr, seed=spec.seed, data_seed=-1,
                       data=replace(data, token_budget=budget), init_from=init_from, name="", max_steps=0,
                       save_logprobs=self.keeps_logprobs(spec), record_dir="", export_hf=False, resume=True)

    @staticmethod
    def keeps_logprobs(spec: RunSpec) -> bool:
        """Whether the run keeps its per-token test log-probs: the members of the ensembles scored later (the
        tuned replicates, English and continued pre-training); every other run keeps its test loss only."""
        return spec.role == REPLICATE and spec.recipe == "tuned"

    def distill_weights(self, spec: RunSpec) -> tuple[float, float]:
        """(alpha, temperature) of a student's loss; (0, 1) for a plain run."""
        if spec.kind == TRAIN:
            return 0.0, 1.0
        return self.settings.distill_alpha, self.settings.distill_temperature

    def identity(self, spec: RunSpec) -> dict[str, Any]:
        """What a run's id is the hash of (see the module docstring)."""
        alpha, temperature = self.distill_weights(spec)
        config = resume_config(self.train_config(spec), spec.kind != TRAIN, alpha, temperature)
        return {"config": without_keys(config, RESUME_IGNORED), "kind": spec.kind,
                "teachers": [self.run_id(t) for t in spec.teachers],
                "init": self.run_id(spec.init) if spec.init is not None else None}

    def run_id(self, spec: RunSpec) -> str:
        if spec not in self._ids:
            self._ids[spec] = config_hash(self.identity(spec), ())[:16]
        return self._ids[spec]

    def tokens_trained(self, spec: RunSpec) -> int:
        """Tokens the run trains on (total steps x global batch x seq_len), as train_run counts them."""
        cfg = self.train_config(spec)
        n_windows = (cfg.data.token_budget - 1) // cfg.seq_len
        global_batch = cfg.batch_size * cfg.grad_accum
        return max(1, int(cfg.epochs * n_windows) // global_batch) * global_batch * cfg.seq_len

    def eval_tokens(self, spec: RunSpec) -> int:
        """Held-out tokens the run scores at its end (validation + test); where the corpus is not here (planning
        on another machine), the configured counts, or `UNKNOWN_SPLIT_TOKENS` for "all of it"."""
        data = self.base.data if spec.corpus == MAIN else self.settings.cpt_data
        total = _held_out(data, data.eval_split, data.eval_tokens)
        if data.test_split:
            total += _held_out(data, data.test_split, data.test_tokens)
        return total


UNKNOWN_SPLIT_TOKENS = 2**19


def _held_out(data: DataConfig, split: str, limit: int) -> int:
    available = split_tokens(data, split)
    if available is None:
        return limit or UNKNOWN_SPLIT_TOKENS
    return min(limit, available) if limit else available


@cache
def model_counts(size: str, seq_len: int) -> tuple[int, float]:
    """(total parameters, training FLOPs per token) of a model preset (from its config; nothing is built)."""
    model = model_preset(size)
    return model.num_params(non_embedding=False), model.flops_per_token(seq_len)


def split_tokens(data: DataConfig, split: str) -> int | None:
    """Tokens in a held-out split, read from the packed meta.json or the corpus manifest (no token is loaded);
    None when the corpus is not on this machine."""
    if data.corpus == "tiny":
        corpus_dir(data)  # built on first use
    return _split_tokens(str(corpus_dir(data)), data.corpus == "packed", split)


@cache
def _split_tokens(path: str, packed: bool, split: str) -> int | None:
    from pathlib import Path

    if "+" in split:
        parts = [_split_tokens(path, packed, part) for part in split.split("+")]
        return None if None in parts else sum(parts)
    meta = Path(path) / ("meta.json" if packed else "manifest.json")
    if not meta.is_file():
        return None
    if packed:
        return int(read_pack_meta(Path(path))["splits"][split]["tokens"])
    return int(json.loads(meta.read_text())["splits"][split]["tokens"])
