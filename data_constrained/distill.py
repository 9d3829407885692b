"""Distillation (Kim et al. 2025, section 5): an ensemble -> one student, and a model -> a fresh copy of itself.

    python -m data_constrained.distill teacher_members=2 model=c64 model@teacher_model=c64   # ensemble -> student
    python -m data_constrained.distill teacher_members=1 model=c64 model@teacher_model=c64   # self-distillation

The student is trained on the same fixed tokens with loss (1 - alpha) * CE(data) + alpha * KL(teacher || student).
"Retained" is the fraction of the teacher's gain over a plainly trained student of the same size that the
distilled student keeps: (L_plain - L_student) / (L_plain - L_teacher).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from common.config import check_range, hydra_app, run_dir
from data_constrained.ensemble import EnsembleTeacher, score_ensemble, train_ensemble
from data_constrained.model import ModelConfig
from data_constrained.train import TrainConfig, check_model_extras, distill_kl, train_run

__all__ = ["DistillConfig", "distill", "distill_kl", "retained_fraction"]


@dataclass
class DistillConfig(TrainConfig):
    """`model` is the student; the teacher is `teacher_members` models of `teacher_model` (same recipe)."""

    teacher_model: ModelConfig = field(default_factory=ModelConfig)
    teacher_members: int = 2
    alpha: float = 0.5
    temperature: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("teacher_members", self.teacher_members, 1)
        check_range("alpha", self.alpha, 0.0, 1.0)
        check_range("temperature", self.temperature, 0.0, low_open=True)
        check_model_extras("teacher_model", self.teacher_model)


def retained_fraction(plain_loss: float, student_loss: float, teacher_loss: float) -> float:
    """(L_plain - L_student) / (L_plain - L_teacher): 1 = the student matches the teacher, 0 = no gain;
    NaN when the teacher is no better than the plain student (self-distillation: report the gain instead)."""
    gain = plain_loss - teacher_loss
    return (plain_loss - student_loss) / gain if abs(gain) > 1e-4 else float("nan")


def distill(cfg: TrainConfig, teacher_models: list, out_dir: str | Path, alpha: float = 0.5,
            temperature: float = 1.0, plain_loss: float | None = None) -> dict[str, Any]:
    """Train a student (`cfg.model`) against the averaged distribution of `teacher_models`.

    `plain_loss`: the held-out loss of the same student trained without a teacher (trained here when None)."""
    out_dir = Path(out_dir)
    teacher = EnsembleTeacher(teacher_models)
    teacher_loss = score_ensemble(teacher_models, cfg)["ensemble_losses"][str(len(teacher_models))]
    if plain_loss is None:
        _, plain = train_run(replace(cfg, name=f"{cfg.name or cfg.recipe}_plain"), out_dir / "plain")
        plain_loss = plain["val_loss"]
    _, student = train_run(replace(cfg, name=f"{cfg.name or cfg.recipe}_student"), out_dir / "student",
                           teacher=teacher, distill_alpha=alpha, distill_temperature=temperature)
    return {
        "teacher_members": len(teacher_models),
        "teacher_n_params": teacher_models[0].num_params(),
        "student_n_params": student["n_params"],
        "teacher_loss": teacher_loss,
        "plain_student_loss": plain_loss,
        "student_loss": student["val_loss"],
        "retained": retained_fraction(plain_loss, student["val_loss"], teacher_loss),
        "alpha": alpha,
        "temperature": temperature,
    }


@hydra_app("data_constrained", "distill", DistillConfig)
def main(cfg: DistillConfig) -> float:
    out = run_dir()
    teacher_cfg = replace(cfg, model=cfg.teacher_model, name="teacher")
    teachers, _, _ = train_ensemble(teacher_cfg, cfg.teacher_members, out / "teacher")
    result = distill(cfg, teachers, out, cfg.alpha, cfg.temperature)
    (out / "distill.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))
    return result["student_loss"]


if __name__ == "__main__":
    main()
