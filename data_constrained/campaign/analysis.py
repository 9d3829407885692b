"""From a campaign's finished runs to the paper's quantities, with intervals from a bootstrap over seeds.

Every number reported comes from test losses of replicate runs (seeds 1..n at an optimum chosen with seed 0 on the
validation split), all scored in float32 on the same first `data.test_tokens` test tokens:

- per size, the tuned recipe's loss = the mean over its members; L(N) = A / N^alpha + E fitted to these
  (scaling.fit_power_law: least squares on log L from a grid of starts) -> `asymptote_tuned` = E;
- ensembles: for K in `ensemble_k`, the loss of the averaged predictive distribution of K members, averaged over
  every K-subset of the members (from their per-token log-probs); L(N, K) = A / N^alpha + B / K^beta + E fitted to
  all (N, K) -> `asymptote_ensemble` = E of the joint law (K, N -> infinity);
- the default recipe's data law: at each budget D (D0 and data_scales x D0), the mean over the replicates of that
  budget's optimum (best size, epochs and lr); L(D) = B / D^beta + E_D;
- data efficiency of a loss L: D_default(L) / D0, where D_default inverts the data law (infinite when L < E_D);
  `data_efficiency_tuned` / `_ensemble` from the asymptotes, `..._measured_...` from the best measured losses;
  a multiplier beyond the largest measured budget is flagged `extrapolated`;
- distillation: retained = (L_plain - L_student) / (L_plain - L_teacher), L_plain the student size's members,
  L_teacher the ensemble the students learnt from (scored in the students' chunks);
- self-distillation: gain = L_plain - L_student (nats) with sigma = sqrt(s_p^2 / n_p + s_s^2 / n_s), the standard
  error of that difference of means over seeds;
- continued pre-training: the same data law and multipliers on the second corpus (budgets x its base budget),
  for the tuned CPT recipe (`cpt_data_efficiency_tuned`) and for K-member ensembles of its members, K the largest
  of `ensemble_k` (`cpt_data_efficiency`: the best recipe, as the paper's 17.5x);
- every fit says which parameters it left on a bound (`flags.*_bounds_hit`, `flags.asymptote_*_at_bound`): an
  asymptote at a bound is not identified by the data.

Uncertainty: `n_boot` bootstrap draws resample the seeds of every replicate set with replacement (each size's
members, each budget's replicates, the students), never the points of a fit; a K-member ensemble in a draw is the
average over K-subsets of distinct drawn members weighted by the product of their draw counts (sizes whose draw has
fewer than K distinct members are drawn again). Each draw refits every law; the 90% intervals are the 5th and 95th
percentiles of the draws (taken as sample values, so an infinite multiplier in a draw gives an infinite end).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from typing import Any

import numpy as np

from data_constrained.campaign.plan import Plan
from data_constrained.campaign.specs import DISTILL, SELF_DISTILL, Campaign, RunSpec
from data_constrained.campaign.state import FINISHED, RunStore
from data_constrained.scaling import JointLaw, PowerLaw, data_efficiency, fit_joint, fit_power_law

LEVEL = 0.9
MAX_REDRAWS = 50


class SeedSet:
    """Test losses of one set of replicate runs (and their ids), with bootstrap draw counts."""

    def __init__(self, store: RunStore, campaign: Campaign, specs: list[RunSpec]) -> None:
        records = [store.records.get(campaign.run_id(s)) for s in specs]
        self.records = [r for r in records if r and r["status"] == FINISHED and r["summary"].get("test_loss")
                        is not None]
        self.losses = np.array([r["summary"]["test_loss"] for r in self.records], dtype=np.float64)
        self.ids = [r["run_id"] for r in self.records]

    def __len__(self) -> int:
        return len(self.losses)

    def mean(self, counts: np.ndarray | None = None) -> float:
        if not len(self):
            return math.nan
        weights = np.ones(len(self)) if counts is None else counts
        return float(np.average(self.losses, weights=weights))

    def n_params(self) -> int:
        return int(self.records[0]["summary"]["n_params"])


class EnsembleTable:
    """Loss of every K-subset of a size's members (K in ks), from their per-token test log-probs."""

    def __init__(self, logprobs: np.ndarray, ks: list[int]) -> None:
        self.m = len(logprobs)
        self.table: dict[int, tuple[list[tuple[int, ...]], np.ndarray]] = {}
        for k in ks:
            if k > self.m:
                continue
            subsets = list(itertools.combinations(range(self.m), k))
            losses = [-(np.logaddexp.reduce(logprobs[list(s)], axis=0) - math.log(k)).mean() for s in subsets]
            self.table[k] = (subsets, np.array(losses))

    def loss(self, k: int, counts: np.ndarray | None = None) -> float:
        subsets, losses = self.table[k]
        if counts is None:
            return float(losses.mean())
        weights = np.array([np.prod(counts[list(s)]) for s in subsets], dtype=np.float64)
        return float(np.average(losses, weights=weights)) if weights.sum() > 0 else math.nan


