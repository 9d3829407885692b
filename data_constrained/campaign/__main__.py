"""The campaign's commands besides running a chunk (`python -m data_constrained.sweep ... harness=chunked`):

    python -m data_constrained.campaign plan experiment=campaign_gpu              # pending runs, estimates, index
    python -m data_constrained.campaign simulate experiment=campaign_gpu          # whole campaign: chunks, minutes
    python -m data_constrained.campaign ingest experiment=campaign_gpu DIR|TAR... # bundles from $OUT -> state
    python -m data_constrained.campaign fit experiment=campaign_gpu               # results/campaign_<scale>.json
    python -m data_constrained.campaign plot experiment=campaign_gpu              # figures from that JSON

Arguments with `=` are Hydra overrides of the sweep config; the others are the paths `ingest` reads.
Errors about bad input are one line on stderr, exit status 2.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from common.config import as_dict, compose
from common.errors import PaperclubError, exit_bad_input
from common.results import write_result
from data_constrained.campaign.analysis import analyse
from data_constrained.campaign.chunk import CostModel, campaign_of, plan_of, state_dir_of
from data_constrained.campaign.index import write_index
from data_constrained.campaign.simulate import simulate
from data_constrained.campaign.state import RunStore, json_safe
from data_constrained.campaign.state import ingest as ingest_bundles

COMMANDS = ("plan", "simulate", "ingest", "fit", "plot")
PAPER = {"token_budget": 200_000_000, "tuned_weight_decay_over_default": 30.0, "asymptote_ensemble": 3.17,
         "data_efficiency_ensemble": 5.17, "distill_retained_fraction": 0.83,
         "distill_note": "8-member ensemble distilled into a student 8x smaller (than the ensemble)",
         "cpt_data_efficiency": 17.5, "cpt_note": "continued pre-training on math; ours: Python code"}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        print(__doc__, file=sys.stderr)
        return 2
    command, rest = argv[0], argv[1:]
    overrides = [a for a in rest if "=" in a]
    paths = [a for a in rest if "=" not in a]
    try:
        return COMMANDS_FN[command](overrides, paths)
    except PaperclubError as err:
        exit_bad_input(str(err))


def _setup(overrides: list[str]):
    from data_constrained.sweep import SweepConfig

    cfg = compose("data_constrained", "sweep", SweepConfig, overrides)
    campaign = campaign_of(cfg)
    store = RunStore(state_dir_of(cfg))
    cost = CostModel(campaign, store)
    return cfg, campaign, store, cost


def plan(overrides: list[str], _paths: list[str]) -> int:
    cfg, campaign, store, cost = _setup(overrides)
    the_plan = plan_of(campaign, store, cost)
    path = write_index(campaign, store, the_plan, cost)
    for spec in the_plan.pending:
        print(f"{cost.run_s(spec):8.1f} s  {campaign.run_id(spec)}  {spec.label()}")
    for line in the_plan.waiting:
        print(f"waiting: {line}")
    print(f"{len(store.records)} finished, {len(the_plan.pending)} pending now; index: {path}")
    return 0


def simulate_cmd(overrides: list[str], _paths: list[str]) -> int:
    cfg, campaign, _, _ = _setup(overrides)
    print(json.dumps(simulate(campaign, cfg.time_budget_s or 540.0), indent=1))
    return 0


def ingest(overrides: list[str], paths: list[str]) -> int:
    cfg, campaign, _, _ = _setup(overrides)
    report = ingest_bundles(state_dir_of(cfg), paths)
    store = RunStore(state_dir_of(cfg))
    cost = CostModel(campaign, store)
    write_index(campaign, store, plan_of(campaign, store, cost), cost)
    print(json.dumps({k: len(v) for k, v in report.items()} | {"kept_first": report["kept_first"]}))
    return 0


def fit(overrides: list[str], _paths: list[str]) -> int:
    t0 = time.perf_counter()
    cfg, campaign, store, cost = _setup(overrides)
    metrics = analyse(campaign, store, plan_of(campaign, store, cost), cfg.campaign.n_boot, cfg.seed)
    metrics["state_dir"] = str(state_dir_of(cfg))
    path = write_result("data_constrained", "campaign", cfg.scale, json_safe(metrics), paper=PAPER,
                        config=as_dict(cfg), wall_s=time.perf_counter() - t0,
                        root=Path(cfg.results_root) if cfg.results_root else None)
    print(path)
    return 0


def plot(overrides: list[str], _paths: list[str]) -> int:
    from data_constrained.plot import plot_campaign
    from data_constrained.sweep import SweepConfig

    cfg = compose("data_constrained", "sweep", SweepConfig, overrides)
    for path in plot_campaign(cfg.scale, Path(cfg.results_root) if cfg.results_root else None):
        print(path)
    return 0


COMMANDS_FN = {"plan": plan, "simulate": simulate_cmd, "ingest": ingest, "fit": fit, "plot": plot}

if __name__ == "__main__":
    sys.exit(main())
