"""Benchmark of the embedded database's switch interval: how long a short transaction waits
beside statements that read many rows, with SecantusDB on CPython's default switch interval
(5 ms) and on the one `c2f up` gives it (`c2f_cli.stack.DATABASE_SWITCH_INTERVAL_S`).

SecantusDB serves each connection in a thread of one Python process; WiredTiger lets go of the
GIL on every cursor call, so a statement takes the GIL back hundreds of times, and each time
may wait a whole switch interval behind a thread busy reading. Under load that is what the
services' statements did (an outbox relay reads its pending rows, a gauge counts them).

For each interval and each number of readers (--readers, default 0, 1 and 2), the script starts
a database of its own on a free port (data in a temporary directory), stores --rows pending
outbox-shaped rows (1 KiB, indexed on published and seq, as `Outbox` does), lets the readers
read the oldest 2,000 of them over and over, and times --transactions transactions one after
another on another collection (a read by id, an insert, a `$inc` of one counter: the shape of
a registration). Printed: the transactions' p50, p90 and rate, and how many reads the readers
made a second, beside the default interval's figures (the baseline) as ratios.

Usage: .venv/bin/python bench/database_gil.py [--readers 0,1,2] [--rows 3000] [--transactions 150]
"""

import argparse
import asyncio
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from c2f_cli.processes import free_port, spawn, wait_for_port
from c2f_cli.stack import DATABASE_SWITCH_INTERVAL_S, database_argv
from measuring import machine, percentile, stop_on_sigterm


class Figures:
    def __init__(self, latencies: list[float], elapsed: float, reads: int) -> None:
        self.p50 = percentile(latencies, 50) * 1000
        self.p90 = percentile(latencies, 90) * 1000
        self.rate = len(latencies) / elapsed
        self.reads = reads / elapsed


async def measure(interval: float | None, readers: int, rows: int, transactions: int) -> Figures:
    home = Path(tempfile.mkdtemp(prefix="c2f-gil-"))
    port = free_port()
    server = spawn("mongo", database_argv("127.0.0.1", port, home / "data", interval), home)
    client: AsyncMongoClient[dict[str, Any]] | None = None
    try:
        wait_for_port(server, "127.0.0.1", port)
        client = AsyncMongoClient(f"mongodb://127.0.0.1:{port}/?retryWrites=false&directConnection=true")
        db = client["gil"]
        await db.outbox.create_index([("published", 1), ("seq", 1)])
        await db.outbox.insert_many(
            [{"_id": i, "published": False, "seq": i, "payload": "x" * 1000} for i in range(rows)]
        )
        done = asyncio.Event()
        reads = 0

        async def read() -> None:
            nonlocal reads
            while not done.is_set():
                await db.outbox.find({"published": False}).sort("seq", 1).limit(2000).to_list(None)
                reads += 1

        tasks = [asyncio.create_task(read()) for _ in range(readers)]
        await asyncio.sleep(0.5)
        reads = 0
        latencies = []
        started = time.perf_counter()
        for i in range(transactions):
            begun = time.perf_counter()
            async with client.start_session() as session, await session.start_transaction():
                await db.items.find_one({"_id": i}, session=session)
                await db.items.insert_one({"_id": i, "body": "y" * 500}, session=session)
                await db.counters.update_one({"_id": "n"}, {"$inc": {"n": 1}}, upsert=True, session=session)
            latencies.append(time.perf_counter() - begun)
        elapsed = time.perf_counter() - started
        done.set()
        await asyncio.gather(*tasks)
        return Figures(latencies, elapsed, reads)
    finally:
        if client is not None:
            await client.close()
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


async def run(args: argparse.Namespace) -> None:
    console = Console()
    readers = [int(n) for n in args.readers.split(",")]
    table = Table(
        title=f"A 3-statement transaction beside readers of {min(args.rows, 2000):,} rows "
        f"({args.transactions} transactions each)"
    )
    columns = ("readers", "switch interval", "p50 ms", "p90 ms", "transactions/s", "reads/s", "p50 ÷ default")
    for column in columns:
        table.add_column(column, justify="right")
    for n in readers:
        figures = {}
        for interval in (None, DATABASE_SWITCH_INTERVAL_S):
            name = "default (5 ms)" if interval is None else f"{interval * 1e6:g} µs (c2f up)"
            console.print(f"  {n} reader(s), {name}…")
            figures[interval] = await measure(interval, n, args.rows, args.transactions)
        base = figures[None]
        for interval, f in figures.items():
            name = "default (5 ms)" if interval is None else f"{interval * 1e6:g} µs (c2f up)"
            ratio = "1" if interval is None else f"{f.p50 / base.p50:.2f}"
            table.add_row(
                str(n), name, f"{f.p50:.1f}", f"{f.p90:.1f}", f"{f.rate:.1f}", f"{f.reads:.1f}", ratio
            )
    console.print(machine())
    console.print(table)


def main() -> int:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--readers", default="0,1,2", help="readers, comma-separated (default 0,1,2)")
    parser.add_argument("--rows", type=int, default=3000, help="pending rows to read (default 3000)")
    parser.add_argument("--transactions", type=int, default=150, help="timed per run (default 150)")
    asyncio.run(run(parser.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
