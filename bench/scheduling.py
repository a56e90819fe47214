"""Meeting scheduling: how close the fast methods come to the optimum, on the same instances.

For each size, one synthetic brokerage day (or two) is generated
(`c2f_matching.scheduling.instances.generate`: skewed popularity, 30 % of
participants with gaps in their availability, a table for every third
participant), and four methods schedule its accepted meetings:

  first-come-first-served  each meeting, in acceptance order, takes the earliest
                           open slot (what booking tools do);
  greedy                   the heuristic: most valuable and most constrained
                           first, fewest idle slots, then a repair pass;
  plan() N s               what the platform publishes: greedy, then CP-SAT in two
                           phases (most weighted meetings, then fewest idle slots)
                           within N seconds in all (--plan-seconds, default 10);
  exact M s                CP-SAT phase 1 alone (`solver.maximise_meetings`), the
                           exact model for the weighted maximum, started from the
                           greedy schedule, with a long limit (--exact-seconds,
                           default 60): its value, and the best proven bound
                           ("optimum" if it proved its value optimal).

For each method: meetings scheduled, their weighted value, the share of the
accepted requests scheduled, the share of the optimum ("÷ exact": weighted value
÷ the exact model's value; "÷ bound": ÷ its proven bound, capped at the total
weight of the requests, a lower bound on the true share), participants' idle
slots between meetings, seconds (wall clock, as a caller sees them), and whether
the schedule is valid. The exact model ignores idle slots: its idle figure is
incidental.

Target: at the target size (400 participants, 1,000 requests, 16 slots), plan()
reaches ≥ 99 % of the optimum (of the proven bound when the optimum is not
proven) within 10 s. The script exits non-zero if any schedule is invalid.

Sizes (participants / requests / slots):
  brief   70 / 140 / 6          medium  200 / 500 / 12
  target  400 / 1,000 / 16      large   1,000 / 5,000 / 24 (two days of 12)

Usage: .venv/bin/python bench/scheduling.py [--sizes brief target] [--seed 0]
       [--plan-seconds 10] [--exact-seconds 60] [--quick] [--markdown]
"""

import argparse
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from c2f_matching.scheduling import (
    Instance,
    Schedule,
    first_come_first_served,
    greedy,
    idle_slots,
    plan,
    violations,
    weighted,
)
from c2f_matching.scheduling.instances import generate
from c2f_matching.scheduling.solver import maximise_meetings

console = Console()
if not console.is_terminal:  # piped or redirected: do not wrap the table at 80 columns
    console = Console(width=150)


@dataclass(frozen=True)
class Size:
    name: str
    participants: int
    requests: int
    slots: int
    days: int = 1


SIZES = {
    s.name: s
    for s in (
        Size("brief", 70, 140, 6),
        Size("medium", 200, 500, 12),
        Size("target", 400, 1000, 16),
        Size("large", 1000, 5000, 24, days=2),
    )
}
TARGET_SIZE, TARGET_SHARE, TARGET_SECONDS = "target", 0.99, 10.0
QUICK_SIZES, QUICK_EXACT_SECONDS = ["brief", "target"], 20.0


@dataclass
class Row:
    method: str
    slot_of: dict[str, int] | None  # None: the method produced no schedule
    seconds: float
    problems: list[str]


@dataclass
class Exact:
    value: int | None  # weighted value of the exact model's best schedule
    bound: int | None  # proven upper bound on the weighted value (objective is integral)
    optimal: bool
    solver_bound: float | None = None  # CP-SAT's own bound, before capping at the total weight


@dataclass
class Result:
    size: Size
    seed: int
    instance: Instance
    rows: list[Row]
    exact: Exact
    plan_phase1_optimal: bool
    plan_bound: float | None
    plan_reported_seconds: float | None  # Schedule.seconds: greedy + solver, as plan() counts it


def timed(run: Callable[[], Schedule]) -> tuple[Schedule, float]:
    started = time.perf_counter()
    schedule = run()
    return schedule, time.perf_counter() - started


