"""The headline pipeline end to end at toy size: sweep -> results JSON -> fit -> figures (all under tmp_path)."""

import math

import pytest

from common.config import compose
from common.results import read_result, write_result
from data_constrained import plot
from data_constrained.fit import PAPER, fit_sweep
from data_constrained.sweep import SweepConfig, run_sweep


@pytest.mark.slow
def test_sweep_fit_plot_pipeline(tiny_dir, tmp_path):
    cfg = compose("data_constrained", "sweep", SweepConfig, [
        "experiment=asymptote_cpu", f"data.dir={tiny_dir}", "data.token_budget=1024", "data.eval_split=val",
        "epochs=2", "seq_len=32", "sizes=[c32]", "tuned_weight_decays=[1.6]", "data_scales=[0.5,2.0]",
        "cpt_sizes=[]", "distill_size=c32"])
    metrics = run_sweep(cfg, tmp_path / "runs")
    tags = [r["tag"] for r in metrics["runs"]]
    assert tags[:2] == ["default_c32", "tune_c32_wd1.6_ep2"] and "member1_c32" in tags
    ens = metrics["ensembles"][0]
    assert ens["ensemble_losses"]["2"] <= ens["mean_member_loss"] + 1e-9
    assert ens["ensemble_losses"]["1"] == pytest.approx(ens["member_losses"][0], abs=1e-6)
    assert {"ensemble", "self"} <= set(metrics["distill"]) and math.isnan(metrics["distill"]["self"]["retained"])
    sweep_path = write_result("data_constrained", "sweep", "cpu", metrics, root=tmp_path)
    fitted = fit_sweep(read_result(sweep_path)["metrics"], n_boot=0)
    assert fitted["default_data_law"]["x"] == [512.0, 1024.0, 2048.0] and "fit" in fitted["default_data_law"]
    assert math.isfinite(fitted["data_efficiency_measured_tuned"])
    write_result("data_constrained", "asymptote", "cpu", fitted, paper=PAPER, root=tmp_path)
    plot.main(["--results-root", str(tmp_path)])
    figures = tmp_path / "experiments" / "data_constrained" / "figures"
    assert (figures / "asymptote_cpu.png").stat().st_size > 0 and (figures / "data_law_cpu.png").exists()
