"""End to end at a tiny scale: collect -> train (resumable, collapse diagnostics) -> plan -> probe/surprise ->
summary, the patch-token model on the frozen encoder, and pretrain on digits."""

import json

import pytest

from common.config import compose
from common.run_config import ResumeError
from lejepa.collect import CollectConfig
from lejepa.envs.dataset import collect_dataset
from lejepa.plan import PlanConfig, run_planning
from lejepa.pretrain import PretrainConfig, pretrain
from lejepa.summarize import summarize
from lejepa.surprise import SurpriseConfig, run_surprise
from lejepa.train import TrainConfig, train

TINY_MODEL = ["model.encoder.image_size=16", "model.encoder.patch_size=4", "model.encoder.width=32",
              "model.encoder.depth=1", "model.encoder.heads=2", "model.encoder.projector_hidden=64",
              "model.encoder.latent_dim=16", "model.predictor.latent_dim=16", "model.predictor.width=32",
              "model.predictor.depth=1", "model.predictor.heads=2", "model.sigreg_directions=16",
              "model.decoder_width=8"]
TINY_PLAN = ["planner.samples=8", "planner.elites=2", "planner.iterations=2", "episodes=2", "val_episodes=4"]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    path = tmp_path_factory.mktemp("two_room")
    collect_dataset("two_room", "noisy_expert", episodes=12, steps=30, seed=0, image_size=16, out_dir=path)
    return path


def test_collect_config_default_dir():
    cfg = compose("lejepa", "collect", CollectConfig, ["logger=jsonl"])
    assert cfg.env == "two_room" and cfg.policy == "noisy_expert"


def test_train_resume_plan_surprise_summary(dataset, tmp_path):
    ckpt = tmp_path / "ckpt"
    base = ["logger=jsonl", "logger.progress=false", f"data.dir={dataset}", "data.val_episodes=4",
            f"ckpt_dir={ckpt}", "optim.batch_size=8", "optim.warmup=1", "ckpt_every=2", "write_results=false",
            "diagnostics.every=2", "diagnostics.frames=32", "diagnostics.probe_frames=32", *TINY_MODEL]
    first = train(compose("lejepa", "train", TrainConfig, [*base, "optim.steps=4"]), out_dir=tmp_path / "r1")
    assert first["resumed_from"] == 0 and (ckpt / "train_summary.json").exists() and first["complete"]
    assert [d["step"] for d in first["diagnostics"]] == [2, 4]
    assert {"latent_std", "unit_variance_rank", "standardized_effective_rank", "sigreg", "probe_r2_mean"} <= \
        set(first["diagnostics"][0])
    with pytest.raises(ResumeError, match=r"optim.steps: 4 -> 6.*force_resume=true"):  # a longer schedule
        train(compose("lejepa", "train", TrainConfig, [*base, "optim.steps=6"]), out_dir=tmp_path / "r2")
    second = train(compose("lejepa", "train", TrainConfig, [*base, "optim.steps=6", "force_resume=true"]),
                   out_dir=tmp_path / "r2")
    assert second["resumed_from"] == 4 and second["history"][-1]["step"] == 5
    assert [d["step"] for d in second["diagnostics"]] == [2, 4, 6]  # earlier launches' curves are kept

    plan = run_planning(compose("lejepa", "plan", PlanConfig, ["logger=jsonl", f"ckpt={ckpt}",
                                                               f"data_dir={dataset}", *TINY_PLAN]))
    assert 0.0 <= plan["success_rate"] <= 1.0 and plan["planning_calls"] == 2 and plan["plan_s_per_call"] > 0
    assert plan["frameskip"] == 5 and plan["history"] == 3

    out = run_surprise(compose("lejepa", "surprise", SurpriseConfig, [
        "logger=jsonl", f"ckpt={ckpt}", f"data_dir={dataset}", "episodes=3", "steps=6",
        "probe_train_episodes=8", "val_episodes=4"]))
    assert set(out["probe_r2"]) == {"x", "y"} and out["history"] == 3
    for event in ("teleport", "color"):
        assert 0.0 <= out[f"auroc_{event}"] <= 1.0 and len(out[f"trace_{event}"]) == 6
    json.dumps(out)

    from common.results import write_result

    for kind, metrics in (("train", second), ("plan", plan), ("surprise", out)):
        write_result("lejepa", f"{kind}_two_room_lewm_s0", "tiny", metrics, root=tmp_path)
    summary = summarize(tmp_path / "experiments" / "lejepa" / "results", "tiny")
    assert summary["success_two_room_lewm"] == plan["success_rate"]
    assert summary["plan_time_s_two_room_lewm"] == plan["plan_s_per_problem"]
    assert summary["surprise_auroc_two_room_teleport"] == out["auroc_teleport"]
    assert [p["step"] for p in summary["collapse_two_room"]["lambda_0p09"]["points"]] == [2, 4, 6]

    patch = tmp_path / "patch"
    train(compose("lejepa", "train", TrainConfig, [
        *[b for b in base if not b.startswith(("ckpt_dir", "diagnostics"))], f"ckpt_dir={patch}", "optim.steps=2",
        "model.objective=patch_wm", f"model.patch_encoder_ckpt={ckpt}", "model.predictor.latent_dim=32"]),
        out_dir=tmp_path / "r3")
    plan_patch = run_planning(compose("lejepa", "plan", PlanConfig, ["logger=jsonl", f"ckpt={patch}",
                                                                     f"data_dir={dataset}", *TINY_PLAN]))
    assert plan_patch["objective"] == "patch_wm" and plan_patch["plan_s_per_call"] > 0


def test_missing_checkpoint_and_dataset_errors(tmp_path):
    from common.checkpoint import CheckpointError
    from lejepa.envs.dataset import DatasetError

    with pytest.raises(CheckpointError, match="no checkpoint"):
        run_planning(compose("lejepa", "plan", PlanConfig, ["logger=jsonl", f"ckpt={tmp_path}"]))
    with pytest.raises(DatasetError, match="lejepa.collect"):
        train(compose("lejepa", "train", TrainConfig, ["logger=jsonl", f"data.dir={tmp_path}/none",
                                                       *TINY_MODEL]), out_dir=tmp_path)


def test_pretrain_on_digits_runs_and_reports(tmp_path):
    cfg = compose("lejepa", "pretrain", PretrainConfig, [
        "logger=jsonl", "logger.progress=false", "data.source=digits", "data.test_size=200",
        "encoder.image_size=16", "encoder.patch_size=4", "encoder.width=32", "encoder.depth=1", "encoder.heads=2",
        "encoder.projector_hidden=64", "encoder.latent_dim=8", "steps=6", "batch_size=32", "write_results=false"])
    metrics = pretrain(cfg, out_dir=tmp_path)
    assert 0.0 <= metrics["probe_accuracy"] <= 1.0 and metrics["embedding_dim"] == 8
    assert 1 <= metrics["embedding_rank"] <= 8 and len(metrics["history"]) >= 1
