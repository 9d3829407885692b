"""A dry run of a whole campaign, for its size: how many runs and chunks, how many device minutes.

The searches are adaptive (how far coordinate descent walks depends on the losses it finds), so the count of runs
cannot be known before the runs; this replays the planner and a chunk's scheduling (prerequisites retrained in
every chunk, one compile per model shape per chunk, `chunk_startup_s` per chunk for starting a bare machine's
Python, installing wheels and unpacking data) against a synthetic loss surface, with the cost model's priors.
The surface is made up for counting only - a bowl in log-hyper-parameters whose optimum moves with the model size
the way the paper reports (larger models: larger weight decay, fewer epochs, lower learning rate; larger budgets:
larger default-recipe models) - and its losses are never reported anywhere.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

from data_constrained.campaign.chunk import CostModel, prerequisites
from data_constrained.campaign.plan import Planner
from data_constrained.campaign.specs import CPT, Campaign, RunSpec, model_counts
from data_constrained.campaign.state import RunStore


def synthetic_loss(campaign: Campaign, spec: RunSpec) -> float:
    """A made-up validation loss of `spec` (see the module docstring)."""
    c = campaign.settings
    i = c.sizes.index(spec.size)
    n = model_counts(spec.size, campaign.base.seq_len)[0]
    scale = spec.scale
    if spec.recipe == "tuned":
        wd_opt, ep_opt = 0.8 * 2 ** (i / 2), 16 / 2 ** (i / 2)
    else:
        wd_opt, ep_opt = c.default_weight_decay, 4 / math.sqrt(scale)
    lr_opt = 3e-3 / 2 ** (i / 3)
    size_penalty = 0.0 if spec.recipe == "tuned" else 0.02 * (i - math.log2(4 * scale + 1)) ** 2
    bowl = sum(0.01 * math.log2(value / opt) ** 2 for value, opt in ((spec.weight_decay, wd_opt),
                                                                     (spec.epochs, ep_opt), (spec.lr, lr_opt))
               if spec.recipe == "tuned" or opt != wd_opt)
    corpus = 0.5 if spec.corpus == CPT else 0.0
    return 3.0 + corpus + 20 / n**0.25 + 30 / (campaign.base.data.token_budget * scale) ** 0.2 + bowl + size_penalty


def simulate(campaign: Campaign, time_budget_s: float, chunk_startup_s: float = 45.0,
             max_chunks: int = 1000) -> dict[str, Any]:
    """Chunks, runs and minutes of the whole campaign on the synthetic surface (see the module docstring)."""
    c = campaign.settings
    done: dict[str, float] = {}
    cost = CostModel(campaign, RunStore("/nonexistent"))
    planner = Planner(campaign, done.get, cost.run_s)
    chunks, runs, device_s = [], Counter(), 0.0
    plan = planner.plan()
    while plan.pending and len(chunks) < max_chunks:
        used, trained, cost.compiled = chunk_startup_s, set(), set()
        count = 0
        while True:
            plan = planner.plan()
            left = time_budget_s - used - c.stop_margin_s
            choice = next((s for s in plan.pending if cost.with_prerequisites_s(s, trained) <= left), None)
            if choice is None:
                break
            used += cost.with_prerequisites_s(choice, trained)
            for run in [*prerequisites(choice), choice]:
                run_id = campaign.run_id(run)
                if run_id not in trained and run_id not in done:
                    runs[run.group.split("/")[0] + "/" + run.role] += 1
                trained.add(run_id)
                cost.compiled.add(run.size)
                done.setdefault(run_id, synthetic_loss(campaign, run))
            count += 1
        if not count:
            break
        chunks.append(round(used, 1))
        device_s += used
    return {"chunks": len(chunks), "device_minutes": round(device_s / 60, 1), "runs": sum(runs.values()),
            "runs_by_stage": dict(sorted(runs.items())), "chunk_seconds": chunks,
            "left_pending": len(plan.pending), "capped": [s.label() for s in plan.capped],
            "waiting": plan.waiting, "time_budget_s": time_budget_s, "chunk_startup_s": chunk_startup_s}
