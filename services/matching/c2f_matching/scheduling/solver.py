"""The exact model, solved with OR-Tools CP-SAT in two phases within a time limit:

1. place as many accepted meetings as possible, weighted by priority (meetings of the
   published schedule count extra, so a new request never pushes one out);
2. keeping that value, move as few published meetings as possible, then leave participants
   as few idle slots between meetings as possible.

Both phases start from a hint (the greedy schedule), so a time-out still returns a schedule
at least as good as the hint."""

import os
import time
from collections import defaultdict
from dataclasses import dataclass

from ortools.sat.python import cp_model

from c2f_matching.scheduling.heuristics import compact
from c2f_matching.scheduling.model import Instance, Schedule, idle_slots, moved


@dataclass
class Phase:
    slot_of: dict[str, int]
    value: int
    bound: float
    optimal: bool


def values(instance: Instance) -> dict[str, int]:
    """What placing each meeting is worth: its weight, plus the heaviest weight if it was
    already published (keeping a promise beats adding any one new meeting)."""
    keep = max((m.weight for m in instance.meetings), default=1)
    return {m.id: m.weight + (keep if m.previous_slot is not None else 0) for m in instance.meetings}


def worth(instance: Instance, slot_of: dict[str, int]) -> int:
    value = values(instance)
    return sum(value[mid] for mid in slot_of)


class _Model:
    def __init__(self, instance: Instance) -> None:
        self.instance = instance
        self.model = cp_model.CpModel()
        self.x: dict[tuple[str, int], cp_model.IntVar] = {}
        by_party_slot: dict[tuple[str, int], list[cp_model.IntVar]] = defaultdict(list)
        by_slot: dict[int, list[cp_model.IntVar]] = defaultdict(list)
        for m in instance.meetings:
            options = []
            for s in instance.free_slots(m):
                var = self.model.new_bool_var(f"x[{m.id},{s}]")
                self.x[(m.id, s)] = var
                options.append(var)
                by_slot[s].append(var)
                for p in m.parties:
                    by_party_slot[(p, s)].append(var)
            if len(options) > 1:
                self.model.add_at_most_one(options)
        for vars_ in by_party_slot.values():
            if len(vars_) > 1:
                self.model.add_at_most_one(vars_)
        for vars_ in by_slot.values():
            if len(vars_) > instance.tables:
                self.model.add(cp_model.LinearExpr.sum(vars_) <= instance.tables)
        self.by_party_slot = by_party_slot
        self.chains: list[tuple[str, list[int], dict[int, cp_model.IntVar], dict[int, cp_model.IntVar]]] = []
        self.idle: dict[tuple[str, int], cp_model.IntVar] = {}
        value = values(instance)
        keys = list(self.x)
        self.worth = cp_model.LinearExpr.weighted_sum([self.x[k] for k in keys], [value[k[0]] for k in keys])

    def hint(self, slot_of: dict[str, int]) -> None:
        """A complete starting point: the placement and every counting variable it implies."""
        self.model.clear_hints()  # type: ignore[no-untyped-call]
        for (mid, s), var in self.x.items():
            self.model.add_hint(var, slot_of.get(mid) == s)
        busy: dict[str, set[int]] = defaultdict(set)
        for m in self.instance.meetings:
            if m.id in slot_of:
                for p in m.parties:
                    busy[p].add(slot_of[m.id])
        for p, slots, before, after in self.chains:
            mine = [s for s in slots if s in busy[p]]
            first, last = (min(mine), max(mine)) if mine else (slots[-1] + 1, slots[0] - 1)
            for s in slots:
                self.model.add_hint(before[s], s >= first)
                self.model.add_hint(after[s], s <= last)
                if (p, s) in self.idle:
                    self.model.add_hint(self.idle[(p, s)], first < s < last and s not in busy[p])

    def solve(self, seconds: float, workers: int) -> tuple[cp_model.CpSolver, cp_model.CpSolverStatus]:
        solver = cp_model.CpSolver()
        solver.parameters.max_time_in_seconds = max(seconds, 0.1)
        solver.parameters.num_workers = workers
        return solver, solver.solve(self.model)

    def read(self, solver: cp_model.CpSolver) -> dict[str, int]:
        return {mid: s for (mid, s), var in self.x.items() if solver.boolean_value(var)}

    def add_idle_and_moves(self) -> cp_model.LinearExprT:
        """Variables counting idle slots per participant and moved published meetings; the
        phase-2 objective (moves first, then idle slots)."""
        instance, model = self.instance, self.model
        days: dict[int, list[int]] = defaultdict(list)
        for s, d in enumerate(instance.day):
            days[d].append(s)
        idle_vars = []
        for p in instance.participants():
            allowed = instance.available.get(p)
            for slots in days.values():
                if not any((p, s) in self.by_party_slot for s in slots):
                    continue
                busy = {s: sum(self.by_party_slot.get((p, s), [])) for s in slots}
                before: dict[int, cp_model.IntVar] = {}
                after: dict[int, cp_model.IntVar] = {}
                for s in slots:
                    before[s] = model.new_bool_var("")
                    model.add(before[s] >= busy[s])
                    if s - 1 in before:
                        model.add(before[s] >= before[s - 1])
                for s in reversed(slots):
                    after[s] = model.new_bool_var("")
                    model.add(after[s] >= busy[s])
                    if s + 1 in after:
                        model.add(after[s] >= after[s + 1])
                for s in slots:
                    if (allowed is None or s in allowed) and s != slots[0] and s != slots[-1]:
                        idle = model.new_bool_var("")
                        model.add(idle >= before[s] + after[s] - busy[s] - 1)
                        idle_vars.append(idle)
                        self.idle[(p, s)] = idle
                self.chains.append((p, slots, before, after))
        stays = [
            self.x[(m.id, m.previous_slot)]
            for m in instance.meetings
            if m.previous_slot is not None and (m.id, m.previous_slot) in self.x
        ]
        published = sum(1 for m in instance.meetings if m.previous_slot is not None)
        moves = published - sum(stays)
        return (len(idle_vars) + 1) * moves + sum(idle_vars)


