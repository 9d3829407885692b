"""The one-file benchmark (`python -m ssd.bench experiment=bench_<scale>`): keys, skips, incremental writes,
the uniform fan-out, the headline arithmetic, its figures and the pending claims rows for bench_gpu.json."""

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from common.claims import load_claims
from common.config import ConfigError, compose
from common.results import write_result
from ssd import bench_sections
from ssd.bench import best_k, headline, run_bench
from ssd.bench_config import SECTION_NAMES, BenchConfig
from ssd.bench_runs import round_breakdown
from ssd.bench_sections import _pair_training
from ssd.decoding.fanout import geometric_fanout, uniform_fanout
from ssd.plot import plot_all

REPO = Path(__file__).resolve().parents[2]
TINY = ["runtime.device=cpu", "runtime.max_len=96", "sampling.max_new_tokens=8", "prompts=[Hello,World]",
        "step_time_context=16", "step_time_repeats=3", "logger=jsonl"]


def _tiny_cfg(pair, root, *extra):
    target, draft = pair
    return compose("ssd", "bench", BenchConfig, ["experiment=bench_cpu", "model=path", f"model.path={target}",
                                                  f"model.draft_path={draft}", f"results_root={root}", *TINY, *extra])


@pytest.fixture(scope="module")
def tiny_bench(llama_pair, tmp_path_factory):
    """One tiny run of every section on the CPU: (metrics of bench_cpu.json, the results root)."""
    root = tmp_path_factory.mktemp("bench")
    target, draft = llama_pair
    cfg = _tiny_cfg(llama_pair, root, "batch_sizes=[1,2]", "sweep_budgets=[4,16]", "backup_batch_sizes=[2]",
                    "sweep_k=[1,2]", "pair_results=pair_tiny")
    write_result("ssd", "pair", "cpu", {"target_params": _params(target), "draft_params": _params(draft),
                                        "target_val_loss": 1.25, "draft_val_loss": 1.5, "greedy_agreement": 0.75},
                 root=root, name="pair_tiny")
    written = run_bench(cfg, root / "run")
    assert set(written.values()) == {root / "experiments" / "ssd" / "results" / "bench_cpu.json"}
    return json.loads(written["speedup"].read_text())["metrics"], root


def _params(path):
    from ssd.models.loading import load_model

    model = load_model(path)
    return sum(p.numel() for p in {p.data_ptr(): p for p in model.parameters()}.values())


def test_tiny_bench_writes_the_cpu_measurable_keys(tiny_bench):
    m, _ = tiny_bench
    assert m["complete"] and not m["errors"]
    for key in ("step_time_ratio", "target_step_ms", "draft_step_ms", "ar_tok_s", "sd_tok_s", "ssd_tok_s",
                "sd_speedup_vs_ar", "ssd_speedup_vs_sd", "ssd_speedup_vs_ar", "hf_assisted_tok_s",
                "sd_speedup_vs_hf_assisted", "cache_hit_rate", "fraction_identical_sd", "fraction_identical_ssd"):
        assert isinstance(m[key], float | int), key
    # ratios come from the runs of this process
    assert m["sd_speedup_vs_ar"] == pytest.approx(m["sd_tok_s"] / m["ar_tok_s"])
    assert m["ssd_speedup_vs_sd"] == pytest.approx(m["ssd_tok_s"] / m["sd_tok_s"])
    assert m["sd_speedup_vs_hf_assisted"] == pytest.approx(m["sd_tok_s"] / m["hf_assisted_tok_s"])
    assert m["step_time_ratio"] == pytest.approx(m["target_step_ms"] / m["draft_step_ms"])
    # fp32 greedy: our SD/SSD and HF assisted generation all emit AR's tokens
    assert m["fraction_identical_sd"] == m["fraction_identical_ssd"] == 1.0
    assert m["hf_assisted"]["fraction_identical_to_ar"] == 1.0
    # the pair's training results were read and checked against the loaded models
    assert (m["target_val_loss"], m["draft_val_loss"], m["greedy_agreement"]) == (1.25, 1.5, 0.75)


