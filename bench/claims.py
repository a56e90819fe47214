"""What one claim of notifications' delivery costs as the queue grows: the claim as it is made
when the queue is caught up (the oldest due messages of the whole queue) beside the claim made
while catching up on a backlog (the oldest of one lane, `outgoing.LANES`), in the same run, on
the embedded database.

On SecantusDB a query's cost grows with the entries its index range holds, whatever its limit,
so a claim from the whole queue costs about as much as reading all of it, and catching up on n
messages costs O(n²). A lane holds an eighth of the queue.

The script starts a database server on a free port in a temporary directory, as `c2f up` runs
it, and for each --sizes n stores n pending messages (about 1.5 KiB each, as mails are, spread
over the lanes by id as `outgoing.queue` spreads them) beside 2,000 sent ones, with delivery's
indexes, then times --rounds claims of --batch messages each way (`Delivery._claim`: the read,
the lease, the facts), giving the claimed ones back after each.

Usage: .venv/bin/python bench/claims.py [--sizes 500 2000 5000] [--batch 32] [--rounds 10]
"""

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI

from c2f_cli.config import StackConfig
from c2f_notifications.config import Settings
from c2f_notifications.delivery import Delivery
from c2f_notifications.outgoing import LANES, lane_of
from c2f_notifications.store import OUTGOING
from c2f_shared.service import Runtime
from measuring import machine, on_infrastructure, stop_on_sigterm

SENT = 2000


def message(i: int, status: str, at: datetime) -> dict[str, Any]:
    key = f"registration_confirmed:p{i}:p{i}"
    return {
        "_id": key,
        "kind": "registration_confirmed",
        "about_id": f"p{i}",
        "recipient_id": f"p{i}",
        "data": {"event_id": "e1", "note": "x" * 1400},
        "status": status,
        "channel": "email",
        "attempts": 0,
        "tries": [],
        "next_attempt_at": at,
        "created_at": at,
        "lane": lane_of(key),
    }


async def timed_claims(delivery: Delivery, runtime: Runtime, batch: int, rounds: int, backlog: bool) -> float:
    """Median milliseconds of a claim; what each claimed is pending again before the next."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        claimed = await delivery._claim(batch, backlog)
        times.append((time.perf_counter() - started) * 1000)
        assert claimed == batch, f"claimed {claimed} of {batch}"
        while not delivery._claimed.empty():
            delivery._claimed.get_nowait()
        await runtime.db[OUTGOING].update_many(
            {"status": "sending"}, {"$set": {"status": "pending"}, "$unset": {"claim": ""}}
        )
    return statistics.median(times)


async def bench(
    config: StackConfig, sizes: list[int], batch: int, rounds: int
) -> list[tuple[int, float, float]]:
    results = []
    for size in sizes:
        settings = Settings(
            kafka_bootstrap=config.kafka_bootstrap,
            mongo_uri=config.mongo_uri_of("notifications"),
            mongo_db=f"claims_{uuid.uuid4().hex[:8]}",
            consumer_group=f"claims-{uuid.uuid4().hex[:8]}",
            link_secret="bench",
        )
        runtime = Runtime(settings, service="notifications")
        async with runtime.lifespan(FastAPI()):
            delivery = Delivery(runtime, settings)
            await delivery.ensure_indexes()
            start = datetime.now(UTC) - timedelta(hours=1)
            await runtime.db[OUTGOING].insert_many(
                [message(i, "sent", start) for i in range(SENT)]
                + [message(SENT + i, "pending", start + timedelta(milliseconds=i)) for i in range(size)]
            )
            whole = await timed_claims(delivery, runtime, batch, rounds, backlog=False)
            lane = await timed_claims(delivery, runtime, batch, rounds, backlog=True)
        results.append((size, whole, lane))
        print(f"  {size:>6,} pending: whole queue {whole:7.1f} ms, one lane {lane:7.1f} ms", flush=True)
    return results


def main() -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 2000, 5000], help="pending messages")
    parser.add_argument("--batch", type=int, default=32, help="messages per claim (delivery_batch)")
    parser.add_argument("--rounds", type=int, default=10, help="claims timed each way")
    args = parser.parse_args()
    if min(args.sizes) < args.batch * LANES:
        parser.error(f"each size must hold at least --batch × {LANES} lanes = {args.batch * LANES} messages")
    print(f"machine: {machine()}")
    results = on_infrastructure(
        "c2f-claims-", lambda config: asyncio.run(bench(config, args.sizes, args.batch, args.rounds))
    )
    print(f"\nmedian ms per claim of {args.batch} (read, lease, facts), {SENT:,} sent messages beside")
    print(f"{'pending':>8} {'whole queue':>12} {'one lane':>9} {'whole ÷ lane':>13}")
    for size, whole, lane in results:
        print(f"{size:>8,} {whole:12.1f} {lane:9.1f} {whole / lane:13.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
