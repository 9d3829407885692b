"""One chunk of a campaign: run the next runs the plan asks for until the time budget would be overrun.

    python -m data_constrained.sweep experiment=campaign_gpu time_budget_s=540      # results_out from DC_RESULTS_OUT

Loop: read the state folder; plan (data_constrained.campaign.plan); take the first pending run whose estimated
seconds - its own, plus its prerequisites not trained yet in this process (distillation teachers, the pre-trained
model of continued pre-training), plus `compile_s` for each model shape this process has not compiled - fit in
what is left of `time_budget_s` minus `stop_margin_s`; train it; record it; plan again. Stops when nothing fits or
nothing is pending. Estimates come from the cost model: the median achieved FLOP/s of finished runs of the same
size (a prior `assumed_mfu` x `peak_tflops` before there are any), FLOPs from the model and the tokens the run
trains on, float32 scoring at `scoring_tflops`.

Prerequisites are trained here from their seeds (checkpoints never travel): a teacher or a pre-trained model is
the same config as a replicate run, so when that replicate is not finished yet the prerequisite is recorded as it;
otherwise it only serves this chunk (its own test loss is kept in the student's record, next to the recorded one).
A run that raises (out of memory, say) is recorded as failed with the error, and a search treats it as a loss of
infinity, so no chunk tries it again; a bad config stops the chunk instead. A run still training at the chunk's
deadline (`time_budget_s` after the start: its estimate was too low) stops there and is recorded as `timed_out`:
not a result, to be run again, but its measured tokens/s correct the estimate, so the next chunk either fits it
or, past `max_run_s`, flags its grid point as capped.

Records go into the state folder, or with `results_out` into tar bundles there (state.BundleWriter), together with
the manifest when this chunk started the state folder. The state folder's manifest (run_config.json) must match
this campaign's (common.run_config.check_resume: same base config and training tokens), else the chunk refuses.
"""

from __future__ import annotations

import json
import secrets
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Any

from common.checkpoint import save_checkpoint
from common.config import ConfigError
from common.device import cuda_available
from common.errors import PaperclubError
from common.paths import experiments_dir
from common.results import provenance
from common.run_config import RUN_CONFIG, check_resume, record_run_config, without_keys
from data_constrained.campaign.plan import Plan, Planner
from data_constrained.campaign.specs import CPT, TRAIN, Campaign, RunSpec, model_counts
from data_constrained.campaign.state import (
    DIVERGED,
    FAILED,
    FINISHED,
    TIMED_OUT,
    BundleWriter,
    RunStore,
    make_record,
)
from data_constrained.data import eval_windows, load_tokens, pack_digest
from data_constrained.ensemble import EnsembleTeacher, ensemble_loss
from data_constrained.train import RESUME_IGNORED, TrainConfig, resume_config, target_logprobs, train_run

DEADLINE = "a run reached the chunk's deadline (its measured speed now informs the estimates)"
MANIFEST_IGNORED = (*RESUME_IGNORED, "name", "recipe", "weight_decay", "epochs", "lr", "seed", "data_seed", "model",
                    "init_from", "data.token_budget")


def campaign_of(cfg: Any) -> Campaign:
    """The Campaign of a sweep config (its TrainConfig fields are the base of every run)."""
    cfg.campaign.check()
    base = TrainConfig(**{k: getattr(cfg, k) for k in TrainConfig.__dataclass_fields__})
    return Campaign(cfg.campaign, base)


def state_dir_of(cfg: Any) -> Path:
    """`campaign.state_dir`, or <results_root or the repo>/experiments/data_constrained/results/<scale>_runs."""
    if cfg.campaign.state_dir:
        return Path(cfg.campaign.state_dir)
    base = (Path(cfg.results_root) / "experiments" / "data_constrained") if cfg.results_root else experiments_dir(
        "data_constrained")
    return base / "results" / f"{cfg.scale}_runs"


def manifest_of(campaign: Campaign) -> dict[str, Any]:
    """What every run of the campaign shares: the base training config and the sha256 of the training tokens."""
    manifest = {"base": without_keys(resume_config(campaign.base, False, 0.0, 1.0), MANIFEST_IGNORED),
                "data": pack_digest(campaign.base.data)}
    if campaign.settings.cpt_size:
        manifest["cpt_data"] = pack_digest(campaign.settings.cpt_data)
    return manifest


