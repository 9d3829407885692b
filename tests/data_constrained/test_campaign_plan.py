"""The campaign planner as a pure function of finished runs: coordinate descent finds a lattice optimum and says
where it is not bracketed, replicates use fresh seeds, run ids follow the config; the ensemble table and the
power-law bound flags the analysis relies on."""

import math

import numpy as np
import pytest

from common.config import compose
from data_constrained.campaign.analysis import EnsembleTable
from data_constrained.campaign.chunk import campaign_of
from data_constrained.campaign.plan import Planner
from data_constrained.campaign.specs import REPLICATE
from data_constrained.scaling import PowerLaw, fit_power_law
from data_constrained.sweep import SweepConfig


@pytest.fixture(scope="module")
def campaign(tiny_dir):
    cfg = compose("data_constrained", "sweep", SweepConfig, [
        "experiment=campaign_cpu", f"data.dir={tiny_dir}", f"campaign.cpt_data.dir={tiny_dir}",
        "campaign.weight_decay={start: 1.6, factor: 2.0, low: 0.05, high: 6.4}",
        "campaign.epochs={start: 2.0, factor: 2.0, low: 1.0, high: 16.0}"])
    return campaign_of(cfg)


def _run_search(campaign, loss_of, max_s=math.inf, estimate=lambda spec: 1.0):
    """Drive the planner to completion with a synthetic loss; returns (planner, finished losses by run id)."""
    done = {}
    campaign.settings.max_run_s = max_s
    planner = Planner(campaign, done.get, estimate)
    for _ in range(200):
        plan = planner.plan()
        if not plan.pending:
            return planner, plan, done
        for spec in plan.pending:
            done[campaign.run_id(spec)] = loss_of(spec)
    raise AssertionError("the plan never completed")


def bowl(spec):  # optimum at wd 0.4 (two steps below the start) and 8 epochs; default recipe: 4 epochs, c32
    if spec.recipe == "tuned":
        return 3 + math.log2(spec.weight_decay / 0.4) ** 2 + math.log2(spec.epochs / 8) ** 2
    return 4 + math.log2(spec.epochs / 4) ** 2 + ["c32", "c64", "c96"].index(spec.size) * 0.1 + 1 / spec.scale


def test_coordinate_descent_walks_to_an_interior_optimum(campaign):
    _, plan, _ = _run_search(campaign, bowl)
    status = plan.statuses["tuned/c64"]
    assert (status.best.weight_decay, status.best.epochs) == (0.4, 8.0)
    assert status.edges["weight_decay"] == {"low": "worse", "high": "worse"}
    assert status.edges["epochs"] == {"low": "worse", "high": "worse"}
    assert status.edges["lr"] == {"low": "bound", "high": "bound"}  # lr is fixed in this config: flagged
    assert "lr: low bound" in status.flags() and not status.interior
    assert plan.statuses["default/D2"].best.size == "c32" and plan.optima["default/D1"].size == "c32"
    reps = plan.replicates["tuned/c64"]
    assert [s.seed for s in reps] == [1, 2] and {s.role for s in reps} == {REPLICATE}
    assert all(s.weight_decay == 0.4 for s in reps)
    assert [s.seed for s in plan.students["selfdistill"]] == [201, 202]
    assert plan.students["selfdistill"][0].teachers == (plan.replicates["tuned/c32"][0],)
    assert plan.complete


def test_an_optimum_at_a_bound_or_behind_the_time_cap_is_flagged(campaign):
    def edge(spec):
        return 3 - math.log2(spec.weight_decay) if spec.recipe == "tuned" else bowl(spec)

    _, plan, _ = _run_search(campaign, edge)
    assert plan.statuses["tuned/c32"].best.weight_decay == 6.4
    assert plan.statuses["tuned/c32"].edges["weight_decay"]["high"] == "bound"

    def cost(spec):  # 16 epochs would take too long: the search stops there and says so
        return 100.0 if spec.epochs >= 16 else 1.0

    _, plan, _ = _run_search(campaign, lambda s: 3 - math.log2(s.epochs) if s.recipe == "tuned" else bowl(s),
                             max_s=50.0, estimate=cost)
    status = plan.statuses["tuned/c32"]
    assert status.best.epochs == 8.0 and status.edges["epochs"]["high"] == "capped"


def test_run_ids_follow_the_config_not_the_label(campaign):
    planner = Planner(campaign, {}.get, lambda spec: 1.0)
    group = planner.groups()[0]
    a = planner.spec(group, group.start)
    same = planner.spec(group, group.start, role="replicate")
    other = planner.spec(group, (1, 0, 0))
    assert campaign.run_id(a) == campaign.run_id(same) != campaign.run_id(other)
    assert len(campaign.run_id(a)) == 16


def test_ensemble_table_averages_probabilities_over_every_subset():
    rng = np.random.default_rng(0)
    logp = np.log(rng.dirichlet(np.ones(5), size=(3, 40))[..., 0])  # 3 members, 40 tokens
    table = EnsembleTable(logp, [1, 2, 3])
    assert table.loss(1) == pytest.approx(-logp.mean())
    pair = -np.log(np.exp(logp[[0, 2]]).mean(0)).mean()
    assert table.loss(2, np.array([1.0, 0.0, 2.0])) == pytest.approx(pair)  # only the subset {0, 2} has weight
    assert table.loss(3) <= table.loss(2) + 0.05 and math.isnan(table.loss(3, np.array([1.0, 0.0, 2.0])))


def test_a_flat_curve_is_flagged_at_its_bound():
    n = np.geomspace(1e5, 1e7, 4)
    flat = fit_power_law(n, [3.0, 2.999, 3.001, 3.0])
    assert "alpha_min" in flat.bounds_hit or "E_max" in flat.bounds_hit
    law = PowerLaw(A=50.0, alpha=0.4, E=2.0)
    assert fit_power_law(n, law(n)).bounds_hit == ()
