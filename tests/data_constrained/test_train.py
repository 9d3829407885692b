import json
from collections import Counter

import pytest
import torch

from common.checkpoint import list_checkpoints
from common.config import ConfigError, compose
from common.logging import read_metrics
from common.run_config import RUN_CONFIG, ResumeError
from data_constrained.data import eval_windows, load_tokens
from data_constrained.distill import DistillConfig
from data_constrained.ensemble import EnsembleConfig
from data_constrained.fit import FitConfig
from data_constrained.model import Transformer
from data_constrained.sweep import SweepConfig
from data_constrained.train import TrainConfig, lr_at, target_logprobs, train_run


def test_training_lowers_held_out_loss(tiny_cfg, tmp_path):
    cfg = tiny_cfg("epochs=3")
    torch.manual_seed(cfg.seed)
    x, y = eval_windows(load_tokens(cfg.data, "val"), cfg.seq_len)
    initial = -target_logprobs(Transformer(cfg.model), x, y).mean().item()
    model, summary = train_run(cfg, tmp_path)
    assert initial == pytest.approx(torch.log(torch.tensor(512.0)).item(), abs=0.3)  # ~uniform at init
    assert summary["val_loss"] < initial - 2.0
    assert summary["val_loss"] == pytest.approx(-target_logprobs(model, x, y).mean().item(), rel=1e-6)
    assert summary["tokens_per_s"] > 0 and summary["steps"] == summary["total_steps"]
    assert json.loads((tmp_path / "summary.json").read_text())["val_loss"] == summary["val_loss"]
    logged = [r for r in read_metrics(tmp_path / "metrics.jsonl") if "mfu" in r]
    assert logged and all(r["mfu"] > 0 for r in logged)


def test_resume_gives_identical_next_step_loss(tiny_cfg, tmp_path):
    common = ["log_every=1", "keep_last=0"]
    straight = tiny_cfg(*common, "max_steps=5", "save_final=false")
    train_run(straight, tmp_path / "a")
    losses_a = {r["step"]: r["train/loss"] for r in read_metrics(tmp_path / "a" / "metrics.jsonl")
                if "train/loss" in r}
    _, first = train_run(tiny_cfg(*common, "max_steps=3"), tmp_path / "b")  # checkpoint at step 3
    _, resumed = train_run(tiny_cfg(*common, "max_steps=5"), tmp_path / "b")
    losses_b = [r for r in read_metrics(tmp_path / "b" / "metrics.jsonl") if "train/loss" in r]
    assert [r["step"] for r in losses_b] == [1, 2, 3, 4, 5]
    assert losses_b[3]["train/loss"] == losses_a[4]  # bit-identical on the CPU
    assert losses_b[4]["train/loss"] == losses_a[5]
    _, again = train_run(straight, tmp_path / "c")
    assert resumed["val_loss"] == again["val_loss"]


def test_resume_refuses_a_changed_config_unless_forced(tiny_cfg, tmp_path):
    train_run(tiny_cfg("max_steps=3"), tmp_path)
    with pytest.raises(ResumeError, match=r"lr: 0\.01 -> 0\.5;.*force_resume=true"):
        train_run(tiny_cfg("max_steps=5", "lr=0.5"), tmp_path)
    with pytest.raises(ResumeError, match=r"model\.d_model: 32 -> 64, model\.n_heads: 2 -> 4;"):
        train_run(tiny_cfg("max_steps=5", "model=c64"), tmp_path)  # refused before any size-mismatch dump
    assert [p.name for p in list_checkpoints(tmp_path / "checkpoints")] == ["step_00000003.safetensors"]
    with pytest.warns(RuntimeWarning, match=r"force_resume=true: .*lr: 0\.01 -> 0\.5"):
        _, summary = train_run(tiny_cfg("max_steps=5", "lr=0.5", "force_resume=true"), tmp_path)
    assert summary["steps"] == 5 and summary["lr"] == 0.5
    assert json.loads((tmp_path / RUN_CONFIG).read_text())["config"]["lr"] == 0.5
    _, again = train_run(tiny_cfg("max_steps=5", "lr=0.5", "log_every=2", "keep_last=3", "device=cpu"), tmp_path)
    assert again["steps"] == 5  # bookkeeping keys may change; nothing left to train