class CostModel:
    """Seconds a run takes (see the module docstring); `compiled` holds the model shapes this process compiled."""

    def __init__(self, campaign: Campaign, store: RunStore) -> None:
        self.campaign, self.c = campaign, campaign.settings
        self.rates = store.achieved_flops()
        self.compiled: set[str] = set()
        self.compiles = campaign.base.compile and campaign.base.device != "cpu"

    def rate(self, size: str) -> float:
        if size in self.rates:
            return self.rates[size]
        mfu = self.c.assumed_mfu.get(size, self.c.assumed_mfu.get("default", 0.3))
        return mfu * self.campaign.base.peak_tflops * 1e12

    def run_s(self, spec: RunSpec) -> float:
        """One run alone, compile not counted."""
        seq_len = self.campaign.base.seq_len
        total, fpt = model_counts(spec.size, seq_len)
        tokens = self.campaign.tokens_trained(spec)
        train = fpt * tokens / self.rate(spec.size)
        train += sum(model_counts(t.size, seq_len)[1] / 3.0 * tokens / self.rate(t.size) for t in spec.teachers)
        scored = [total] + [model_counts(t.size, seq_len)[0] for t in spec.teachers]
        score = 2.0 * sum(scored) * self.campaign.eval_tokens(spec) / (self.c.scoring_tflops * 1e12)
        return train + score + self.c.run_overhead_s

    def with_prerequisites_s(self, spec: RunSpec, trained: set[str]) -> float:
        """`spec` and whatever it needs that this process has not trained, with compiles of new shapes."""
        runs = [p for p in prerequisites(spec) if self.campaign.run_id(p) not in trained] + [spec]
        shapes = {r.size for r in runs} - self.compiled
        return sum(self.run_s(r) for r in runs) + (self.c.compile_s * len(shapes) if self.compiles else 0.0)


def prerequisites(spec: RunSpec) -> list[RunSpec]:
    return [*spec.teachers, *([spec.init] if spec.init is not None else [])]


def plan_of(campaign: Campaign, store: RunStore, cost: CostModel) -> Plan:
    return Planner(campaign, store.val_loss, cost.run_s).plan()


def run_chunk(cfg: Any, scratch: str | Path) -> dict[str, Any]:
    """Run one chunk of the campaign of sweep config `cfg` (run dirs under `scratch`); returns its report."""
    started = time.monotonic()
    campaign = campaign_of(cfg)
    if cfg.scale == "gpu" and not cuda_available():
        raise ConfigError("scale=gpu: this campaign's runs must run on CUDA, and no CUDA device is visible here "
                          "(results of a CPU run would be recorded as gpu results)")
    if cfg.compile:
        _allow_many_compiled_models()
    state_dir = state_dir_of(cfg)
    staging = Path(scratch) / "new_runs" if cfg.campaign.results_out else None
    store = RunStore(state_dir, staging)
    new_manifest = _check_manifest(state_dir if staging is None else staging, campaign, cfg.force_resume,
                                   state_dir)
    chunk = time.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(2)
    bundles = (BundleWriter(Path(cfg.campaign.results_out), chunk, cfg.campaign.bundle_max_bytes,
                            cfg.campaign.max_bundles) if cfg.campaign.results_out else None)
    if bundles is not None and new_manifest:
        bundles.add([staging / RUN_CONFIG])
    runner = _Runner(campaign, store, Path(scratch), chunk, bundles)
    runner.stop_at = started + cfg.time_budget_s
    cost = CostModel(campaign, store)
    stop = "nothing pending"
    while True:
        plan = plan_of(campaign, store, cost)
        left = cfg.time_budget_s - (time.monotonic() - started) - cfg.campaign.stop_margin_s
        choice = next((s for s in plan.pending if cost.with_prerequisites_s(s, set(runner.models)) <= left), None)
        if choice is None:
            stop = "nothing pending" if not plan.pending else f"the next run does not fit in the {left:.0f} s left"
            break
        if bundles is not None and not bundles.room_for(runner.expected_bytes(choice)):
            stop = "the result bundles are full"
            break
        for prereq in prerequisites(choice):
            runner.ensure_model(prereq, cost)
        if any(line["status"] == TIMED_OUT for line in runner.lines):
            stop = DEADLINE
            break
        missing = [campaign.run_id(p) for p in prerequisites(choice) if campaign.run_id(p) not in runner.models]
        if missing:  # a teacher or the pre-trained model failed or diverged: so does the run built on it
            runner.record_failure(choice, f"prerequisite run(s) {missing} failed or diverged")
            continue
        runner.run(choice, cost)
        if runner.lines[-1]["status"] == TIMED_OUT:
            stop = DEADLINE
            break
    report = {"chunk": chunk, "ran": [line["run"] for line in runner.lines if line["new"]],
              "retrained": runner.retrained, "stopped": stop,
              "elapsed_s": round(time.monotonic() - started, 1), "pending_left": len(plan.pending),
              "waiting": plan.waiting, "complete": plan.complete,
              "bundles": [str(p) for p in bundles.bundles] if bundles else []}
    if bundles is None:
        from data_constrained.campaign.index import write_index

        write_index(campaign, store, plan, cost)
    print(json.dumps(report))
    return report


