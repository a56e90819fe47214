"""Meeting scheduling: how close each method comes to the optimum, on the same instances.

For each size, one synthetic brokerage day (or two) is generated
(`c2f_matching.scheduling.instances.generate`: skewed popularity, 30 % of
participants with gaps in their availability), every meeting of weight 1 (as the
issue measures; --weighted gives them priorities 1–6), and these methods
schedule its accepted meetings:

  first-come-first-served  each meeting, in acceptance order, takes the earliest
                           open slot (what booking tools do);
  greedy                   most valuable and most constrained first, in the slot
                           that adds least waiting;
  local search N s         `local_search.improve` from the greedy schedule alone,
                           until it reaches the LP bound or N s pass;
  cp-sat N s               whole-model CP-SAT from the greedy schedule (what plan()
                           was before local search), both phases within N s;
  plan() N s               what the platform publishes (--plan-seconds, default 10):
                           the better start, the bound, local search, then CP-SAT;
  exact M s                CP-SAT phase 1 alone with a long limit (--exact-seconds,
                           default 60): "optimum" where it proves it.

Every instance also gets an upper bound: the LP relaxation's value (GLOP), capped
by the exact model's proven bound; "÷ bound" is the share of it each method
reaches, a lower bound on its share of the optimum, known even where no solver
proves the optimum. Also: participants' idle slots between meetings, seconds
(wall clock, as a caller sees them), and whether the schedule is valid.

Target (issue 17): on every size, plan() reaches ≥ 99 % of the optimum (of the
bound where the optimum is not proven) within 10 s, and never fewer meetings
than first-come-first-served. The script exits non-zero if any schedule is
invalid or the target is missed.

Sizes (participants / requests / slots / tables; popularity skew is the most
requested participant's requests ÷ the mean):
  brief   70 / 140 / 6 / 12              medium  200 / 500 / 12 / 30
  target  400 / 1,000 / 16 / 50          large   1,000 / 5,000 / 24 / 150 (two days)
  dense   100 / 600 / 12 / 50, requests per participant = slots, strongly skewed
  busy    400 / 2,400 / 16 / 200, 12 requests per participant, strongly skewed

Usage: .venv/bin/python bench/scheduling.py [--sizes brief busy] [--seed 0]
       [--plan-seconds 10] [--exact-seconds 60] [--weighted] [--quick] [--markdown]
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
from c2f_matching.scheduling.bound import lp_bound
from c2f_matching.scheduling.instances import generate
from c2f_matching.scheduling.local_search import improve
from c2f_matching.scheduling.model import party_load
from c2f_matching.scheduling.solver import maximise_meetings, solve, values

console = Console()
if not console.is_terminal:  # piped or redirected: do not wrap the table at 80 columns
    console = Console(width=150)


@dataclass(frozen=True)
class Size:
    name: str
    participants: int
    requests: int
    slots: int
    tables: int
    days: int = 1
    skew: float = 0.8  # popularity exponent of `generate`


SIZES = {
    s.name: s
    for s in (
        Size("brief", 70, 140, 6, 12),
        Size("medium", 200, 500, 12, 30),
        Size("target", 400, 1000, 16, 50),
        Size("dense", 100, 600, 12, 50, skew=1.0),
        Size("busy", 400, 2400, 16, 200, skew=1.0),
        Size("large", 1000, 5000, 24, 150, days=2),
    )
}
TARGET_SHARE, TARGET_SECONDS = 0.99, 10.0
QUICK_SIZES, QUICK_EXACT_SECONDS = ["brief", "dense", "busy"], 20.0


@dataclass
class Row:
    method: str
    slot_of: dict[str, int] | None  # None: the method produced no schedule
    seconds: float
    problems: list[str]


@dataclass
class Exact:
    value: int | None  # weighted value of the exact model's best schedule
    bound: int | None  # proven upper bound: the LP relaxation's, or the exact model's if lower
    optimal: bool
    lp_bound: int | None = None  # the LP relaxation's value, floored


@dataclass
class Result:
    size: Size
    seed: int
    instance: Instance
    rows: list[Row]
    exact: Exact
    plan_bound: float | None
    plan_reported_seconds: float | None  # Schedule.seconds: as plan() counts it


def timed(run: Callable[[], Schedule]) -> tuple[Schedule, float]:
    started = time.perf_counter()
    schedule = run()
    return schedule, time.perf_counter() - started


def measure(size: Size, seed: int, plan_seconds: float, exact_seconds: float, weights: bool) -> Result:
    instance = generate(
        size.participants,
        size.requests,
        size.slots,
        days=size.days,
        tables=size.tables,
        seed=seed,
        skew=size.skew,
        weighted=weights,
    )
    value = values(instance)
    lp = lp_bound(instance, value, seconds=120)
    rows = []
    fcfs, seconds = timed(lambda: first_come_first_served(instance))
    rows.append(Row("first-come-first-served", fcfs.slot_of, seconds, violations(instance, fcfs)))
    start, seconds = timed(lambda: greedy(instance))
    rows.append(Row("greedy", start.slot_of, seconds, violations(instance, start)))
    searched, seconds = timed(
        lambda: Schedule(improve(instance, value, start.slot_of, plan_seconds, target=lp), method="ls")
    )
    rows.append(
        Row(f"local search {plan_seconds:g} s", searched.slot_of, seconds, violations(instance, searched))
    )
    whole, seconds = timed(lambda: solve(instance, plan_seconds, hint=start.slot_of) or start)
    rows.append(Row(f"cp-sat {plan_seconds:g} s", whole.slot_of, seconds, violations(instance, whole)))

    label = f"plan() {plan_seconds:g} s"
    plan_bound, plan_reported = None, None
    try:
        planned, seconds = timed(lambda: plan(instance, plan_seconds))
    except AssertionError as error:  # plan() refuses to return an invalid schedule
        rows.append(Row(label, None, math.nan, [str(error)]))
    else:
        rows.append(Row(label, planned.slot_of, seconds, violations(instance, planned)))
        plan_bound, plan_reported = planned.bound, planned.seconds

    started = time.perf_counter()
    phase = maximise_meetings(instance, exact_seconds, hint=start.slot_of)
    seconds = time.perf_counter() - started
    if phase is None:
        rows.append(Row(f"exact {exact_seconds:g} s", None, seconds, ["no solution found"]))
        exact = Exact(None, lp, False, lp)
    else:
        exact_schedule = Schedule(phase.slot_of, method="exact")
        # With no published meetings, the solver's value is the weighted value; check it.
        reached = weighted(instance, phase.slot_of)
        problems = violations(instance, exact_schedule)
        if reached != phase.value:
            problems.append(f"solver reports {phase.value}, the schedule is worth {reached}")
        # The objective is integral, so the floor of a bound is still one.
        bounds = [math.floor(phase.bound + 1e-6), *([lp] if lp is not None else [])]
        # A value that reaches a bound is optimal, whether or not the solver proved it.
        exact = Exact(reached, min(bounds), phase.optimal or reached >= min(bounds), lp)
        status = "optimum" if phase.optimal else f"bound {math.floor(phase.bound + 1e-6):,}"
        rows.append(Row(f"exact {exact_seconds:g} s ({status})", phase.slot_of, seconds, problems))
    return Result(size, seed, instance, rows, exact, plan_bound, plan_reported)


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
    "÷ bound",
    "idle slots",
    "seconds",
    "valid",
]


def describe(result: Result) -> str:
    size, instance = result.size, result.instance
    load = party_load(instance.meetings)
    mean = 2 * len(instance.meetings) / size.participants
    exact = result.exact
    proof = (
        f"optimum {exact.value:,} (proven)"
        if exact.optimal and exact.value is not None
        else f"optimum not proven; best known {exact.value}"
    )
    return (
        f"{size.name}: {size.participants:,} participants, {len(instance.meetings):,} accepted "
        f"requests (total weight {sum(m.weight for m in instance.meetings):,}), "
        f"{instance.slots} slots over {size.days} day{'s' if size.days > 1 else ''}, "
        f"{instance.tables} tables, {len(instance.available)} participants with gaps, seed {result.seed}; "
        f"{mean:.1f} requests per participant ({mean / instance.slots:.2f} per slot), popularity skew "
        f"{max(load.values()) / mean:.1f}; LP bound {exact.lp_bound}, {proof}"
    )


def verdict(result: Result, plan_seconds: float) -> tuple[bool, str]:
    """Did plan() reach ≥ 99 % of the optimum (or of the bound) within 10 s, and at least as
    many meetings as first-come-first-served?"""
    rows = {r.method.split(" ")[0]: r for r in result.rows}
    planned, booked = rows["plan()"], rows["first-come-first-served"]
    exact = result.exact
    reference = exact.value if exact.optimal else exact.bound
    if planned.slot_of is None or reference is None or booked.slot_of is None:
        return False, f"{result.size.name}: NOT met, plan() or the bound is missing"
    value = weighted(result.instance, planned.slot_of)
    quality = value / reference
    against = "the proven optimum" if exact.optimal else "the bound (optimum not proven)"
    in_time = planned.seconds <= TARGET_SECONDS
    enough = len(planned.slot_of) >= len(booked.slot_of)
    met = quality >= TARGET_SHARE and in_time and enough and plan_seconds <= TARGET_SECONDS
    text = (
        f"{result.size.name} / {result.seed}: plan() {value:,} of {reference:,} = {100 * quality:.2f} % of "
        f"{against} in {planned.seconds:.2f} s; {len(planned.slot_of):,} meetings against "
        f"first-come-first-served's {len(booked.slot_of):,} → {'met' if met else 'NOT met'}"
    )
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
    parser.add_argument(
        "--weighted", action="store_true", help="meetings weigh 1–6 by priority (default: every meeting 1)"
    )
    args = parser.parse_args()
    names: list[str] = args.sizes or (QUICK_SIZES if args.quick else list(SIZES))
    exact_seconds: float = args.exact_seconds or (QUICK_EXACT_SECONDS if args.quick else 60.0)

    results = []
    for name in names:
        for seed in args.seed:
            with console.status(f"{name}, seed {seed}: scheduling…"):
                results.append(measure(SIZES[name], seed, args.plan_seconds, exact_seconds, args.weighted))

    table = Table("size", *HEADERS, title="Meeting scheduling, same instances for every method")
    for result in results:
        for i, row in enumerate(result.rows):
            table.add_row(f"{result.size.name} / {result.seed}" if i == 0 else "", *cells(result, row))
        table.add_section()
    console.print(table)
    for result in results:
        console.print(describe(result))
        reported = result.plan_reported_seconds
        if reported is not None:
            console.print(f"  plan() counts {reported:.2f} s of its own; its bound {result.plan_bound}")
    if args.markdown:
        print()
        print("| size | " + " | ".join(HEADERS) + " |")
        print("|" + "---|" * (len(HEADERS) + 1))
        for result in results:
            for row in result.rows:
                print(f"| {result.size.name} | " + " | ".join(cells(result, row)) + " |")

    failed = False
    for result in results:
        met, text = verdict(result, args.plan_seconds)
        failed = failed or not met
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