def measure(size: Size, seed: int, plan_seconds: float, exact_seconds: float) -> Result:
    instance = generate(size.participants, size.requests, size.slots, days=size.days, seed=seed)
    rows = []
    fcfs, seconds = timed(lambda: first_come_first_served(instance))
    rows.append(Row("first-come-first-served", fcfs.slot_of, seconds, violations(instance, fcfs)))
    start, seconds = timed(lambda: greedy(instance))
    rows.append(Row("greedy", start.slot_of, seconds, violations(instance, start)))

    label = f"plan() {plan_seconds:g} s"
    plan_optimal, plan_bound, plan_reported = False, None, None
    try:
        planned, seconds = timed(lambda: plan(instance, plan_seconds))
    except AssertionError as error:  # plan() refuses to return an invalid schedule
        rows.append(Row(label, None, math.nan, [str(error)]))
    else:
        rows.append(Row(label, planned.slot_of, seconds, violations(instance, planned)))
        plan_optimal, plan_bound = planned.proven_optimal, planned.bound
        plan_reported = planned.seconds

    started = time.perf_counter()
    phase = maximise_meetings(instance, exact_seconds, hint=start.slot_of)
    seconds = time.perf_counter() - started
    if phase is None:
        rows.append(Row(f"exact {exact_seconds:g} s", None, seconds, ["no solution found"]))
        exact = Exact(None, None, False)
    else:
        exact_schedule = Schedule(phase.slot_of, method="exact")
        # With no published meetings, the solver's value is the weighted value; check it.
        value = weighted(instance, phase.slot_of)
        problems = violations(instance, exact_schedule)
        if value != phase.value:
            problems.append(f"solver reports {phase.value}, the schedule is worth {value}")
        # The objective is integral, so its floor is still a bound; and no schedule can be worth
        # more than all the requests together, which caps a bound the solver has not yet tightened.
        total = sum(m.weight for m in instance.meetings)
        bound = min(math.floor(phase.bound + 1e-6), total)
        exact = Exact(value, bound, phase.optimal, phase.bound)
        status = "optimum" if phase.optimal else f"bound {bound:,}"
        rows.append(Row(f"exact {exact_seconds:g} s ({status})", phase.slot_of, seconds, problems))
    return Result(size, seed, instance, rows, exact, plan_optimal, plan_bound, plan_reported)


def share(value: int, of: int | None) -> str:
    return f"{100 * value / of:.2f} %" if of else "—"


def cells(result: Result, row: Row) -> list[str]:
    instance, exact = result.instance, result.exact
    if row.slot_of is None:
        return [row.method, "—", "—", "—", "—", "—", "—", f"{row.seconds:.2f}", "no"]
    count, value = len(row.slot_of), weighted(instance, row.slot_of)
    return [
        row.method,
        f"{count:,}",
        f"{value:,}",
        f"{100 * count / len(instance.meetings):.1f} %",
        share(value, exact.value),
        share(value, exact.bound),
        f"{idle_slots(instance, row.slot_of):,}",
        f"{row.seconds:.2f}",
        "yes" if not row.problems else "NO",
    ]


HEADERS = [
    "method",
    "meetings",
    "weighted",
    "of requests",
    "÷ exact",
    "÷ bound",
    "idle slots",
    "seconds",
    "valid",
]


def describe(result: Result) -> str:
    size, instance = result.size, result.instance
    return (
        f"{size.name}: {size.participants:,} participants, {len(instance.meetings):,} accepted "
        f"requests (total weight {sum(m.weight for m in instance.meetings):,}), "
        f"{instance.slots} slots over {size.days} day{'s' if size.days > 1 else ''}, "
        f"{instance.tables} tables, {len(instance.available)} participants with gaps, seed {result.seed}"
    )