def test_tiny_bench_skips_gpu_only_parts_with_reasons_and_no_numbers(tiny_bench):
    m, _ = tiny_bench
    assert set(m["skipped"]) == {"bound", "hf_peers", "speedup.draft_overlap_fraction"}
    assert "CUDA" in m["skipped"]["bound"] and "second CUDA stream" in m["skipped"]["speedup.draft_overlap_fraction"]
    for key in ("ar_fraction_of_bound_1b", "ar_fraction_of_bound_3b", "hf_generate_tok_s", "hf_static_compiled_tok_s",
                "draft_overlap_fraction", "bound", "hf_peers"):
        assert key not in m, key
    # on the CPU the timed SSD run gives the derived overlap numbers instead, and the round split adds up
    assert m["speedup"]["ssd"]["async_tokens_per_s"] > 0
    ssd = m["speedup"]["round_breakdown"]["ssd"]
    assert not ssd["concurrent"] and ssd["cache_build"] > 0
    parts = ssd["draft"] + ssd["cache_build"] + ssd["verify"] + ssd["overhead"]
    assert parts == pytest.approx(ssd["total"], abs=1e-2)  # telemetry rounds each time to the microsecond


def test_tiny_bench_sweeps_have_one_entry_per_setting(tiny_bench):
    m, _ = tiny_bench
    assert m["sections_done"] == ["pair", "speedup", "hf_assisted", "temperature", "batch", "cache_hit_vs_fanout",
                                  "saguaro_c", "backup", "speculation_k"]
    assert m["temperature"]["temperature"] == [0.0, 1.0] and len(m["temperature"]["ssd_speedup_vs_sd"]) == 2
    assert m["batch"]["batch_size"] == [1, 2] and m["batch"]["fraction_identical_sd"] == [1.0, 1.0]
    fan = m["cache_hit_vs_fanout"]
    assert fan["fanout"] == [[1, 1, 1, 1], [4, 4, 3, 5]] and fan["fanout_uniform"] == [[1, 1, 1, 1], [4, 4, 4, 4]]
    assert fan["uniform_same_as_geometric"] == [True, False]
    for key in ("cache_hit_rate_t0", "uniform_cache_hit_rate_t0", "cache_hit_rate_t1", "uniform_cache_hit_rate_t1"):
        assert len(fan[key]) == 2 and all(0 <= h <= 1 for h in fan[key])
    assert fan["uniform_cache_hit_rate_t0"][0] == fan["cache_hit_rate_t0"][0]  # the same fan-out, the same run
    assert m["saguaro_c"]["c"] == [1.0, 0.5]
    assert len(m["backup"]["tokens_per_s_neural"]) == len(m["backup"]["tokens_per_s_random"]) == 1
    ks = m["speculation_k"]
    assert ks["k"] == [1, 2] and len(ks["ssd_speedup_vs_sd"]) == len(ks["cache_hit_rate_ssd"]) == 2
    assert ks["fraction_identical_sd"] == ks["fraction_identical_ssd"] == [1.0, 1.0]  # lossless at every K
    for s in ("sd", "ssd"):  # the headline's best-K keys are the sweep's fastest entries
        i = ks[f"tokens_per_s_{s}"].index(max(ks[f"tokens_per_s_{s}"]))
        assert m[f"best_k_{s}"] == ks["k"][i] and m[f"{s}_best_k_tok_s"] == ks[f"tokens_per_s_{s}"][i]
    assert m["ssd_speedup_vs_sd_best_k"] == pytest.approx(m["ssd_best_k_tok_s"] / m["sd_best_k_tok_s"])
    assert m["sd_speedup_vs_ar_best_k"] == pytest.approx(m["sd_best_k_tok_s"] / ks["tokens_per_s_ar"])