def analyse(campaign: Campaign, store: RunStore, plan: Plan, n_boot: int, seed: int = 0) -> dict[str, Any]:
    """The metrics of the campaign's results JSON (see the module docstring); missing parts are None and listed
    under `missing`."""
    c = campaign.settings
    d0 = campaign.base.data.token_budget
    data = _Collected(campaign, store, plan)
    point = data.quantities(None)
    rng = np.random.default_rng(seed)
    draws = [data.quantities(data.draw(rng)) for _ in range(n_boot)] if n_boot else []

    out: dict[str, Any] = {"token_budget": d0, "corpus": campaign.base.data.corpus, "sizes": c.sizes,
                           "scoring_dtype": "float32", "n_boot": n_boot, "level": LEVEL, "missing": data.missing}
    for key, value in point.items():
        if isinstance(value, dict | list):
            out[key] = value
            continue
        out[key] = value
        if key in INTERVAL_KEYS or key.startswith("distill_retained_fraction_"):
            low, high, finite = _interval([d[key] for d in draws])
            out[f"{key}_ci_low"], out[f"{key}_ci_high"] = low, high
            out[f"{key}_draws_finite"] = finite
    out.update(data.search_summary())
    out.update(data.throughput())
    out["distill_sizes"] = data.distill_sizes()
    return out


INTERVAL_KEYS = ("asymptote_tuned", "asymptote_ensemble", "data_efficiency_tuned", "data_efficiency_ensemble",
                 "data_efficiency_measured_tuned", "data_efficiency_measured_ensemble", "distill_retained_fraction",
                 "self_distill_gain_nats", "cpt_data_efficiency", "cpt_data_efficiency_tuned", "asymptote_default_data",
                 "default_data_law_alpha", "tuned_alpha")


