"""An upper bound on the value of any schedule: the linear relaxation of the exact model.

Each meeting is placed at most once, each participant meets at most once per slot, each
slot has its tables; relaxed, a meeting may be placed in fractions. Solved with GLOP
(OR-Tools' simplex, already a dependency), it takes well under a second at 400
participants and 2,400 meetings, and is tight on these instances (within one or two
meetings of the optimum), so "share of the optimum" is known where no solver proves it.
"""

import math
from collections import defaultdict

from ortools.linear_solver import pywraplp  # type: ignore[import-untyped]

from c2f_matching.scheduling.model import Instance


def capacity_bound(instance: Instance, value: dict[str, int]) -> int:
    """A bound at no cost: the most valuable meetings that the tables could hold at all."""
    room = instance.tables * instance.slots
    return sum(sorted(value.values(), reverse=True)[:room])


def lp_bound(instance: Instance, value: dict[str, int], seconds: float = 5.0) -> int | None:
    """No schedule of `instance` is worth more than this (`value`: what each meeting is
    worth); None if the LP was not solved in time."""
    if not instance.meetings:
        return 0
    solver = pywraplp.Solver.CreateSolver("GLOP")
    solver.SetTimeLimit(int(seconds * 1000))
    infinity = solver.infinity()
    by_party_slot: dict[tuple[str, int], list[pywraplp.Variable]] = defaultdict(list)
    by_slot: dict[int, list[pywraplp.Variable]] = defaultdict(list)
    objective = solver.Objective()

    def at_most(limit: int, xs: list[pywraplp.Variable]) -> None:
        constraint = solver.Constraint(-infinity, limit)
        for x in xs:
            constraint.SetCoefficient(x, 1)

    for m in instance.meetings:
        options = []
        for s in instance.free_slots(m):
            x = solver.NumVar(0.0, 1.0, "")
            objective.SetCoefficient(x, value[m.id])
            options.append(x)
            by_slot[s].append(x)
            for p in m.parties:
                by_party_slot[(p, s)].append(x)
        if len(options) > 1:
            at_most(1, options)
    for xs in by_party_slot.values():
        if len(xs) > 1:
            at_most(1, xs)
    for xs in by_slot.values():
        if len(xs) > instance.tables:
            at_most(instance.tables, xs)
    objective.SetMaximization()
    if solver.Solve() != pywraplp.Solver.OPTIMAL:
        return None
    # Values are integers, so a schedule's value is too: the floor is still a bound.
    return math.floor(float(objective.Value()) + 1e-6)
