"""Every entry point composes; a bad config value raises one clear ConfigError naming the key."""

import re

import pytest

from common.config import ConfigError, compose
from dmpc.config import BenchConfig, CollectConfig, DistillConfig, EvaluateConfig, TrainConfig

ENTRIES = {"collect": CollectConfig, "train": TrainConfig, "evaluate": EvaluateConfig, "bench": BenchConfig,
           "distill": DistillConfig}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_entry_points_compose_at_both_scales(entry):
    cpu = compose("dmpc", entry, ENTRIES[entry], ["logger=jsonl"])
    gpu = compose("dmpc", entry, ENTRIES[entry], ["logger=jsonl", "scale=gpu"])
    assert cpu.scale == "cpu" and gpu.scale == "gpu"
    assert cpu.sizes != gpu.sizes


def test_distill_writes_results_only_when_asked():
    cfg = compose("dmpc", "distill", DistillConfig, ["logger=jsonl"])
    assert not cfg.write_results and cfg.sizes.rounds >= 1 and cfg.sizes.label_batch == 1
    assert "dmpc_distilled" in compose("dmpc", "evaluate", EvaluateConfig, ["logger=jsonl",
                                                                            "methods=[dmpc_distilled]"]).methods


def test_experiment_configs_compose():
    jump = compose("dmpc", "evaluate", EvaluateConfig, ["logger=jsonl", "experiment=jump"])
    assert jump.env == "walker2d_jump" and jump.reward == "jump" and jump.task == "walker2d"
    ankle = compose("dmpc", "evaluate", EvaluateConfig,
                    ["logger=jsonl", "experiment=broken_ankle", "+extra_model_dirs.finetuned=/x"])
    assert ankle.env == "walker2d_broken_ankle" and ankle.extra_model_dirs == {"finetuned": "/x"}
    distilled = compose("dmpc", "evaluate", EvaluateConfig, ["logger=jsonl", "experiment=distill_eval"])
    assert distilled.methods == ["dmpc", "dmpc_distilled", "bc"] and distilled.experiment == "distill_eval_hopper_medium"


def test_data_factory_composes_into_sub_ten_minute_chunks():
    cfg = compose("dmpc", "collect", CollectConfig, ["logger=jsonl", "experiment=data_factory", "mode=train"])
    assert cfg.scale == "gpu" and cfg.run_tasks == ["hopper", "walker2d", "halfcheetah"]
    assert 0 < cfg.time_budget_s <= 450 and cfg.sizes.sac_steps == 1_000_000 and cfg.sizes.eval_episodes >= 10
    assert cfg.sizes.n_transitions == 1_000_000 and cfg.sizes.max_episode_steps == 1000
    assert cfg.export_policies.format(task="hopper") == "experiments/dmpc/policies/hopper_gpu"
    assert cfg.sac_run_dir().name == "sac_gpu_hopper-walker2d-halfcheetah_s0"


@pytest.mark.parametrize("entry, override, key", [
    ("collect", "task=ant", "task"),
    ("collect", "scale=tpu", "scale"),
    ("collect", "scales.cpu.block=7", "scales.cpu.sac_steps"),
    ("collect", "tasks=[hopper,hopper]", "tasks"),
    ("collect", "tasks=[walker2d_jump]", "tasks[]"),
    ("bench", "tasks=[ant]", "tasks[]"),
    ("train", "scales.cpu.proposal.sample_steps=1000", "scales.cpu.proposal.sample_steps"),
    ("train", "scales.cpu.dynamics.denoiser=unet3d", "scales.cpu.dynamics.denoiser"),
    ("train", "gamma=1.5", "gamma"),
    ("train", "scales.cpu.val_fraction=0.9", "scales.cpu.val_fraction"),
    ("train", "time_budget_s=-1", "time_budget_s"),
    ("evaluate", "proposal_eta=2", "proposal_eta"),
    ("evaluate", "proposal_steps=0", "proposal_steps"),
    ("evaluate", "scales.cpu.diagnostic_every=0", "scales.cpu.diagnostic_every"),
    ("evaluate", "methods=[dmpc,ppo]", "methods[]"),
    ("evaluate", "reward=sparse", "reward"),
    ("evaluate", "methods=[dmpc_distilled,nope]", "methods[]"),
    ("distill", "scales.cpu.rounds=-1", "scales.cpu.rounds"),
    ("distill", "scales.cpu.val_fraction=0", "scales.cpu.val_fraction"),
    ("distill", "scales.cpu.label_batch=0", "scales.cpu.label_batch"),
    ("distill", "proposal_eta=2", "proposal_eta"),
])
def test_bad_value_names_the_key(entry, override, key):
    with pytest.raises(ConfigError, match="^" + re.escape(key) + "="):
        compose("dmpc", entry, ENTRIES[entry], ["logger=jsonl", override])