class _Collected:
    """The replicate sets of a campaign and the computation of every quantity from (resampled) seeds."""

    def __init__(self, campaign: Campaign, store: RunStore, plan: Plan) -> None:
        self.campaign, self.store, self.plan, self.c = campaign, store, plan, campaign.settings
        c, reps = self.c, plan.replicates
        self.missing: list[str] = list(plan.waiting)
        self.tuned = {size: SeedSet(store, campaign, reps.get(f"tuned/{size}", [])) for size in c.sizes}
        self.tuned = {size: s for size, s in self.tuned.items() if len(s)}
        d0 = campaign.base.data.token_budget
        scales = [1.0, *c.data_scales]
        self.law = {round(d0 * s): SeedSet(store, campaign, reps.get(f"default/D{s:g}", [])) for s in scales}
        self.law = {d: s for d, s in self.law.items() if len(s)}
        self.ensembles = {}
        for size, members in self.tuned.items():
            with_logprobs = [i for i, r in enumerate(members.records) if r.get("logprobs")]
            if len(with_logprobs) >= 2:
                logprobs = np.stack([store.logprobs(members.ids[i]) for i in with_logprobs])
                self.ensembles[size] = (EnsembleTable(logprobs, c.ensemble_k), with_logprobs)
        self.students = {f"{DISTILL}/{size}": SeedSet(store, campaign, [s for s in plan.students.get(DISTILL, [])
                                                                       if s.size == size])
                         for size in self.c.distill_student_sizes}
        self.students[SELF_DISTILL] = SeedSet(store, campaign, plan.students.get(SELF_DISTILL, []))
        cpt_d0 = c.cpt_data.token_budget
        self.cpt_law = {round(cpt_d0 * s): SeedSet(store, campaign, reps.get(f"cpt_default/C{s:g}", []))
                        for s in (1.0, *c.cpt_scales)} if c.cpt_size else {}
        self.cpt_law = {d: s for d, s in self.cpt_law.items() if len(s)}
        self.cpt_tuned = SeedSet(store, campaign, reps.get("cpt_tuned/C1", [])) if c.cpt_size else None
        self.cpt_ensemble, self.cpt_k = None, 0
        if self.cpt_tuned is not None and len(self.cpt_tuned) >= 2:
            logprobs = np.stack([store.logprobs(i) for i in self.cpt_tuned.ids])
            self.cpt_k = min(max(c.ensemble_k), len(self.cpt_tuned))  # as the main ensembles: K of the members
            self.cpt_ensemble = EnsembleTable(logprobs, [self.cpt_k])
        self.sets: dict[str, SeedSet] = {f"tuned/{k}": v for k, v in self.tuned.items()}
        self.sets |= {f"law/{k}": v for k, v in self.law.items()} | {f"cpt_law/{k}": v for k, v in self.cpt_law.items()}
        self.sets |= {f"students/{k}": v for k, v in self.students.items() if len(v)}
        if self.cpt_tuned is not None and len(self.cpt_tuned):
            self.sets["cpt_tuned"] = self.cpt_tuned

    # ------------------------------------------------------------------ resampling
    def draw(self, rng: np.random.Generator) -> dict[str, np.ndarray]:
        counts = {}
        for name, seeds in self.sets.items():
            n = len(seeds)
            needed = max((k for k in self.c.ensemble_k), default=1) if name.startswith("tuned/") else 1
            needed = min(needed, n)
            if name == "cpt_tuned" and self.cpt_ensemble is not None:
                needed = self.cpt_k
            for _ in range(MAX_REDRAWS):
                draw = rng.multinomial(n, np.full(n, 1.0 / n)).astype(np.float64)
                if (draw > 0).sum() >= needed:
                    break
            counts[name] = draw
        return counts

    # ------------------------------------------------------------------ the quantities
    def quantities(self, counts: dict[str, np.ndarray] | None) -> dict[str, Any]:
        def cnt(name: str) -> np.ndarray | None:
            return None if counts is None else counts.get(name)

        cnt.point = counts is None

        q: dict[str, Any] = {}
        tuned = {size: s.mean(cnt(f"tuned/{size}")) for size, s in self.tuned.items()}
        n_of = {size: s.n_params() for size, s in self.tuned.items()}
        law_points = {d: s.mean(cnt(f"law/{d}")) for d, s in self.law.items()}
        tuned_law = _fit(fit_power_law, [n_of[s] for s in tuned], list(tuned.values()), 3)
        data_law = _fit(fit_power_law, list(law_points), list(law_points.values()), 3)
        ens_points = []
        for size, (table, rows) in self.ensembles.items():
            c_size = cnt(f"tuned/{size}")
            sub = None if c_size is None else c_size[rows]
            for k in table.table:
                ens_points.append((n_of[size], k, table.loss(k, sub)))
        joint = None
        if len({p[0] for p in ens_points}) >= 2 and len({p[1] for p in ens_points}) >= 2 and len(ens_points) >= 5:
            finite = [p for p in ens_points if math.isfinite(p[2])]
            joint = _fit(lambda n, k, loss: fit_joint(n, k, loss, init=self._joint_init),
                         *zip(*finite, strict=True), 2) if len(finite) >= 5 else None
        d0 = self.campaign.base.data.token_budget
        q["asymptote_tuned"] = tuned_law.E if tuned_law else None
        q["tuned_alpha"] = tuned_law.alpha if tuned_law else None
        q["asymptote_ensemble"] = joint.E if joint else None
        q["asymptote_default_data"] = data_law.E if data_law else None
        q["default_data_law_alpha"] = data_law.alpha if data_law else None
        best_tuned = min(tuned.values()) if tuned else None
        best_ensemble = min((p[2] for p in ens_points), default=None)
        for name, loss in (("tuned", q["asymptote_tuned"]), ("ensemble", q["asymptote_ensemble"]),
                           ("measured_tuned", best_tuned), ("measured_ensemble", best_ensemble)):
            q[f"data_efficiency_{name}"] = (data_efficiency(loss, data_law, d0)
                                            if data_law is not None and loss is not None else None)
        q.update(self._distill(cnt))
        q.update(self._cpt(cnt))
        if counts is None:
            self._joint_init = joint
            q["curves"] = self._curves(tuned, n_of, law_points, ens_points)
            q["fits"] = {"tuned": _law_dict(tuned_law), "default_data": _law_dict(data_law),
                         "joint": _law_dict(joint)}
            q["flags"] = self._flags(tuned_law, data_law, joint, q)
        return q

    _joint_init: JointLaw | None = None

    def _distill(self, cnt: Callable) -> dict[str, Any]:
        """Retained fraction per student size (the first is `distill_retained_fraction`), self-distillation gain."""
        q: dict[str, Any] = {"distill_retained_fraction": None, "self_distill_gain_nats": None,
                             "self_distill_gain_sigma": None, "self_distill_gain_z": None}
        c = self.c
        details = {}
        for n, size in enumerate(c.distill_student_sizes):
            students, plain = self.students[f"{DISTILL}/{size}"], self.tuned.get(size)
            key = f"distill_retained_fraction_{size}"
            q[key] = None
            if not len(students) or plain is None:
                continue
            weights = cnt(f"students/{DISTILL}/{size}")
            w = np.ones(len(students)) if weights is None else weights
            teacher = float(np.average([r["teacher"]["ensemble_test_loss"] for r in students.records], weights=w))
            l_plain, l_student = plain.mean(cnt(f"tuned/{size}")), students.mean(weights)
            gain = l_plain - teacher
            q[key] = (l_plain - l_student) / gain if abs(gain) > 1e-9 else None
            if n == 0:
                q["distill_retained_fraction"] = q[key]
            details[size] = {"plain_student_loss": l_plain, "student_loss": l_student, "teacher_loss": teacher,
                             "student_losses": students.losses.tolist(), "students": len(students)}
        if cnt is not None and details and _is_point(cnt):
            q["distill"] = details
        selfs = self.students[SELF_DISTILL]
        plain = self.tuned.get(c.self_distill_size)
        if len(selfs) and plain is not None:
            l_plain = plain.mean(cnt(f"tuned/{c.self_distill_size}"))
            l_student = selfs.mean(cnt(f"students/{SELF_DISTILL}"))
            q["self_distill_gain_nats"] = l_plain - l_student
            if _is_point(cnt):
                sigma = math.sqrt(_var(plain.losses) / len(plain) + _var(selfs.losses) / len(selfs))
                q["self_distill_gain_sigma"] = sigma if math.isfinite(sigma) else None
                q["self_distill_gain_z"] = (q["self_distill_gain_nats"] / sigma) if sigma and math.isfinite(
                    sigma) else None
                q["self_distill"] = {"plain_loss": l_plain, "student_loss": l_student,
                                     "plain_losses": plain.losses.tolist(), "student_losses": selfs.losses.tolist()}
        return q

    def _cpt(self, cnt: Callable) -> dict[str, Any]:
        q: dict[str, Any] = {"cpt_data_efficiency": None, "cpt_data_efficiency_tuned": None}
        if not self.cpt_law:
            return q
        points = {d: s.mean(cnt(f"cpt_law/{d}")) for d, s in self.cpt_law.items()}
        law = _fit(fit_power_law, list(points), list(points.values()), 3)
        d0 = self.c.cpt_data.token_budget
        tuned = self.cpt_tuned.mean(cnt("cpt_tuned")) if self.cpt_tuned is not None and len(self.cpt_tuned) else None
        ens = None
        if self.cpt_ensemble is not None:
            ens = self.cpt_ensemble.loss(self.cpt_k, cnt("cpt_tuned"))
        if law is not None:
            q["cpt_data_efficiency_tuned"] = data_efficiency(tuned, law, d0) if tuned is not None else None
            best = ens if ens is not None and math.isfinite(ens) else tuned
            q["cpt_data_efficiency"] = data_efficiency(best, law, d0) if best is not None else None
        if _is_point(cnt):
            q["cpt"] = {"law_points": {str(d): v for d, v in points.items()}, "tuned_loss": tuned,
                        "ensemble_loss": ens, "ensemble_k": self.cpt_k, "fit": _law_dict(law), "token_budget": d0,
                        "recipe_of_cpt_data_efficiency": "ensemble" if ens is not None else "tuned"}
        return q

    # ------------------------------------------------------------------ plotted data, flags, search results
    def _curves(self, tuned, n_of, law_points, ens_points) -> dict[str, Any]:
        default_d0 = {}
        for size in self.c.sizes:
            best = self.plan.optima.get(f"default/{size}")
            record = self.store.records.get(self.campaign.run_id(best)) if best else None
            if record and record["summary"].get("test_loss") is not None:
                default_d0[size] = {"n_params": record["summary"]["n_params"],
                                    "test_loss": record["summary"]["test_loss"], "seed": 0}
        return {"default_d0": default_d0,
                "tuned": {s: {"n_params": n_of[s], "test_loss": v, "seeds": self.tuned[s].losses.tolist()}
                          for s, v in tuned.items()},
                "ensembles": [{"n_params": n, "k": k, "test_loss": loss} for n, k, loss in ens_points],
                "default_data_law": {str(d): {"test_loss": v, "seeds": self.law[d].losses.tolist()}
                                     for d, v in sorted(law_points.items())}}

    def _flags(self, tuned_law, data_law, joint, q) -> dict[str, Any]:
        budgets = list(self.law)
        top = max(budgets) / self.campaign.base.data.token_budget if budgets else None
        flags: dict[str, Any] = {
            "tuned_law_bounds_hit": list(tuned_law.bounds_hit) if tuned_law else None,
            "data_law_bounds_hit": list(data_law.bounds_hit) if data_law else None,
            "joint_law_bounds_hit": list(joint.bounds_hit) if joint else None,
            "asymptote_tuned_at_bound": bool(tuned_law.bounds_hit) if tuned_law else None,
            "asymptote_ensemble_at_bound": bool(joint.bounds_hit) if joint else None,
            "data_law_at_bound": bool(data_law.bounds_hit) if data_law else None,
            "largest_measured_budget_x_d0": top,
        }
        for name in ("tuned", "ensemble", "measured_tuned", "measured_ensemble"):
            value = q.get(f"data_efficiency_{name}")
            flags[f"data_efficiency_{name}_extrapolated"] = (
                None if value is None or top is None else bool(not math.isfinite(value) or value > top))
        losses = [s.mean() for s in sorted(self.tuned.values(), key=SeedSet.n_params)]
        flags["tuned_monotone_in_N"] = all(b <= a for a, b in zip(losses, losses[1:], strict=False))
        return flags

    def search_summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"searches": {}}
        for name, status in self.plan.statuses.items():
            best = status.best
            out["searches"][name] = {
                "converged": status.converged, "interior": status.interior, "flags": status.flags(),
                "best": None if best is None else {"size": best.size, "weight_decay": best.weight_decay,
                                                   "epochs": best.epochs, "lr": best.lr, "val_loss": status.best_val},
            }
        for size in self.c.sizes:
            status = self.plan.statuses.get(f"tuned/{size}")
            best = status.best if status is not None and status.converged else None
            out[f"tuned_wd_ratio_{size}"] = best.weight_decay / self.c.default_weight_decay if best else None
            out[f"tuned_wd_interior_{size}"] = (status.edges.get("weight_decay", {}).get("low") == "worse"
                                                and status.edges.get("weight_decay", {}).get("high") == "worse"
                                                if best else None)
        return out

    def throughput(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for size in self.c.sizes:
            runs = [r["summary"] for r in self.store.records.values()
                    if r["status"] == FINISHED and r["spec"]["size"] == size and r["spec"]["kind"] == "train"
                    and r["spec"]["corpus"] == "main" and r["summary"].get("mfu")]
            out[f"mfu_{size}"] = float(np.median([s["mfu"] for s in runs])) if runs else None
            measured = [s["mfu_measured_peak"] for s in runs if s.get("mfu_measured_peak")]
            out[f"mfu_measured_peak_{size}"] = float(np.median(measured)) if measured else None
            out[f"tokens_per_s_{size}"] = float(np.median([s["steady_tokens_per_s"] for s in runs])) if runs else None
        out["peak_tflops"] = self.campaign.base.peak_tflops
        out["measured_peak_tflops"] = self.campaign.base.measured_peak_tflops or None
        return out

    def distill_sizes(self) -> dict[str, Any] | None:
        """How much smaller each student is than a teacher member and than the teachers' ensemble (total
        parameters)."""
        c = self.c
        if not c.distill_teacher_size:
            return None
        from data_constrained.campaign.specs import model_counts

        seq_len = self.campaign.base.seq_len
        member = model_counts(c.distill_teacher_size, seq_len)[0]
        return {"teacher_size": c.distill_teacher_size, "teacher_members": c.distill_teacher_members,
                "students": {size: {"member_over_student": member / model_counts(size, seq_len)[0],
                                    "ensemble_over_student": c.distill_teacher_members * member
                                    / model_counts(size, seq_len)[0]} for size in c.distill_student_sizes}}


def _is_point(cnt: Callable) -> bool:
    return bool(getattr(cnt, "point", False))


def _fit(fit: Callable, *args) -> Any:
    """`fit(*data)` when the first coordinate has >= `minimum` distinct values (the last argument) and every loss is
    finite; None otherwise or when the fit fails."""
    *data, minimum = args
    if len(set(data[0])) < minimum or any(not math.isfinite(v) for v in data[-1]):
        return None
    try:
        return fit(*data)
    except (ValueError, RuntimeError):
        return None


def _law_dict(law: PowerLaw | JointLaw | None) -> dict[str, Any] | None:
    return None if law is None else law.as_dict()


def _var(values: np.ndarray) -> float:
    return float(np.var(values, ddof=1)) if len(values) >= 2 else math.nan


def _interval(values: list[Any]) -> tuple[float | None, float | None, float | None]:
    """(5th, 95th percentile, share of finite draws) of bootstrap draws; None where there are none."""
    draws = np.array([math.nan if v is None else v for v in values], dtype=np.float64)
    draws = draws[~np.isnan(draws)]
    if not len(draws):
        return None, None, None
    low, high = np.quantile(draws, [(1 - LEVEL) / 2, (1 + LEVEL) / 2], method="inverted_cdf")
    return float(low), float(high), float(np.isfinite(draws).mean())
