"""Ensembles of independently trained members (Kim et al. 2025, section 4): average the predictive
distributions (probabilities, not logits) and score the average on held-out tokens.

    python -m data_constrained.ensemble members=4 model=c96 recipe=tuned

Member i is trained with seed `seed + i` (its own initialization and data order). The entry point reports the
loss of every prefix ensemble (K = 1 .. members), the input of the joint (N, K) law in `scaling.fit_joint`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from common.config import check_range, hydra_app, run_dir
from data_constrained.data import eval_windows, load_tokens
from data_constrained.train import TrainConfig, target_logprobs, train_run


def ensemble_logprobs(member_logprobs: torch.Tensor) -> torch.Tensor:
    """log of the mean member probability of each target: (K, ...) log-probs -> (...) log-probs."""
    k = member_logprobs.shape[0]
    return torch.logsumexp(member_logprobs.double(), dim=0) - math.log(k)


def ensemble_loss(member_logprobs: torch.Tensor) -> float:
    """Cross-entropy (nats/token) of the averaged predictive distribution; (K, N, T) target log-probs."""
    return -ensemble_logprobs(member_logprobs).mean().item()


class EnsembleTeacher:
    """The members' mean next-token distribution, without gradients.

    `logprobs_fn(x)` runs every member's decoder body on the batch (B, T) once and returns a callable
    rows -> (rows, V) float32 log of the mean member probability for those rows of the flattened batch, so the
    distillation loss (linear_cross_entropy) builds the teacher's distribution chunk by chunk too. Calling the
    teacher on ids gives the whole (B, T, V) log-probabilities (tests, small models). `compile_body`: run the
    members' decoder bodies through torch.compile (CUDA)."""

    def __init__(self, models: list[torch.nn.Module], compile_body: bool = False) -> None:
        self.models = [m.eval() for m in models]
        self.hidden = [torch.compile(m.hidden_states) if compile_body else m.hidden_states for m in self.models]

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        logps = torch.stack([torch.log_softmax(m(x).float(), dim=-1) for m in self.models])
        return torch.logsumexp(logps, dim=0) - math.log(len(self.models))

    @torch.no_grad()
    def logprobs_fn(self, x: torch.Tensor):
        states = [(hidden(x).flatten(0, 1), m.lm_head.weight) for hidden, m in zip(self.hidden, self.models,
                                                                                   strict=True)]
        log_k = math.log(len(self.models))

        def rows_logprobs(rows: slice) -> torch.Tensor:
            logps = [torch.log_softmax((h[rows] @ w.to(h.dtype).t()).float(), dim=-1) for h, w in states]
            return torch.logsumexp(torch.stack(logps), dim=0) - log_k

        return rows_logprobs

    def forward_flops_per_token(self, seq_len: int) -> float:
        """FLOPs of one forward pass of every member per token (a third of the training FLOPs)."""
        return sum(m.flops_per_token(seq_len) for m in self.models) / 3.0


def member_config(cfg: TrainConfig, index: int) -> TrainConfig:
    """The config of member `index`: seed and data order shifted by `index`."""
    data_seed = -1 if cfg.data_seed < 0 else cfg.data_seed + index
    name = f"{cfg.name or cfg.recipe}_member{index}"
    return replace(cfg, seed=cfg.seed + index, data_seed=data_seed, name=name)


def train_ensemble(cfg: TrainConfig, members: int, out_dir: str | Path) -> tuple[list, list[dict], dict[str, Any]]:
    """Train `members` members in `out_dir/member<i>`; returns (models, member summaries, ensemble summary)."""
    out_dir = Path(out_dir)
    models, summaries = [], []
    for i in range(members):
        model, summary = train_run(member_config(cfg, i), out_dir / f"member{i}")
        models.append(model)
        summaries.append(summary)
    return models, summaries, score_ensemble(models, cfg)


def score_ensemble(models: list[torch.nn.Module], cfg: TrainConfig) -> dict[str, Any]:
    """Held-out loss of every prefix ensemble K = 1..len(models) and of each member."""
    x, y = eval_windows(load_tokens(cfg.data, cfg.data.eval_split), cfg.seq_len, cfg.data.eval_tokens)
    device = next(models[0].parameters()).device.type
    logps = torch.stack([target_logprobs(m, x, y, cfg.batch_size, device) for m in models])
    member_losses = [-lp.mean().item() for lp in logps]
    return {
        "member_losses": member_losses,
        "mean_member_loss": sum(member_losses) / len(member_losses),
        "ensemble_losses": {str(k): ensemble_loss(logps[:k]) for k in range(1, len(models) + 1)},
        "n_params": models[0].num_params(),
    }


@dataclass
class EnsembleConfig(TrainConfig):
    members: int = 2

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("members", self.members, 1)


@hydra_app("data_constrained", "ensemble", EnsembleConfig)
def main(cfg: EnsembleConfig) -> float:
    out = run_dir()
    _, summaries, result = train_ensemble(cfg, cfg.members, out)
    (out / "ensemble.json").write_text(json.dumps({"members": summaries, **result}, indent=2) + "\n")
    print(json.dumps(result))
    return result["ensemble_losses"][str(cfg.members)]


if __name__ == "__main__":
    main()