def test_best_k_picks_each_strategys_fastest_k():
    sweep = {"k": [2, 3, 4], "tokens_per_s_ar": 100.0, "tokens_per_s_sd": [150.0, 180.0, 170.0],
             "tokens_per_s_ssd": [200.0, 190.0, 120.0]}
    out = best_k(sweep)
    assert (out["best_k_sd"], out["best_k_ssd"]) == (3, 2)
    assert out["ssd_speedup_vs_sd_best_k"] == pytest.approx(200 / 180)
    assert out["ssd_speedup_vs_ar_best_k"] == pytest.approx(2.0) and out["sd_speedup_vs_ar_best_k"] == pytest.approx(1.8)
    assert best_k({"k": [2], "tokens_per_s_ar": 100.0, "tokens_per_s_sd": [150.0]})["ssd_speedup_vs_sd_best_k"] is None


def test_uniform_fanout_splits_the_budget_evenly():
    assert uniform_fanout(7, 24, 16384) == [3] * 8
    assert uniform_fanout(3, 14, 100) == [4, 4, 3, 3]  # the remainder to the smallest k
    assert uniform_fanout(3, 40, 6) == [5, 5, 5, 5]  # capped at vocab - 1
    assert sum(uniform_fanout(7, 31, 16384)) == 31
    assert uniform_fanout(7, 24, 16384) != geometric_fanout(7, 24, 0.7)
    with pytest.raises(ValueError, match="budget"):
        uniform_fanout(7, 7, 16384)


def test_a_failing_section_is_recorded_and_the_others_still_written(llama_pair, tmp_path, monkeypatch):
    def broken(bench):
        bench.save_partial("temperature", {"temperature": [0.0], "tokens_per_s_ar": [1.0]})
        raise RuntimeError("injected failure")

    monkeypatch.setitem(bench_sections.SECTIONS, "temperature", broken)
    cfg = _tiny_cfg(llama_pair, tmp_path, "sections=[speedup,temperature,saguaro_c]", "strategies=[ar]",
                    "repeats=1", "timed_runs=false", "sweep_saguaro_c=[]")
    with pytest.raises(RuntimeError, match="temperature"):
        run_bench(cfg, tmp_path / "run")
    m = json.loads((tmp_path / "experiments/ssd/results/bench_cpu.json").read_text())["metrics"]
    assert not m["complete"] and m["sections_done"] == ["speedup"]
    assert m["errors"] == {"temperature": "RuntimeError: injected failure"}
    assert m["temperature"] == {"temperature": [0.0], "tokens_per_s_ar": [1.0]}  # what it measured stays
    assert m["skipped"] == {"saguaro_c": "sweep_saguaro_c is empty"} and m["ar_tok_s"] > 0


def test_a_killed_run_leaves_the_sections_it_finished(llama_pair, tmp_path, monkeypatch):
    def killed(bench):
        bench.save_partial("temperature", {"temperature": [0.0]})
        raise KeyboardInterrupt  # what a time limit does: nothing after this line runs

    monkeypatch.setitem(bench_sections.SECTIONS, "temperature", killed)
    cfg = _tiny_cfg(llama_pair, tmp_path, "sections=[speedup,temperature]", "strategies=[ar]", "repeats=1",
                    "timed_runs=false")
    with pytest.raises(KeyboardInterrupt):
        run_bench(cfg, tmp_path / "run")
    m = json.loads((tmp_path / "experiments/ssd/results/bench_cpu.json").read_text())["metrics"]
    assert not m["complete"] and m["section_in_progress"] == "temperature"
    assert m["sections_done"] == ["speedup"] and m["temperature"] == {"temperature": [0.0]}


def test_pair_results_of_other_models_are_not_used(tmp_path):
    write_result("ssd", "pair", "gpu", {"target_params": 10, "draft_params": 2, "target_val_loss": 3.0},
                 root=tmp_path, name="pair_gpu")
    bench = SimpleNamespace(cfg=SimpleNamespace(pair_results="pair_gpu", results_root=str(tmp_path), scale="gpu"))
    training, reason = _pair_training(bench, {"target_params": 10, "draft_params": 2})
    assert training["target_val_loss"] == 3.0 and reason == ""
    training, reason = _pair_training(bench, {"target_params": 11, "draft_params": 2})
    assert training is None and "other models" in reason
    bench.cfg.pair_results = "pair_missing"
    assert "no results file" in _pair_training(bench, {"target_params": 10, "draft_params": 2})[1]


