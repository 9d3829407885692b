"""Every entry point composes; a bad config value raises one clear ConfigError naming the key."""

import re

import pytest

from common.config import ConfigError, compose
from dmpc.config import CollectConfig, EvaluateConfig, TrainConfig

ENTRIES = {"collect": CollectConfig, "train": TrainConfig, "evaluate": EvaluateConfig}


@pytest.mark.parametrize("entry", sorted(ENTRIES))
def test_entry_points_compose_at_both_scales(entry):
    cpu = compose("dmpc", entry, ENTRIES[entry], ["logger=jsonl"])
    gpu = compose("dmpc", entry, ENTRIES[entry], ["logger=jsonl", "scale=gpu"])
    assert cpu.scale == "cpu" and gpu.scale == "gpu"
    assert cpu.sizes != gpu.sizes


def test_experiment_configs_compose():
    jump = compose("dmpc", "evaluate", EvaluateConfig, ["logger=jsonl", "experiment=jump"])
    assert jump.env == "walker2d_jump" and jump.reward == "jump" and jump.task == "walker2d"
    ankle = compose("dmpc", "evaluate", EvaluateConfig,
                    ["logger=jsonl", "experiment=broken_ankle", "+extra_model_dirs.finetuned=/x"])
    assert ankle.env == "walker2d_broken_ankle" and ankle.extra_model_dirs == {"finetuned": "/x"}


@pytest.mark.parametrize("entry, override, key", [
    ("collect", "task=ant", "task"),
    ("collect", "scale=tpu", "scale"),
    ("train", "scales.cpu.proposal.sample_steps=1000", "scales.cpu.proposal.sample_steps"),
    ("train", "scales.cpu.dynamics.denoiser=unet3d", "scales.cpu.dynamics.denoiser"),
    ("train", "gamma=1.5", "gamma"),
    ("evaluate", "methods=[dmpc,ppo]", "methods[]"),
    ("evaluate", "reward=sparse", "reward"),
])
def test_bad_value_names_the_key(entry, override, key):
    with pytest.raises(ConfigError, match="^" + re.escape(key) + "="):
        compose("dmpc", entry, ENTRIES[entry], ["logger=jsonl", override])
