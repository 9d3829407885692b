"""Entry points: every config composes; generate streams; bench writes results JSON that plot draws from."""

import io
import json

import pytest

from common.config import ConfigError, compose
from ssd.bench import run_bench
from ssd.bench_config import BenchConfig
from ssd.generate import GenerateConfig, run
from ssd.make_tiny import MakeTinyConfig
from ssd.plot import PlotConfig, plot_all


@pytest.mark.parametrize(("entry", "schema", "overrides"), [
    ("generate", GenerateConfig, ["decoding.strategy=sd", "model=tiny_qwen3"]),
    ("bench", BenchConfig, ["experiment=reproduce_cpu"]),
    ("bench", BenchConfig, ["experiment=reproduce_gpu"]),
    ("bench", BenchConfig, ["experiment=trained_cpu"]),
    ("bench", BenchConfig, ["experiment=bench_cpu"]),
    ("bench", BenchConfig, ["experiment=bench_gpu"]),
    ("make_tiny", MakeTinyConfig, []),
    ("plot", PlotConfig, []),
])
def test_configs_compose(entry, schema, overrides):
    cfg = compose("ssd", entry, schema, overrides + ["logger=jsonl"])
    assert isinstance(cfg, schema)


def test_bad_config_values_name_the_key():
    with pytest.raises(ConfigError, match="decoding.strategy"):
        compose("ssd", "generate", GenerateConfig, ["decoding.strategy=beam", "logger=jsonl"])
    with pytest.raises(ConfigError, match="decoding.saguaro_c"):
        compose("ssd", "generate", GenerateConfig, ["decoding.saguaro_c=0", "logger=jsonl"])
    with pytest.raises(ConfigError, match="model.path is required"):
        compose("ssd", "generate", GenerateConfig, ["model=path", "model.path=null", "logger=jsonl"])


def test_generate_streams_tokens(llama_pair):
    target, draft = llama_pair
    cfg = compose("ssd", "generate", GenerateConfig,
                  ["model=path", f"model.path={target}", f"model.draft_path={draft}", "runtime.device=cpu",
                   "runtime.max_len=128", "sampling.max_new_tokens=10", "sampling.ignore_eos=true",
                   "logger=jsonl"])
    out = io.StringIO()
    result = run(cfg, out=out)
    assert len(result["token_ids"]) == 10
    assert out.getvalue().rstrip("\n") == result["text"]
    assert result["telemetry"]["strategy"] == "ssd"


def test_bench_writes_results_and_figures(llama_pair, tmp_path):
    target, draft = llama_pair
    cfg = compose("ssd", "bench", BenchConfig,
                  ["model=path", f"model.path={target}", f"model.draft_path={draft}", "runtime.device=cpu",
                   "runtime.max_len=96", "sampling.max_new_tokens=8", "repeats=1", "prompts=[Hello,World]",
                   "sweep_budgets=[4,8]", "sweep_saguaro_c=[1.0,0.5]", "batch_sizes=[2]",
                   f"results_root={tmp_path}", "logger=jsonl"])
    written = run_bench(cfg, tmp_path / "run")
    speed = json.loads(written["speedup"].read_text())
    assert speed["scale"] == "cpu" and speed["paper"]["tokens_per_s"]["ssd"] == 262
    metrics = speed["metrics"]
    assert metrics["sd"]["greedy_identical_to_ar"] and metrics["ssd"]["greedy_identical_to_ar"]
    assert metrics["ar"]["ratio_vs_ar"] == 1.0 and 0 <= metrics["ssd"]["cache_hit_rate"] <= 1
    # the derived CPU numbers the status table cites come from the timed SSD run
    assert metrics["ssd"]["async_ratio_vs_sd"] > 0 and metrics["ssd"]["hidden_draft_ratio_vs_ar"] > 0
    hits = json.loads(written["cache_hit_vs_fanout"].read_text())["metrics"]
    assert hits["budget"] == [4, 8] and [sum(f) for f in hits["fanout"]] == [4, 8]
    figures = plot_all("cpu", tmp_path)
    assert {p.name for p in figures} == {"speedup_cpu.png", "cache_hit_vs_fanout_cpu.png", "saguaro_c_cpu.png",
                                         "batch_cpu.png"}


def test_divergence_report_finds_position_and_margin(llama_pair):
    import torch
    from transformers import AutoModelForCausalLM

    from ssd.bench_sections import divergence_report
    from ssd.engine.llm import LLM
    from ssd.engine.sampler import SamplingParams

    llm = LLM(llama_pair[0], strategy="ar", device="cpu", max_len=64)
    prompts = [[4, 8, 15], [16, 23]]
    ref = [o.token_ids for o in llm.generate(prompts, SamplingParams(temperature=0, max_new_tokens=6,
                                                                     ignore_eos=True))]
    changed = [ref[0], ref[1][:3] + [(ref[1][3] + 1) % 300] + ref[1][4:]]
    report = divergence_report(llm, prompts, ref, changed)
    assert report["fraction_identical"] == 0.5 and report["divergences"][0]["position"] == 3
    hf = AutoModelForCausalLM.from_pretrained(llama_pair[0], dtype=torch.float32)
    with torch.no_grad():
        top2 = hf(torch.tensor([prompts[1] + ref[1][:3]])).logits[0, -1].topk(2).values
    assert abs(report["divergences"][0]["top2_margin"] - float(top2[0] - top2[1])) < 1e-4