def test_headline_derives_ratios_only_from_what_ran():
    sections = {"pair": {"step_time_ratio": 6.0, "target_step_ms": 0.6, "draft_step_ms": 0.1,
                         "target_verify_ms": 0.7, "target_params": 8, "draft_params": 1,
                         "target_bytes_per_token": 2e9, "training": None},
                "speedup": {"ar": {"tokens_per_s": 1000.0}, "sd": {"tokens_per_s": 2500.0, "mean_accepted": 5.0}},
                "bound": {"copy_bandwidth_tb_s": 4.0, "ar_fraction_of_bound_1b": 0.8,
                          "shapes": {"1b": {"ar_tok_s": 1400.0}}},
                "hf_peers": {"shape": "1b", "hf_generate_tok_s": 14.0}}
    out = headline(sections)
    assert out["sd_speedup_vs_ar"] == 2.5 and "ssd_speedup_vs_sd" not in out and "cache_hit_rate" not in out
    assert out["ar_fraction_of_bound_pair"] == pytest.approx(1000 * 2e9 / 4e12)
    assert out["ar_speedup_vs_hf_generate"] == pytest.approx(100.0)
    assert "target_val_loss" not in out and "hf_assisted_tok_s" not in out


def test_the_config_names_every_section_in_order():
    assert tuple(bench_sections.SECTIONS) == SECTION_NAMES


def test_bench_configs_compose_and_check_their_sections():
    gpu = compose("ssd", "bench", BenchConfig, ["experiment=bench_gpu", "logger=jsonl"])
    assert gpu.results_name == "bench" and gpu.batch_sizes == [1, 2, 4, 8, 16] and gpu.pair_results == "pair_gpu"
    assert gpu.sampling.max_new_tokens == 256 and len(gpu.prompts) == 4 and gpu.sections[-1] == "hf_peers"
    with pytest.raises(ConfigError, match="sections"):
        compose("ssd", "bench", BenchConfig, ["sections=[pair]", "logger=jsonl"])  # pair_<scale>.json is train_pair's
    with pytest.raises(ConfigError, match="sections"):
        compose("ssd", "bench", BenchConfig, ["sections=[speedup,nope]", "logger=jsonl"])
    with pytest.raises(ConfigError, match="step_time_context"):
        compose("ssd", "bench", BenchConfig, ["experiment=bench_gpu", "step_time_context=600", "logger=jsonl"])


@pytest.fixture(scope="module")
def synthetic_gpu(tiny_bench):
    """A bench_gpu.json for the figures and claims: the tiny CPU run's sections (the real writer's structure)
    plus made-up GPU-only sections in the shape `ssd.bandwidth.bound_report` and the timed GPU run give them.
    Synthetic: only for drawing and rendering, never a measurement."""
    m, root = tiny_bench
    sections = {k: v for k, v in m.items() if k in ("pair", "speedup", "hf_assisted", "temperature", "batch",
                                                     "cache_hit_vs_fanout", "saguaro_c", "backup", "speculation_k")}
    sections = json.loads(json.dumps(sections))
    shape = {"bound_tok_s": 1700.0, "ar_tok_s": 1400.0, "ar_fraction_of_bound": 1400 / 1700,
             "ar_torch_path_tok_s": 500.0, "ar_skinny_gemm_tok_s": 1500.0, "params": 1, "bytes_per_token": 1}
    sections["bound"] = {"copy_bandwidth_tb_s": 4.2, "shapes": {"1b": shape, "3b": {**shape, "bound_tok_s": 650.0}},
                         "ar_fraction_of_bound_1b": 1400 / 1700, "ar_fraction_of_bound_3b": 0.9, "timing_only": []}
    sections["hf_peers"] = {"shape": "1b", "hf_generate_tok_s": 15.0, "hf_static_compiled_tok_s": 78.0}
    ssd = sections["speedup"]["ssd"]
    ssd["draft_overlap_fraction"] = 0.9
    sections["speedup"]["round_breakdown"]["ssd"].update(concurrent=True, draft_overlap_fraction=0.9)
    for row in (sections["speedup"]["sd"], ssd):
        row["greedy_agreement"]["divergences"] = [{"position": 3, "top2_margin": 0.0625}]
    metrics = {**headline(sections), **sections, "setup": m["setup"], "skipped": {}, "errors": {}}
    write_result("ssd", "bench", "gpu", metrics, device="NVIDIA H200", root=root, name="bench_gpu")
    return root