def test_corrupt_latest_checkpoint_falls_back_without_duplicate_steps(tiny_cfg, tmp_path):
    common = ["log_every=1", "checkpoint_every=2", "keep_last=2"]
    train_run(tiny_cfg(*common, "max_steps=6", "save_final=false"), tmp_path / "a")
    train_run(tiny_cfg(*common, "max_steps=5", "save_final=false"), tmp_path / "b")  # checkpoints at 2 and 4
    latest = list_checkpoints(tmp_path / "b" / "checkpoints")[-1]
    latest.write_bytes(latest.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match=r"step_00000004\.safetensors is unreadable or corrupt"):
        train_run(tiny_cfg(*common, "max_steps=6", "save_final=false"), tmp_path / "b")  # resumes at step 2
    a, b = (read_metrics(tmp_path / run / "metrics.jsonl") for run in ("a", "b"))
    steps = [r["step"] for r in b if "train/loss" in r]
    assert steps == [1, 2, 3, 4, 5, 6] and max(Counter((r["step"], k) for r in b for k in r if "/" in k).values()) == 1
    assert [r["train/loss"] for r in b if "train/loss" in r] == [r["train/loss"] for r in a if "train/loss" in r]


def test_lr_schedule_warms_up_then_decays_to_floor(tiny_cfg):
    cfg = tiny_cfg("warmup_frac=0.1", "min_lr_ratio=0.1")
    lrs = [lr_at(s, 100, cfg) for s in range(100)]
    assert lrs[0] == pytest.approx(cfg.lr / 10) and lrs[9] == pytest.approx(cfg.lr)
    assert all(b <= a for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(cfg.lr * 0.1, rel=1e-3)


@pytest.mark.parametrize(("override", "key"), [
    ("model.d_model=30", "model.d_model"),
    ("weight_decay=-1", "weight_decay"),
    ("data.corpus=wiki", "data.corpus"),
    ("epochs=0", "epochs"),
    ("seq_len=1000", "seq_len"),
])
def test_bad_config_names_the_key(tiny_cfg, override, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        tiny_cfg(override)


def test_budget_larger_than_corpus_is_a_clear_error(tiny_cfg, tmp_path):
    with pytest.raises(ConfigError, match="data.token_budget"):
        train_run(tiny_cfg("data.token_budget=10000000"), tmp_path)


def test_every_entry_point_composes():
    assert compose("data_constrained", "ensemble", EnsembleConfig, ["members=3"]).members == 3
    d = compose("data_constrained", "distill", DistillConfig, ["model=c32", "model@teacher_model=c96"])
    assert (d.model.d_model, d.teacher_model.d_model) == (32, 96)
    s = compose("data_constrained", "sweep", SweepConfig, ["experiment=asymptote_cpu"])
    assert s.sizes == ["c32", "c64", "c96"] and s.data.token_budget == 4096 and s.logger.backend == "jsonl"
    g = compose("data_constrained", "sweep", SweepConfig, ["experiment=asymptote_gpu"])
    assert g.scale == "gpu" and g.compile and g.data.corpus == "packed"
    t = compose("data_constrained", "train", TrainConfig, ["experiment=train_gpu", "model=m300", "recipe=tuned"])
    assert t.model.d_model == 1024 and t.weight_decay == pytest.approx(32 * 0.1)
    with torch.device("meta"):
        assert 250e6 < Transformer(t.model).num_params() < 350e6
    assert compose("data_constrained", "fit", FitConfig, []).scale == "cpu"
    with pytest.raises(ConfigError, match="unknown model preset"):
        compose("data_constrained", "sweep", SweepConfig, ["sizes=[c32,nope]"])


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gpu_bf16_compiled_step(tiny_cfg, tmp_path):
    _, summary = train_run(tiny_cfg("device=cuda", "dtype=bfloat16", "compile=true", "max_steps=4"), tmp_path)
    assert summary["val_loss"] < 7.0 and summary["device"] != "cpu"


def test_a_run_past_its_deadline_stops_at_a_log_step_and_says_so(tiny_cfg, tmp_path):
    import time

    _, summary = train_run(tiny_cfg("log_every=3"), tmp_path, stop_at=time.monotonic())
    assert summary["timed_out"] and summary["steps"] == 3 < summary["total_steps"]
    assert summary["test_loss"] is not None and summary["scoring_dtype"] == "float32"
    assert summary["mfu"] > 0 and summary["flops_per_token"] > 0
