"""Idle benchmark: how much CPU the whole embedded stack burns while nobody uses it.

The script starts its own stack on free ports in a temporary directory, as `c2f up` runs it
(Tansu, SecantusDB, the SMTP sink, the four services), in two steps:

1. Baseline: the broker, the database and the SMTP sink alone, nobody connected, for --seconds.
2. The four services started too; after they are ready and --settle seconds have passed (start-up
   work, such as matching loading its model, is over), the whole stack for --seconds.

CPU is user + system time per process from /proc, shown as a percentage of one core. The
criterion is the whole idle stack (broker, database, four services) at most --target % of one
core; the baseline shows what the servers cost on their own, without the services' clients.

Usage: .venv/bin/python bench/idle.py [--seconds 30] [--settle 20] [--target 5]
Exit status 1 if the stack is above the target.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.stack import Stack
from measuring import MACHINE, cpu_seconds, cpu_used, machine, stop_on_sigterm

SERVERS = ("kafka", *(f"mongo-{name}" for name in SERVICES), "smtp")  # a database for each service


def sample(stack: Stack, seconds: float) -> dict[str, float]:
    """Percent of one core per process over `seconds`."""
    before = cpu_seconds(stack)
    time.sleep(seconds)
    used = cpu_used(before, cpu_seconds(stack))
    return {name: 100 * cpu / seconds for name, cpu in used.items()}


def main() -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=30, help="how long each sample lasts")
    parser.add_argument("--settle", type=float, default=20, help="wait after the services are ready")
    parser.add_argument("--target", type=float, default=5, help="%% of one core the idle stack may use")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    with tempfile.TemporaryDirectory(prefix="c2f-idle-") as home:
        stack = Stack(StackConfig.on_free_ports(Path(home)), say=lambda line: print(f"  {line}"))
        try:
            stack.start_infrastructure()
            time.sleep(2)
            alone = sample(stack, args.seconds)
            stack.start_services()
            print(f"services ready; settling {args.settle:.0f} s")
            time.sleep(args.settle)
            idle = sample(stack, args.seconds)
        finally:
            stack.stop()
    if not idle:
        print("no /proc here: nothing measured")
        return 1
    print(f"\n% of one core over {args.seconds:.0f} s | servers alone (baseline) | whole stack idle")
    for name in [*SERVERS, *(n for n in idle if n not in SERVERS and n != "this benchmark")]:
        if name in idle:
            print(f"  {name:<22} {alone.get(name, float('nan')):8.1f} {idle[name]:8.1f}")
    stack_total = sum(v for n, v in idle.items() if n not in ("smtp", "this benchmark", MACHINE))
    servers_alone = sum(alone.get(n, 0.0) for n in SERVERS if n != "smtp")
    print(f"  {'stack (broker, db, 4 services)':<22} {servers_alone:8.1f} {stack_total:8.1f}")
    print(
        f"  {'the whole machine':<22} {alone.get('(the whole machine)', 0):8.1f} "
        f"{idle.get('(the whole machine)', 0):8.1f}"
    )
    verdict = "ok" if stack_total <= args.target else "ABOVE TARGET"
    print(f"\nidle stack {stack_total:.1f} % of one core (target ≤ {args.target:g} %): {verdict}")
    return 0 if stack_total <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