def _allow_many_compiled_models() -> None:
    """A chunk compiles the same decoder body for many model instances and a few shapes; keep dynamo from falling
    back to eager after its default of 8 cache entries per function."""
    import torch._dynamo

    torch._dynamo.config.cache_size_limit = max(torch._dynamo.config.cache_size_limit, 64)
    torch._dynamo.config.accumulated_cache_size_limit = max(torch._dynamo.config.accumulated_cache_size_limit, 1024)


def _check_manifest(record_dir: Path, campaign: Campaign, force: bool, state_dir: Path) -> bool:
    """Refuse a state folder of another campaign; record the manifest of a new one into `record_dir` (the state
    folder, or the staging folder of a bundling chunk); True when recorded now."""
    manifest = manifest_of(campaign)
    if (state_dir / RUN_CONFIG).is_file():
        check_resume(state_dir, manifest, force, ())
        return False
    record_run_config(record_dir, manifest, ())
    return True


class _Runner:
    """Trains runs for a chunk and keeps the models a later run of the chunk may need (replicates: teachers and
    pre-trained models)."""

    def __init__(self, campaign: Campaign, store: RunStore, scratch: Path, chunk: str,
                 bundles: BundleWriter | None) -> None:
        self.campaign, self.store, self.scratch, self.chunk, self.bundles = campaign, store, scratch, chunk, bundles
        self.models: dict[str, Any] = {}
        self.retrained: dict[str, dict[str, Any]] = {}
        self.lines: list[dict[str, Any]] = []
        self.stop_at: float | None = None

    def expected_bytes(self, spec: RunSpec) -> int:
        runs = [spec, *(p for p in prerequisites(spec) if self.campaign.run_id(p) not in self.store.records)]
        data = self.campaign.base.data if spec.corpus != CPT else self.campaign.settings.cpt_data
        return len(runs) * (64 * 1024 + 2 * (data.test_tokens or 2**20))

    def ensure_model(self, spec: RunSpec, cost: CostModel) -> Any:
        run_id = self.campaign.run_id(spec)
        if run_id not in self.models:
            self.run(spec, cost)
        return self.models.get(run_id)

    def run(self, spec: RunSpec, cost: CostModel) -> dict[str, Any]:
        """Train `spec` (its prerequisites must be in `self.models`), record it if new; a one-line report."""
        run_id = self.campaign.run_id(spec)
        out_dir = self.scratch / run_id
        init_path = self._init_checkpoint(spec.init) if spec.init is not None else ""
        cfg = self.campaign.train_config(spec, init_path)
        cfg.name, cfg.save_final, cfg.checkpoint_every = run_id, False, 0
        alpha, temperature = self.campaign.distill_weights(spec)
        teachers = [self.models[self.campaign.run_id(t)] for t in spec.teachers]
        compile_teacher = cfg.compile and str(next(teachers[0].parameters()).device).startswith("cuda") \
            if teachers else False
        teacher = EnsembleTeacher(teachers, compile_teacher) if teachers else None
        error, model = None, None
        t0 = time.monotonic()
        try:
            model, summary = train_run(cfg, out_dir, teacher=teacher, distill_alpha=alpha,
                                       distill_temperature=temperature, stop_at=self.stop_at)
            status = DIVERGED if summary["diverged"] else TIMED_OUT if summary["timed_out"] else FINISHED
        except PaperclubError:
            raise
        except Exception as err:  # recorded, so that no chunk tries this run again
            summary, status = {"val_loss": None, "test_loss": None}, FAILED
            error = "".join(traceback.format_exception_only(type(err), err)).strip()[-2000:]
        cost.compiled.add(spec.size)
        teacher_info = self._score_teachers(spec, teachers, cfg) if teachers and model is not None else None
        if spec.role != "search" and model is not None and status == FINISHED:
            self.models[run_id] = model
        new = run_id not in self.store.records or self.store.records[run_id]["status"] == TIMED_OUT
        if new:
            logprobs = out_dir / summary["test_logprobs"]["file"] if summary.get("test_logprobs") else None
            record = make_record(run_id, _spec_dict(self.campaign, spec), self.campaign.identity(spec),
                                 resume_config(cfg, spec.kind != TRAIN, alpha, temperature), summary, status,
                                 self.chunk, provenance(summary.get("device"), time.monotonic() - t0),
                                 teacher_info, error, logprobs)
            written = self.store.add(record, logprobs)
            if self.bundles is not None:
                self.bundles.add(written)
        else:
            self.retrained[run_id] = {"val_loss": summary.get("val_loss"), "test_loss": summary.get("test_loss")}
        line = {"run": run_id, "label": spec.label(), "status": status, "new": new,
                "val_loss": summary.get("val_loss"), "test_loss": summary.get("test_loss"),
                "mfu": summary.get("mfu"), "wall_s": round(time.monotonic() - t0, 1),
                "estimated_s": round(cost.run_s(spec), 1)}
        print(json.dumps(line), flush=True)
        self.lines.append(line)
        return line

    def record_failure(self, spec: RunSpec, error: str) -> None:
        """Record `spec` as failed without training it (its prerequisite failed)."""
        run_id = self.campaign.run_id(spec)
        alpha, temperature = self.campaign.distill_weights(spec)
        config = resume_config(self.campaign.train_config(spec), spec.kind != TRAIN, alpha, temperature)
        record = make_record(run_id, _spec_dict(self.campaign, spec), self.campaign.identity(spec), config,
                             {"val_loss": None, "test_loss": None}, FAILED, self.chunk, provenance(), None, error)
        written = self.store.add(record)
        if self.bundles is not None:
            self.bundles.add(written)
        self.lines.append({"run": run_id, "label": spec.label(), "status": FAILED, "new": True, "error": error})
        print(json.dumps(self.lines[-1]), flush=True)

    def _init_checkpoint(self, spec: RunSpec) -> str:
        """A checkpoint of the in-memory model of `spec` for `init_from` (written once per chunk)."""
        run_id = self.campaign.run_id(spec)
        directory = self.scratch / run_id / "init"
        path = directory / "step_00000000.safetensors"
        if not path.exists():
            model = self.models[run_id]
            save_checkpoint(directory, 0, {"model": model.state_dict(), "model_config": asdict(model.cfg)}, 0)
        return str(path)

    def _score_teachers(self, spec: RunSpec, teachers: list, cfg: TrainConfig) -> dict[str, Any]:
        """The teachers of this chunk on the student's test tokens: each member's loss and the ensemble's, with the
        ids of the runs they are (and, for retrained ones, the recorded losses are in those runs' records)."""
        import torch

        device = str(next(teachers[0].parameters()).device)
        x, y = eval_windows(load_tokens(cfg.data, cfg.data.test_split), cfg.seq_len, cfg.data.test_tokens)
        logps = torch.stack([target_logprobs(m, x, y, cfg.batch_size, device, cfg.loss_chunk_rows).flatten()
                             for m in teachers])
        members = [-lp.double().mean().item() for lp in logps]
        return {"run_ids": [self.campaign.run_id(t) for t in spec.teachers], "member_test_losses": members,
                "ensemble_test_loss": ensemble_loss(logps), "members": len(teachers)}


def _spec_dict(campaign: Campaign, spec: RunSpec) -> dict[str, Any]:
    out = {k: v for k, v in asdict(spec).items() if k not in ("teachers", "init")}
    out["teachers"] = [campaign.run_id(t) for t in spec.teachers]
    out["init"] = campaign.run_id(spec.init) if spec.init is not None else None
    return out


def estimate_campaign_s(plan: Plan, cost: CostModel) -> float:
    """Seconds of the runs pending now (one process each, so each pays its compile)."""
    return sum(cost.run_s(s) + (cost.c.compile_s if cost.compiles else 0.0) for s in plan.pending) if plan else 0.0


