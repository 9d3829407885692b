"""The multi-GPU benchmark: its plan and numbers in one process, and one whole run over gloo on 3 CPU processes
(TP 1 and 2 with the draft on rank TP) whose results file has the headline keys and only lossless runs."""

import json

import pytest
import torch
import torch.multiprocessing as mp

from common.config import compose
from ssd.engine.tensor_parallel import shard_config
from ssd.models.llama import Llama, LlamaConfig
from ssd.multigpu_bench import (
    RANDOM_SHAPES,
    MultiGPUBenchConfig,
    block_order,
    headline,
    run_multigpu_bench,
    shard_bytes,
)

PRELOAD = ["torch", "torch._dynamo", "safetensors.torch", "ssd.engine.distributed"]  # see test_tensor_parallel.py


@pytest.mark.parametrize("overrides", [[], ["experiment=multigpu_cpu"]])
def test_configs_compose(overrides):
    cfg = compose("ssd", "multigpu_bench", MultiGPUBenchConfig, overrides + ["logger=jsonl"])
    assert cfg.scale == ("cpu" if overrides else "gpu")


def test_block_order_puts_the_headline_blocks_first():
    assert block_order([1, 2, 4], 8, True, True) == [("pair", 1), ("random", 4), ("pair", 2), ("pair", 4),
                                                     ("random", 1), ("random", 2)]
    # 4 GPUs: TP4 leaves no GPU for the draft, so the random target's headline block is TP2
    assert block_order([1, 2, 4], 4, True, True)[:2] == [("pair", 1), ("random", 2)]
    assert block_order([1, 2, 4], 2, False, True) == [("random", 1), ("random", 2)]


@pytest.mark.parametrize(("shape", "tp"), [("8b", 1), ("8b", 4), ("1b", 2), ("toy", 2)])
def test_shard_bytes_count_the_parameters_of_a_shard(shape, tp):
    config = LlamaConfig.from_hf(RANDOM_SHAPES[shape])
    with torch.device("meta"):
        local = Llama(shard_config(config, tp))
    seen, count = set(), 0
    for name, p in local.named_parameters():
        if id(p) not in seen:
            seen.add(id(p))
            count += -(-config.vocab_size // tp) * config.hidden_size if name == "lm_head.weight" and tp > 1 \
                else p.numel()
    if config.tie_word_embeddings and tp > 1:
        count += -(-config.vocab_size // tp) * config.hidden_size  # the vocab-parallel head is a slice of its own
    assert shard_bytes(RANDOM_SHAPES[shape], tp, 2) == 2 * count


def test_headline_ratios_from_runs():
    runs = [{"model": "pair", "tensor_parallel": 1, "strategy": s, "batch": 1, "tokens_per_s": v}
            for s, v in (("ar", 100.0), ("sd", 150.0), ("ssd", 120.0), ("sd_own", 140.0), ("ssd_own", 300.0))]
    runs[-1]["cache_hit_rate"] = 0.9
    steps = [{"model": "pair", "tensor_parallel": 1, "batch": 1, "verify_over_draft": 6.0}]
    head = headline(runs, steps)
    assert head["ssd_speedup_vs_sd_own_gpu"] == 2.0 and head["ssd_speedup_vs_ar_own_gpu"] == 3.0
    assert head["ssd_own_speedup_vs_sd_own"] == 300 / 140 and head["ssd_own_speedup_vs_ssd_one_gpu"] == 2.5
    assert head["cache_hit_rate_ssd_own"] == 0.9 and head["verify_over_draft"] == 6.0
    assert head["gain_vs_latency_ratio"] == [{"model": "pair", "tensor_parallel": 1, "batch": 1,
                                              "verify_over_draft": 6.0, "ssd_own_vs_sd": 2.0, "ssd_own_vs_ar": 3.0}]
    assert not any(key.startswith("random_") for key in head)


def _bench_worker(rank, world, init_file, cfg, log_dir):
    torch.set_num_threads(1)
    from ssd.engine.distributed import init_process_group

    init_process_group("cpu", init_method=f"file://{init_file}", rank=rank, world_size=world)
    run_multigpu_bench(cfg, log_dir)


def test_whole_run_over_gloo(llama_pair, tmp_path):
    target, draft = llama_pair
    cfg = compose("ssd", "multigpu_bench", MultiGPUBenchConfig,
                  ["experiment=multigpu_cpu", "model=path", f"model.path={target}", f"model.draft_path={draft}",
                   "strategies=[ar,sd,sd_own,ssd_own]", "sweep_strategies=[ar,ssd_own]", "batch_sizes=[1,2]",
                   "random_target.batch_sizes=[1]", "sampling.max_new_tokens=6", f"results_root={tmp_path}",
                   "logger=jsonl"])
    mp.set_forkserver_preload(PRELOAD)
    mp.start_processes(_bench_worker, args=(3, str(tmp_path / "pg"), cfg, str(tmp_path / "log")), nprocs=3,
                       join=True, start_method="forkserver")
    metrics = json.loads((tmp_path / "experiments/ssd/results/multigpu_cpu.json").read_text())["metrics"]
    assert metrics["complete"] and not metrics["errors"] and metrics["world_size"] == 3
    for key in ("ssd_speedup_vs_sd_own_gpu", "ssd_speedup_vs_ar_own_gpu", "random_ssd_speedup_vs_sd_own_gpu"):
        assert metrics[key] > 0
    assert metrics["headline_tensor_parallel"] == 1 and metrics["random_headline_tensor_parallel"] == 2
    runs = metrics["runs"]
    assert {(r["model"], r["tensor_parallel"]) for r in runs} == {("pair", 1), ("pair", 2), ("random_toy", 1),
                                                                 ("random_toy", 2)}
    assert {r["gpus"] for r in runs if r["strategy"].endswith("_own") and r["tensor_parallel"] == 2} == {3}
    assert all(r["fraction_identical_to_ar"] == 1.0 for r in runs if r["strategy"] != "ar")  # greedy: lossless
    assert all(s["verify_over_draft"] > 0 for s in metrics["steps"])
    # one point per (model, TP, batch) that ssd_own ran at: the pair at batch 1 and 2, the random target at batch 1
    assert len(metrics["gain_vs_latency_ratio"]) == 2 * 2 + 2 * 1
