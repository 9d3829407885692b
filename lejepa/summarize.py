"""Collect the per-run results of the world-model experiments into one file: `python -m lejepa.summarize --scale gpu`.

Reads `experiments/lejepa/results/{train,plan,surprise}_<env>_<model>_s<seed>_<scale>.json` (runs are named
`<model>_s<seed>`: model in lewm, pldm, pixel, lambda0, patch_wm, or lam<lambda> for the collapse sweep) and writes
`worldmodel_<scale>.json` with flat keys:

- `success_<env>_<model>` (mean over seeds), `success_<env>_<model>_seeds`, `success_<env>_<model>_std`,
  `episodes_<env>_<model>` (problems per seed);
- `plan_time_s_<env>_<model>`: seconds per problem per planning call (mean over seeds);
- `plan_speedup_vs_patch_wm_<env>`: plan_time_s of patch_wm / that of lewm (same CEM budget and problems);
- `surprise_auroc_<env>_<event>` (LeWM, mean over seeds) and `surprise_auroc_<env>_<event>_<model>`;
- `probe_r2_<env>_<model>`: mean held-out R^2 over the env's probe quantities;
- `collapse_<env>.lambda_<x>` (x with p for the point: lambda_0p01): for each sigreg_lambda of the
  lewm-objective runs (lambda0, lewm, lam*), {sigreg_lambda, points: the diagnostics logged during training (step,
  latent_std, standardized_effective_rank, unit_variance_rank, sigreg, probe_r2_mean)};
- `runs`: the files read.
"""

from __future__ import annotations

import argparse
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from common.paths import experiments_dir
from common.results import read_result, write_result

ENVS = ("two_room", "push_t", "reacher", "cube")
EVENTS = ("teleport", "color")
_NAME = re.compile(r"^(?P<kind>train|plan|surprise)_(?P<env>two_room|push_t|reacher|cube)_(?P<model>.+)_s(?P<seed>\d+)"
                   r"_(?P<scale>[a-z_]+)\.json$")
PAPER = {"success": {"push_t": 0.96, "reacher": 0.86, "cube": 0.74, "two_room": 0.87},
         "plan_speedup_vs_dino_wm": "up to 48x", "note": "LeWM paper (full-scale model and data)"}


def summarize(results: Path, scale: str) -> dict:
    runs: dict = defaultdict(lambda: defaultdict(dict))  # kind -> (env, model) -> seed -> metrics
    files = []
    for path in sorted(results.glob(f"*_{scale}.json")):
        m = _NAME.match(path.name)
        if not m or m["scale"] != scale:
            continue
        runs[m["kind"]][(m["env"], m["model"])][int(m["seed"])] = read_result(path)["metrics"]
        files.append(path.name)
    out: dict = {}
    for (env, model), seeds in sorted(runs["plan"].items()):
        rates = [seeds[s]["success_rate"] for s in sorted(seeds)]
        out[f"success_{env}_{model}"] = float(np.mean(rates))
        out[f"success_{env}_{model}_seeds"] = rates
        out[f"success_{env}_{model}_std"] = float(np.std(rates))
        out[f"episodes_{env}_{model}"] = int(seeds[min(seeds)]["problems"])
        out[f"plan_time_s_{env}_{model}"] = float(np.mean([seeds[s]["plan_s_per_problem"] for s in seeds]))
    for env in ENVS:
        lewm, patch = out.get(f"plan_time_s_{env}_lewm"), out.get(f"plan_time_s_{env}_patch_wm")
        if lewm and patch:
            out[f"plan_speedup_vs_patch_wm_{env}"] = patch / lewm
    for (env, model), seeds in sorted(runs["surprise"].items()):
        for event in EVENTS:
            values = [seeds[s][f"auroc_{event}"] for s in seeds if f"auroc_{event}" in seeds[s]]
            if values:
                key = f"surprise_auroc_{env}_{event}" + ("" if model == "lewm" else f"_{model}")
                out[key] = float(np.mean(values))
        r2 = [np.mean(list(seeds[s]["probe_r2"].values())) for s in seeds if seeds[s].get("probe_r2")]
        if r2:
            out[f"probe_r2_{env}_{model}"] = float(np.mean(r2))
    for (env, _model), seeds in sorted(runs["train"].items()):
        first = seeds[min(seeds)]
        if first.get("objective") != "lewm" or not first.get("diagnostics"):
            continue
        curves = out.setdefault(f"collapse_{env}", {})
        lam = first["sigreg_lambda"]
        curves["lambda_" + f"{lam:g}".replace(".", "p")] = {"sigreg_lambda": lam, "points": [
            {k: d[k] for k in ("step", "latent_std", "standardized_effective_rank", "unit_variance_rank", "sigreg",
                               "probe_r2_mean")} for d in first["diagnostics"]]}
    out["runs"] = files
    return out


def main(argv: list[str] | None = None) -> Path | None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="cpu")
    args = parser.parse_args(argv)
    results = experiments_dir("lejepa") / "results"
    out = summarize(results, args.scale)
    if not out["runs"]:
        print(f"no world-model runs at scale {args.scale} in {results}")
        return None
    sources = [f"experiments/lejepa/results/{name}" for name in out["runs"]]
    path = write_result("lejepa", "worldmodel", args.scale, out, paper=PAPER, sources=sources)
    print(f"wrote {path} ({len(out['runs'])} runs)")
    return path


if __name__ == "__main__":
    main()
