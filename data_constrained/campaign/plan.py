"""Which runs a campaign needs next: a pure function of the finished runs (and of the cost model).

Searches. Every group below is a coordinate-descent search (a compass search on a lattice) for a locally optimal
configuration, judged on the validation split with seed 0, as the paper tunes its recipes:

    start at the group's start point; repeat: best = the finished point with the lowest validation loss;
    pending = the neighbours of best (one lattice step down and up along each axis) not yet run;
    stop when none is pending: best beats every neighbour along every axis it can move on.

An axis is "interior" at the optimum when both neighbours were run and lost; otherwise the optimum is flagged: it
sits at the axis's configured bound ("bound"), or the next point would take longer than one chunk allows
(`max_run_s`, "capped"). Extending a grid is just widening the bound: the search walks there by itself.

    tuned/<size>      tuned recipe at D0, axes (weight_decay, epochs, lr), one per size
    default/<size>    default recipe (weight decay fixed) at D0, axes (epochs, lr), one per size
    default/D<s>      default recipe at s x D0 for s in data_scales, axes (size, epochs, lr): the data law
    cpt_default/C<s>  default recipe on the second corpus at s x its budget (s = 1 and cpt_scales), axes (epochs, lr),
                      each run starting from the pre-trained English model
    cpt_tuned/C1      the same at the cpt budget over (weight_decay, epochs, lr)

Replicates (role "replicate"): once a search has converged, its optimum again with seeds 1..n - fresh
initialisations and data orders, none of them used to choose the optimum, so the test losses they report carry no
selection bias: `members` seeds per tuned size (the seed replicates and the ensemble members), `data_law_seeds`
per data budget (at D0 the best default size), `cpt_members` at the cpt optimum, `data_law_seeds` per cpt budget.

Built on the optima (role "student"): distillation students (each of `distill_student_sizes` at its tuned optimum,
seeds 101.., trained against the ensemble of `distill_teacher_size`'s members 1..distill_teacher_members),
self-distillation students (`self_distill_size`'s optimum, seeds 201.., against its member 1: a fresh initialisation
and another seed and data order than the teacher's), and the continued pre-training groups, whose runs start from
`cpt_size`'s member 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from common.config import ConfigError
from data_constrained.campaign.specs import (
    CPT,
    DISTILL,
    MAIN,
    REPLICATE,
    SEARCH,
    SELF_DISTILL,
    STUDENT,
    Campaign,
    RunSpec,
)

STEPS = (-1, +1)
SIDES = {-1: "low", +1: "high"}


@dataclass(frozen=True)
class Group:
    """A search: `axes` move on the lattice from `start` (one index per axis); `fixed` holds the other values."""

    name: str
    recipe: str
    axes: tuple[str, ...]
    start: tuple[int, ...]
    fixed: tuple[tuple[str, Any], ...]
    corpus: str = MAIN
    scale: float = 1.0
    init: RunSpec | None = None


@dataclass
class GroupStatus:
    """Where a search stands. `edges[axis][side]`: "worse" (the neighbour ran and lost), "bound", "capped",
    "pending"."""

    group: Group
    best: RunSpec | None = None
    best_val: float = math.inf
    pending: list[RunSpec] = field(default_factory=list)
    edges: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def converged(self) -> bool:
        return self.best is not None and not self.pending

    @property
    def interior(self) -> bool:
        return self.converged and all(side == "worse" for sides in self.edges.values() for side in sides.values())

    def flags(self) -> list[str]:
        """One text per axis side where the optimum is not bracketed, e.g. 'weight_decay: high bound'."""
        return [f"{axis}: {side} {state}" for axis, sides in self.edges.items() for side, state in sides.items()
                if state != "worse"]


@dataclass
class Plan:
    """The next runs (`pending`, in priority order, none finished), and what the finished ones add up to."""

    statuses: dict[str, GroupStatus]
    pending: list[RunSpec]
    waiting: list[str]
    capped: list[RunSpec]
    optima: dict[str, RunSpec]
    replicates: dict[str, list[RunSpec]]
    students: dict[str, list[RunSpec]]

    @property
    def complete(self) -> bool:
        return not self.pending and not self.waiting


class Planner:
    """`plan()` from the finished runs: `val_loss(run_id)` (None: not run; inf for a diverged or failed run) and
    `estimate_s(spec)` (seconds one run takes alone, for the `max_run_s` cap)."""

    def __init__(self, campaign: Campaign, val_loss: Callable[[str], float | None],
                 estimate_s: Callable[[RunSpec], float]) -> None:
        self.campaign, self.c = campaign, campaign.settings
        self.val_loss, self.estimate_s = val_loss, estimate_s

    # ------------------------------------------------------------------ the lattice
    def value(self, axis: str, index: int) -> Any:
        if axis == "size":
            return self.c.sizes[index]
        lattice = getattr(self.c, axis)
        return float(f"{lattice.start * lattice.factor ** index:.6g}")

    def in_bounds(self, axis: str, index: int) -> bool:
        if axis == "size":
            return 0 <= index < len(self.c.sizes)
        lattice = getattr(self.c, axis)
        value = lattice.start * lattice.factor ** index
        return lattice.low * (1 - 1e-9) <= value <= lattice.high * (1 + 1e-9)

    def index_of(self, axis: str, value: float) -> int:
        lattice = getattr(self.c, axis)
        index = round(math.log(value / lattice.start) / math.log(lattice.factor))
        if not math.isclose(self.value(axis, index), value, rel_tol=1e-6):
            raise ConfigError(f"{value} is not on the campaign.{axis} lattice {lattice.start} x "
                              f"{lattice.factor}^k")
        return index

    def spec(self, group: Group, point: tuple[int, ...], seed: int = 0, role: str = SEARCH) -> RunSpec:
        values = dict(group.fixed) | {axis: self.value(axis, i) for axis, i in zip(group.axes, point, strict=True)}
        return RunSpec(group=group.name, role=role, recipe=group.recipe, size=values["size"],
                       weight_decay=values["weight_decay"], epochs=values["epochs"], lr=values["lr"],
                       scale=group.scale, seed=seed, corpus=group.corpus, init=group.init)

    # ------------------------------------------------------------------ one search
    def search(self, group: Group) -> GroupStatus:
        status = GroupStatus(group)
        start = self.spec(group, group.start)
        if self._loss(start) is None:
            if self.estimate_s(start) > self.c.max_run_s:
                status.edges = {"start": {"point": "capped"}}
            else:
                status.pending = [start]
            return status
        best_point = self._best_point(group)
        status.best, status.best_val = self.spec(group, best_point), self._loss(self.spec(group, best_point))
        for a, axis in enumerate(group.axes):
            status.edges[axis] = {}
            for step in STEPS:
                point = best_point[:a] + (best_point[a] + step,) + best_point[a + 1:]
                side = SIDES[step]
                if not self.in_bounds(axis, point[a]):
                    status.edges[axis][side] = "bound"
                    continue
                neighbour = self.spec(group, point)
                if self._loss(neighbour) is not None:
                    status.edges[axis][side] = "worse"
                elif self.estimate_s(neighbour) > self.c.max_run_s:
                    status.edges[axis][side] = "capped"
                else:
                    status.edges[axis][side] = "pending"
                    status.pending.append(neighbour)
        return status

    def _best_point(self, group: Group) -> tuple[int, ...]:
        """The lowest-loss finished point reachable from the start through finished neighbours (the search's
        path); ties keep the point found first."""
        seen, frontier, best, best_loss = {group.start}, [group.start], group.start, math.inf
        while frontier:
            point = frontier.pop(0)
            loss = self._loss(self.spec(group, point))
            if loss is None:
                continue
            if loss < best_loss:
                best, best_loss = point, loss
            for a, axis in enumerate(group.axes):
                for step in STEPS:
                    nb = point[:a] + (point[a] + step,) + point[a + 1:]
                    if nb not in seen and self.in_bounds(axis, nb[a]):
                        seen.add(nb)
                        frontier.append(nb)
        return best

    def _loss(self, spec: RunSpec) -> float | None:
        loss = self.val_loss(self.campaign.run_id(spec))
        return None if loss is None else (loss if math.isfinite(loss) else math.inf)

    # ------------------------------------------------------------------ the whole campaign
    def groups(self) -> list[Group]:
        c = self.c
        tuned_start = (0, 0, 0)
        default_start = (self.index_of("epochs", c.default_epochs_start), 0)
        out = [Group(f"tuned/{size}", "tuned", ("weight_decay", "epochs", "lr"), tuned_start,
                     (("size", size),)) for size in c.sizes]
        out += [Group(f"default/{size}", "default", ("epochs", "lr"), default_start,
                      (("size", size), ("weight_decay", c.default_weight_decay))) for size in c.sizes]
        out += [Group(f"default/D{s:g}", "default", ("size", "epochs", "lr"), (len(c.sizes) // 2, *default_start),
                      (("weight_decay", c.default_weight_decay),), scale=s) for s in c.data_scales]
        return out

    def plan(self) -> Plan:
        c = self.c
        statuses = {g.name: self.search(g) for g in self.groups()}
        pending = [spec for s in statuses.values() for spec in s.pending]
        waiting: list[str] = []
        optima = {name: s.best for name, s in statuses.items() if s.converged}
        replicates: dict[str, list[RunSpec]] = {}
        students: dict[str, list[RunSpec]] = {DISTILL: [], SELF_DISTILL: []}

        def replicate(name: str, best: RunSpec | None, n: int) -> list[RunSpec]:
            if best is None:
                waiting.append(f"replicates of {name} wait for its search")
                return []
            specs = [_with(best, group=name, role=REPLICATE, seed=seed) for seed in range(1, n + 1)]
            replicates[name] = specs
            return specs

        for size in c.sizes:
            pending += replicate(f"tuned/{size}", optima.get(f"tuned/{size}"), c.members)
        defaults = [statuses[f"default/{size}"] for size in c.sizes]
        d0 = min((s for s in defaults if s.converged), key=lambda s: s.best_val) if all(
            s.converged for s in defaults) else None
        if d0 is not None:
            optima["default/D1"] = d0.best
        pending += replicate("default/D1", d0.best if d0 else None, c.data_law_seeds)
        for s in c.data_scales:
            pending += replicate(f"default/D{s:g}", optima.get(f"default/D{s:g}"), c.data_law_seeds)

        def member(size: str, seed: int) -> RunSpec | None:
            reps = replicates.get(f"tuned/{size}")
            return reps[seed - 1] if reps else None

        if c.distill_teacher_size:
            teachers = [member(c.distill_teacher_size, i) for i in range(1, c.distill_teacher_members + 1)]
            for student_size in c.distill_student_sizes:
                base = optima.get(f"tuned/{student_size}")
                if base is None or None in teachers:
                    needs = sorted({f"tuned/{c.distill_teacher_size}", f"tuned/{student_size}"})
                    waiting.append(f"distillation into {student_size} waits for {' and '.join(needs)}")
                    continue
                students[DISTILL] += [_with(base, group=f"distill/{student_size}", role=STUDENT, seed=100 + r,
                                            kind=DISTILL, teachers=tuple(teachers))
                                      for r in range(1, c.distill_students + 1)]
        if c.self_distill_size:
            teacher = member(c.self_distill_size, 1)
            if teacher is None:
                waiting.append(f"self-distillation waits for tuned/{c.self_distill_size}")
            else:
                students[SELF_DISTILL] = [_with(teacher, group="selfdistill", role=STUDENT, seed=200 + r,
                                                kind=SELF_DISTILL, teachers=(teacher,))
                                          for r in range(1, c.self_distill_students + 1)]
        pending += students[DISTILL] + students[SELF_DISTILL]

        if c.cpt_size:
            pre = member(c.cpt_size, 1)
            if pre is None:
                waiting.append(f"continued pre-training waits for tuned/{c.cpt_size}")
            else:
                cpt_groups = self.cpt_groups(pre)
                for g in cpt_groups:
                    statuses[g.name] = self.search(g)
                    pending += statuses[g.name].pending
                    if statuses[g.name].converged:
                        optima[g.name] = statuses[g.name].best
                for g in cpt_groups:
                    n = c.cpt_members if g.recipe == "tuned" else c.data_law_seeds
                    pending += replicate(g.name, optima.get(g.name), n)

        seen, ordered, capped = set(), [], []
        for spec in pending:
            run = self.campaign.run_id(spec)
            if run in seen or self.val_loss(run) is not None:
                continue
            seen.add(run)
            (capped if self.estimate_s(spec) > c.max_run_s else ordered).append(spec)
        return Plan(statuses, ordered, waiting, capped, optima, replicates, students)

    def cpt_groups(self, pre: RunSpec) -> list[Group]:
        c = self.c
        default_start = (self.index_of("epochs", c.default_epochs_start), 0)
        fixed = (("size", c.cpt_size), ("weight_decay", c.default_weight_decay))
        out = [Group(f"cpt_default/C{s:g}", "default", ("epochs", "lr"), default_start, fixed, CPT, s, pre)
               for s in (1.0, *c.cpt_scales)]
        out.append(Group("cpt_tuned/C1", "tuned", ("weight_decay", "epochs", "lr"), (0, 0, 0),
                         (("size", c.cpt_size),), CPT, 1.0, pre))
        return out


def _with(spec: RunSpec, **changes: Any) -> RunSpec:
    from dataclasses import replace

    return replace(spec, **changes)
