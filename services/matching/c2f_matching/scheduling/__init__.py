"""Meeting scheduling: slots and tables for accepted meetings, as many as possible, with few
idle gaps, and stable when the published schedule changes."""

import time

from c2f_matching.scheduling.heuristics import first_come_first_served, greedy
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
from c2f_matching.scheduling.solver import solve, worth

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
]


def plan(instance: Instance, seconds: float = 10.0) -> Schedule:
    """The best schedule found within `seconds` in all: CP-SAT started from the greedy
    schedule, or the greedy one if the solver finds nothing better; always valid, with tables."""
    started = time.perf_counter()
    start = greedy(instance)
    best = start
    budget = seconds - (time.perf_counter() - started) - _MARGIN
    if budget > 0 and instance.meetings:
        solved = solve(instance, budget, hint=start.slot_of)
        if solved is not None and _better(instance, solved, start):
            best = solved
    problems = violations(instance, best)
    if problems:  # never publish an invalid schedule
        raise AssertionError(f"{best.method} produced an invalid schedule: {problems[:3]}")
    best.table_of = assign_tables(instance, best.slot_of)
    best.seconds = time.perf_counter() - started
    return best


_MARGIN = 0.25  # seconds kept for checking the result and assigning tables


def _better(instance: Instance, a: Schedule, b: Schedule) -> bool:
    def key(s: Schedule) -> tuple[int, int, int]:
        return (
            worth(instance, s.slot_of),
            -len(moved(instance, s.slot_of)),
            -idle_slots(instance, s.slot_of),
        )

    return key(a) >= key(b)
