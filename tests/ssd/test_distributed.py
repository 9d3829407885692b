"""The draft-on-its-own-device layout: two processes over gloo give the single-process greedy output."""

import json

import pytest
import torch.multiprocessing as mp

from ssd.engine.llm import LLM
from ssd.engine.sampler import SamplingParams

PROMPTS = [[5, 6, 7], [100, 3]]
PRELOAD = ["torch", "torch._dynamo", "safetensors.torch", "ssd.engine.distributed"]  # see test_tensor_parallel.py


def _worker(rank, target, draft, init_file, out_file):
    import torch

    torch.set_num_threads(1)
    from ssd.engine.distributed import generate_distributed, init_process_group

    init_process_group("cpu", init_method=f"file://{init_file}", rank=rank, world_size=2)
    params = SamplingParams(temperature=0, max_new_tokens=20, ignore_eos=True)
    got = generate_distributed(target, draft, PROMPTS, params, k=3, max_len=96, budget=8)
    if rank == 0:
        seqs, telemetry = got
        with open(out_file, "w") as f:
            json.dump({"outputs": [s.output_ids for s in seqs], "telemetry": telemetry}, f)
    import torch.distributed as dist

    dist.destroy_process_group()


def test_two_process_ssd_matches_single_process(llama_pair, tmp_path):
    target, draft = llama_pair
    out_file = tmp_path / "out.json"
    mp.set_forkserver_preload(PRELOAD)  # processes forked from one server that imported torch once (like mp.spawn)
    mp.start_processes(_worker, args=(str(target), str(draft), str(tmp_path / "pg"), str(out_file)), nprocs=2,
                       join=True, start_method="forkserver")
    result = json.loads(out_file.read_text())
    single = LLM(target, strategy="ar", device="cpu", max_len=96, max_batch_size=2)
    reference = [o.token_ids for o in single.generate(PROMPTS, SamplingParams(temperature=0, max_new_tokens=20,
                                                                              ignore_eos=True))]
    assert result["outputs"] == reference
    tel = result["telemetry"]
    assert tel["cache_lookups"] > 0 and 0 <= tel["cache_hit_rate"] <= 1
    assert tel["generated_tokens"] == 40


def test_parallel_launch_options_are_checked():
    from common.config import ConfigError, compose
    from ssd.generate import GenerateConfig

    cfg = compose("ssd", "generate", GenerateConfig, ["parallel.tensor_parallel=4", "logger=jsonl"])
    assert (cfg.parallel.tensor_parallel, cfg.parallel.draft) == (4, "own")
    with pytest.raises(ConfigError, match="parallel.draft"):
        compose("ssd", "generate", GenerateConfig, ["parallel.draft=both", "logger=jsonl"])
    with pytest.raises(ConfigError, match="parallel.tensor_parallel"):
        compose("ssd", "generate", GenerateConfig, ["parallel.tensor_parallel=-1", "logger=jsonl"])