def test_bench_figures_draw_from_the_results_file(synthetic_gpu):
    drawn = plot_all("gpu", synthetic_gpu)
    assert {p.name for p in drawn} == {"bench_batch_gpu.png", "bench_bound_gpu.png", "bench_fanout_gpu.png",
                                       "bench_round_time_gpu.png", "bench_k_gpu.png"}
    sidecar = json.loads(drawn[0].with_suffix(".json").read_text())
    assert sidecar["sources"][0].endswith("results/bench_gpu.json")
    cpu = plot_all("cpu", synthetic_gpu)  # bench_cpu.json has no bound section: that figure is skipped
    assert {p.name for p in cpu} == {"bench_batch_cpu.png", "bench_fanout_cpu.png", "bench_round_time_cpu.png",
                                     "bench_k_cpu.png"}


def test_bench_claims_rows_render_against_a_bench_file(synthetic_gpu):
    """The bench_gpu rows of claims.yaml render against a bench file of the real structure, so a renamed key fails
    here before `make report` does."""
    committed = yaml.safe_load((REPO / "experiments/ssd/claims.yaml").read_text())
    section = next(s for s in committed["sections"] if s.get("title", "").startswith("GPU benchmark"))
    claims_file = synthetic_gpu / "experiments/ssd/claims.yaml"
    claims_file.write_text(yaml.safe_dump({"citation": "SSD", "sections": [section]}))
    claims = load_claims(synthetic_gpu, "ssd")
    rows = {row.claim: row for row in claims.sections[0].rows}
    assert any("HF assisted" in row.ours for row in rows.values())
    assert any(row.ours.startswith("SD ") and " at K=" in row.ours for row in rows.values())  # the best-K row
    assert rows["SD speed-up over AR"].ours == f"{_metric(synthetic_gpu, 'sd_speedup_vs_ar'):.2f}"
    assert rows["SD speed-up over AR"].scale == "gpu (H200)"
    assert "1B **82%** (1400 of 1700 tok/s)" in rows[next(r for r in rows if r.startswith("AR decode"))].ours
    assert "SD [0.062], SSD [0.062]" in rows["greedy SD / SSD outputs identical to AR (bf16)"].ours
    assert len(claims.top) == 1 and claims.cited == {"bench_gpu"}


def _metric(root, key):
    return json.loads((root / "experiments/ssd/results/bench_gpu.json").read_text())["metrics"][key]


def test_round_breakdown_of_a_concurrent_run():
    # telemetry's "draft" includes the cache build; on its own stream the build is not part of the loop time
    timed = {"time_s": {"draft": 0.07, "verify": 0.06, "overhead": 0.01, "total": 0.09, "cache_build": 0.05},
             "rounds": 10, "generated_tokens": 60, "draft_overlap_fraction": 0.8}
    out = round_breakdown(timed)
    assert out["concurrent"] and out["tokens_per_round"] == 6.0
    assert out["cache_build"] == pytest.approx(5.0) and out["draft"] == pytest.approx(2.0)
    assert out["draft"] + out["verify"] + out["overhead"] == pytest.approx(out["total"])
