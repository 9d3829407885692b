"""The GPU harness end to end at toy size: chunks under a time budget accumulate runs in the state folder, a chunk
whose results must travel writes tar bundles that `ingest` unpacks, a finished campaign runs nothing, another
campaign's state is refused, and the fit writes the issue's keys with intervals from the bootstrap over seeds."""

import json
import tarfile

import pytest

from common.config import compose
from common.results import read_result
from common.run_config import ResumeError
from data_constrained.campaign.__main__ import main as campaign_cli
from data_constrained.campaign.chunk import run_chunk
from data_constrained.campaign.state import RunStore, StateError, ingest
from data_constrained.sweep import SweepConfig


def overrides(tiny_dir, root, *extra):
    return ["experiment=campaign_cpu", f"data.dir={tiny_dir}", f"campaign.cpt_data.dir={tiny_dir}",
            f"results_root={root}", "data.token_budget=1024", "campaign.cpt_data.token_budget=512",
            "campaign.sizes=[c16,c32,c64]", "campaign.distill_teacher_size=c16",
            "campaign.distill_student_sizes=[c16]", "campaign.self_distill_size=c16", "campaign.cpt_size=c16",
            "campaign.cpt_scales=[0.5,2.0]", "campaign.n_boot=8", *extra]


def chunk(tiny_dir, root, tmp, *extra):
    cfg = compose("data_constrained", "sweep", SweepConfig, overrides(tiny_dir, root, *extra))
    return run_chunk(cfg, tmp)


@pytest.mark.slow
def test_chunks_accumulate_bundle_ingest_and_fit(tiny_dir, tmp_path, capsys):
    root, state = tmp_path / "repo", tmp_path / "repo/experiments/data_constrained/results/cpu_runs"
    first = chunk(tiny_dir, root, tmp_path / "c1", "time_budget_s=2")
    assert first["ran"] and first["stopped"].startswith("the next run does not fit")
    assert set(first["ran"]) <= set(RunStore(state).records) and (state / "index.json").exists()

    out = tmp_path / "out"  # a GPU chunk: nothing written into the state folder, everything into bundles
    second = chunk(tiny_dir, root, tmp_path / "c2", f"campaign.results_out={out}", "time_budget_s=600")
    assert second["complete"] and not set(second["ran"]) & set(first["ran"])
    bundles = sorted(out.glob("dc_*.tar"))
    assert bundles and len(bundles) <= 6 and set(RunStore(state).records) == set(first["ran"])
    with tarfile.open(bundles[0]) as tar:
        names = tar.getnames()
    assert any(n.endswith(".logprobs.npy") for n in names)
    assert sorted(ingest(state, [out])["added"]) == sorted(second["ran"])
    assert sorted(ingest(state, [out])["same"]) == sorted(second["ran"])  # a second ingest changes nothing

    third = chunk(tiny_dir, root, tmp_path / "c3", "time_budget_s=600")
    assert third["ran"] == [] and third["complete"]

    with pytest.raises(ResumeError, match=r"base\.seq_len: 32 -> 16"):
        chunk(tiny_dir, root, tmp_path / "c4", "seq_len=16", "time_budget_s=600")

    assert campaign_cli(["fit", *overrides(tiny_dir, root)]) == 0
    m = read_result(root / "experiments/data_constrained/results/campaign_cpu.json")["metrics"]
    for key in ("asymptote_tuned", "asymptote_ensemble", "data_efficiency_tuned", "data_efficiency_ensemble"):
        assert f"{key}_ci_low" in m and f"{key}_ci_high" in m
    assert m["asymptote_tuned"] is not None and m["asymptote_ensemble"] is not None
    assert m["data_efficiency_tuned"] is not None and m["cpt_data_efficiency"] is not None
    for size in ("c16", "c32", "c64"):
        assert m[f"tuned_wd_ratio_{size}"] in (8.0, 16.0, 32.0) and m[f"mfu_{size}"] > 0
    assert m["self_distill_gain_sigma"] > 0 and m["distill_retained_fraction"] is not None
    assert m["flags"]["tuned_law_bounds_hit"] is not None and m["scoring_dtype"] == "float32"
    ens = {(p["n_params"], p["k"]): p["test_loss"] for p in m["curves"]["ensembles"]}
    for n in {n for n, _ in ens}:
        assert ens[(n, 2)] <= m["curves"]["tuned"][next(s for s, v in m["curves"]["tuned"].items()
                                                        if v["n_params"] == n)]["test_loss"] + 1e-9
    assert campaign_cli(["plot", *overrides(tiny_dir, root)]) == 0
    assert len(list((root / "experiments/data_constrained/figures").glob("campaign_cpu_*.png"))) == 4


def test_a_damaged_record_is_refused(tmp_path):
    (tmp_path / "0123456789abcdef.json").write_text(json.dumps({"format": 1, "run_id": "0123456789abcdef",
                                                               "identity": {"config": {}}}))
    with pytest.raises(StateError, match="does not match the file name or the hash of its identity"):
        RunStore(tmp_path)


def test_the_gpu_campaign_config_is_the_issues_methodology():
    from data_constrained.campaign.chunk import campaign_of
    from data_constrained.campaign.specs import model_counts

    cfg = compose("data_constrained", "sweep", SweepConfig, ["experiment=campaign_gpu"])
    c = campaign_of(cfg).settings
    assert cfg.harness == "chunked" and cfg.time_budget_s <= 540 and cfg.campaign.results_out == ""
    assert cfg.data.token_budget == 4_000_000 and max(c.data_scales) >= 4 and cfg.data.test_split == "test"
    n = [model_counts(size, cfg.seq_len)[0] for size in c.sizes]
    assert len(c.sizes) >= 4 and n == sorted(n)
    from data_constrained.presets import model_preset

    non_embedding = [model_preset(size).num_params() for size in c.sizes]
    assert non_embedding[-1] / non_embedding[0] >= 10
    assert max(c.ensemble_k) >= 4 and c.members >= 2 * max(c.ensemble_k)
    assert c.self_distill_size and c.cpt_size and c.cpt_data.corpus == "packed"
    teacher = c.distill_teacher_members * model_counts(c.distill_teacher_size, cfg.seq_len)[0]
    assert all(teacher / model_counts(s, cfg.seq_len)[0] >= 4 for s in c.distill_student_sizes)
    assert cfg.peak_tflops == 989.0 and cfg.measured_peak_tflops == 790.0


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_gpu_chunk_compiled_bf16(tiny_dir, tmp_path):
    report = chunk(tiny_dir, tmp_path / "repo", tmp_path / "c", "device=cuda", "dtype=bfloat16", "compile=true",
                   "time_budget_s=300")
    assert report["ran"] and report["complete"]