def maximise_meetings(
    instance: Instance, seconds: float, hint: dict[str, int] | None = None, workers: int | None = None
) -> Phase | None:
    """Phase 1 alone: the most valuable set of meetings that fits, and the proven bound."""
    model = _Model(instance)
    if hint:
        model.hint(hint)
    model.model.maximize(model.worth)
    solver, status = model.solve(seconds, workers or _workers())
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    return Phase(
        model.read(solver),
        round(solver.objective_value),
        solver.best_objective_bound,
        status == cp_model.OPTIMAL,
    )


def solve(
    instance: Instance,
    seconds: float,
    hint: dict[str, int] | None = None,
    workers: int | None = None,
    bound: int | None = None,
) -> Schedule | None:
    """Both phases within `seconds` in all; None if not even a first solution was found.
    `bound`: a known upper bound on the value (phase 1 is skipped when the hint reaches it)."""
    started = time.perf_counter()
    workers = workers or _workers()
    model = _Model(instance)
    if hint:
        model.hint(hint)
    model.model.maximize(model.worth)
    # Building the model is not under the solver's time limit: phase 2 adds as much again and
    # more, so keep that aside (the whole call stays within `seconds`).
    built = time.perf_counter() - started
    phase1 = (seconds - _BUILD_AGAIN * built) * 0.5 - built
    hinted = worth(instance, hint) if hint else None
    if hint and hinted is not None and bound is not None and hinted >= bound:
        first = Phase(hint, hinted, bound, True)  # the hint is already optimal
    elif hint and hinted is not None and phase1 < _LEAST_SOLVE:  # no time: keep the start
        first = Phase(hint, hinted, float(bound) if bound is not None else float("inf"), False)
    else:
        solver, status = model.solve(phase1, workers)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            first = Phase(
                model.read(solver),
                round(solver.objective_value),
                min(solver.best_objective_bound, bound if bound is not None else float("inf")),
                status == cp_model.OPTIMAL,
            )
            if hint and hinted is not None and hinted > first.value:  # never below the start
                first = Phase(hint, hinted, first.bound, False)
        elif hint and hinted is not None:  # out of time before a first solution (very large days)
            first = Phase(hint, hinted, float(bound) if bound is not None else float("inf"), False)
        else:
            return None
        if first.value >= first.bound:
            first.optimal = True
    # Phase 2 on the same model: keep that value, then fewest moves, then fewest idle slots.
    model.model.add(model.worth >= first.value)
    model.model.minimize(model.add_idle_and_moves())
    # Start from the better-compacted of the hint (if worth as much) and phase 1's answer.
    start = compact(instance, first.slot_of)
    if (
        hint
        and worth(instance, hint) >= first.value
        and idle_slots(instance, hint) < idle_slots(instance, start)
    ):
        start = hint
    slot_of = start
    model.hint(start)
    # The solver overruns its limit a little on large models (presolve), and reading the
    # answer takes time too.
    time_left = (seconds - (time.perf_counter() - started)) * 0.85 - built
    if time_left >= _LEAST_SOLVE:
        solver, status = model.solve(time_left, workers)
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            slot_of = model.read(solver)
    if idle_slots(instance, slot_of) > idle_slots(instance, start) and len(moved(instance, slot_of)) >= len(
        moved(instance, start)
    ):
        slot_of = start
    return Schedule(
        slot_of,
        method="cp-sat",
        seconds=time.perf_counter() - started,
        proven_optimal=first.optimal,
        bound=first.bound if first.bound != float("inf") else None,
    )


_BUILD_AGAIN = 2.0  # phase 2's model takes about this many times phase 1's to build
_LEAST_SOLVE = 0.3  # seconds: below this a solver call is not worth making


def _workers() -> int:
    return max(1, min(8, os.cpu_count() or 1))
