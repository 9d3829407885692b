"""The sweep index `<state_dir>/index.json`: every finished run in a row, each search's optimum and flags, what is
pending next with its estimated seconds, and what waits. Written after a local chunk, by `ingest` and by `plan`;
nothing reads it back (the state is the run records)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from common.results import atomic_write_text
from common.run_config import RUN_CONFIG
from data_constrained.campaign.plan import Plan
from data_constrained.campaign.specs import Campaign
from data_constrained.campaign.state import INDEX, RunStore, json_safe


def index_of(campaign: Campaign, store: RunStore, plan: Plan, cost) -> dict[str, Any]:
    rows = []
    for record in store.records.values():
        spec, summary = record["spec"], record["summary"]
        rows.append({"run_id": record["run_id"], "group": spec["group"], "role": spec["role"], "kind": spec["kind"],
                     "size": spec["size"], "weight_decay": spec["weight_decay"], "epochs": spec["epochs"],
                     "lr": spec["lr"], "scale": spec["scale"], "corpus": spec["corpus"], "seed": spec["seed"],
                     "status": record["status"], "val_loss": summary.get("val_loss"),
                     "test_loss": summary.get("test_loss"), "mfu": summary.get("mfu"),
                     "train_s": summary.get("train_s"), "chunk": record["chunk"]})
    rows.sort(key=lambda r: (r["group"], r["role"], r["size"], r["seed"], r["run_id"]))
    searches = {name: {"converged": s.converged, "interior": s.interior, "flags": s.flags(),
                       "best": s.best.label() if s.best else None, "best_val_loss": s.best_val}
                for name, s in plan.statuses.items()}
    pending = [{"label": s.label(), "run_id": campaign.run_id(s), "estimated_s": round(cost.run_s(s), 1)}
               for s in plan.pending]
    manifest = store.dir / RUN_CONFIG
    return {"manifest_sha256": json.loads(manifest.read_text())["sha256"] if manifest.exists() else None,
            "runs": rows, "searches": searches, "pending": pending,
            "pending_s": round(sum(p["estimated_s"] for p in pending), 1),
            "capped": [s.label() for s in plan.capped], "waiting": plan.waiting, "complete": plan.complete}


def write_index(campaign: Campaign, store: RunStore, plan: Plan, cost) -> Path:
    path = store.dir / INDEX
    atomic_write_text(path, json.dumps(json_safe(index_of(campaign, store, plan, cost)), indent=1) + "\n")
    return path
