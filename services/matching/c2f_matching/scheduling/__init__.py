"""Meeting scheduling: slots and tables for accepted meetings, as many as possible, with few
idle gaps, and stable when the published schedule changes."""

import time

from c2f_matching.scheduling.bound import capacity_bound, lp_bound
from c2f_matching.scheduling.heuristics import compact, first_come_first_served, greedy
from c2f_matching.scheduling.local_search import improve
from c2f_matching.scheduling.model import (
    Instance,
    Meeting,
    Schedule,
    assign_tables,
    idle_slots,
    moved,
    violations,
    weighted,
)
from c2f_matching.scheduling.solver import solve, values, worth

__all__ = [
    "Instance",
    "Meeting",
    "Schedule",
    "assign_tables",
    "first_come_first_served",
    "greedy",
    "idle_slots",
    "moved",
    "plan",
    "violations",
    "weighted",
    "worth",
]


def plan(instance: Instance, seconds: float = 10.0) -> Schedule:
    """The best schedule found within `seconds` in all, always valid, with tables:

    1. the greedy schedule, or first-come-first-served where that places more value;
    2. an upper bound on any schedule's value (the linear relaxation), so that the share of
       the optimum is known;
    3. local search until it reaches that bound or its share of the time runs out (what
       carries busy events, where a few firms are wanted by many);
    4. CP-SAT: phase 1 from that start when the bound is not reached yet (it proves light
       events optimal), then phase 2, keeping the value: fewest moved published meetings,
       then fewest idle slots."""
    started = time.perf_counter()
    value = values(instance)
    start = greedy(instance)
    booked = first_come_first_served(instance)
    if worth(instance, booked.slot_of) > worth(instance, start.slot_of):
        start = Schedule(compact(instance, booked.slot_of), method="first-come-first-served")
    best = start

    def left() -> float:
        return seconds - (time.perf_counter() - started) - _MARGIN

    bound: int | None = capacity_bound(instance, value)
    if bound is None or worth(instance, start.slot_of) < bound:
        bound = lp_bound(instance, value, seconds=max(0.1, _BOUND_SHARE * left()))
    # Building the CP-SAT model takes time of its own, about in proportion to its variables.
    building = _BUILD_SECONDS_PER_OPTION * sum(len(instance.free_slots(m)) for m in instance.meetings)
    solver_fits = left() > building + _LEAST_SOLVER_SECONDS
    if bound is not None and worth(instance, start.slot_of) >= bound:
        best.proven_optimal = True
    elif left() > 0:
        search = _SEARCH_SHARE * (left() - building) if solver_fits else left()
        searched = improve(instance, value, start.slot_of, search, target=bound)
        if worth(instance, searched) > worth(instance, start.slot_of):
            best = Schedule(compact(instance, searched), method="local search")
    if left() > building + _LEAST_SOLVER_SECONDS and instance.meetings:
        solved = solve(instance, left(), hint=best.slot_of, bound=bound)
        if solved is not None and _better(instance, solved, best):
            if best.method == "local search":
                solved.method = "local search + cp-sat"
            best = solved
    if bound is not None:
        best.bound = min(bound, best.bound) if best.bound is not None else bound
        best.proven_optimal = best.proven_optimal or worth(instance, best.slot_of) >= best.bound
    problems = violations(instance, best)
    if problems:  # never publish an invalid schedule
        raise AssertionError(f"{best.method} produced an invalid schedule: {problems[:3]}")
    best.table_of = assign_tables(instance, best.slot_of)
    best.seconds = time.perf_counter() - started
    return best


_BUILD_SECONDS_PER_OPTION = 5e-5  # measured: 5,000 meetings × 21 open slots each, 5 s
_LEAST_SOLVER_SECONDS = 1.0
_BOUND_SHARE = 0.35  # of the time left: the most the linear relaxation may take
_SEARCH_SHARE = 0.75  # of the time left then: the most local search may take (it stops at the bound)
_MARGIN = 0.75  # seconds kept for reading, checking the result and assigning tables


def _better(instance: Instance, a: Schedule, b: Schedule) -> bool:
    def key(s: Schedule) -> tuple[int, int, int]:
        return (
            worth(instance, s.slot_of),
            -len(moved(instance, s.slot_of)),
            -idle_slots(instance, s.slot_of),
        )

    return key(a) >= key(b)