def target_verdict(result: Result, plan_seconds: float) -> tuple[bool, str]:
    """Did plan() reach ≥ 99 % of the optimum (or of the bound, if unproven) within 10 s?"""
    planned = next(r for r in result.rows if r.method.startswith("plan()"))
    exact = result.exact
    reference = exact.value if exact.optimal else exact.bound
    if planned.slot_of is None or reference is None:
        return False, "target NOT met: plan() or the exact model produced no schedule"
    value = weighted(result.instance, planned.slot_of)
    quality = value / reference
    against = "the proven optimum" if exact.optimal else "the proven bound (optimum not proven)"
    in_time = planned.seconds <= TARGET_SECONDS
    met = quality >= TARGET_SHARE and in_time and plan_seconds <= TARGET_SECONDS
    text = (
        f"target ({result.size.name}, seed {result.seed}): plan() reached {value:,} of {reference:,} = "
        f"{100 * quality:.2f} % of {against} in {planned.seconds:.2f} s "
        f"(plan limit {plan_seconds:g} s) → {'met' if met else 'NOT met'}"
    )
    if not met:
        reasons = []
        if quality < TARGET_SHARE:
            reasons.append(f"{100 * quality:.2f} % < {100 * TARGET_SHARE:.0f} %")
        if not in_time:
            reasons.append(f"{planned.seconds:.2f} s > {TARGET_SECONDS:g} s")
        if plan_seconds > TARGET_SECONDS:
            reasons.append(f"--plan-seconds {plan_seconds:g} exceeds {TARGET_SECONDS:g}")
        text += f" ({'; '.join(reasons)})"
    return met, text


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        choices=list(SIZES),
        metavar="SIZE",
        help=f"sizes to run, of {', '.join(SIZES)} (default: all; with --quick: {' '.join(QUICK_SIZES)})",
    )
    parser.add_argument(
        "--seed", type=int, nargs="+", default=[0], help="instance seeds, one run per seed (default 0)"
    )
    parser.add_argument("--plan-seconds", type=float, default=10.0, help="plan()'s time limit (default 10)")
    parser.add_argument(
        "--exact-seconds",
        type=float,
        help="the exact model's time limit (default 60; with --quick: 20)",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help=f"a faster run: sizes {' and '.join(QUICK_SIZES)}, exact model limited to "
        f"{QUICK_EXACT_SECONDS:g} s (unless --sizes / --exact-seconds say otherwise)",
    )
    parser.add_argument("--markdown", action="store_true", help="also print the figures as a Markdown table")
    args = parser.parse_args()
    names: list[str] = args.sizes or (QUICK_SIZES if args.quick else list(SIZES))
    exact_seconds: float = args.exact_seconds or (QUICK_EXACT_SECONDS if args.quick else 60.0)

    results = []
    for name in names:
        for seed in args.seed:
            with console.status(f"{name}, seed {seed}: scheduling…"):
                results.append(measure(SIZES[name], seed, args.plan_seconds, exact_seconds))

    table = Table("size", *HEADERS, title="Meeting scheduling, same instances for every method")
    for result in results:
        for i, row in enumerate(result.rows):
            table.add_row(f"{result.size.name} / {result.seed}" if i == 0 else "", *cells(result, row))
        table.add_section()
    console.print(table)
    for result in results:
        console.print(describe(result))
        phase1 = "proven optimal" if result.plan_phase1_optimal else "not proven optimal"
        bound = f", bound {result.plan_bound:,.0f}" if result.plan_bound is not None else ""
        reported = result.plan_reported_seconds
        own = f"; plan() counts {reported:.2f} s of its own" if reported is not None else ""
        console.print(f"  plan()'s phase 1: {phase1}{bound}{own}")
        exact = result.exact
        if (
            exact.solver_bound is not None
            and exact.bound is not None
            and exact.solver_bound > exact.bound + 1
        ):
            console.print(
                f"  exact model: the solver's bound {exact.solver_bound:,.0f} is above the total weight of "
                f"all requests; the bound used is {exact.bound:,}"
            )
    if args.markdown:
        print()
        print("| size | " + " | ".join(HEADERS) + " |")
        print("|" + "---|" * (len(HEADERS) + 1))
        for result in results:
            for row in result.rows:
                print(f"| {result.size.name} | " + " | ".join(cells(result, row)) + " |")

    failed = False
    for result in results:
        if result.size.name == TARGET_SIZE:
            met, text = target_verdict(result, args.plan_seconds)
            console.print(text, style="green" if met else "bold red")
    for result in results:
        for row in result.rows:
            if row.problems:
                failed = True
                console.print(
                    f"INVALID: {result.size.name} / {result.seed}, {row.method}: {row.problems[:3]}",
                    style="bold red",
                )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
