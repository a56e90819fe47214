"""Registration's own speed on the embedded stack, against the database's raw insert rate.

Only the broker, the database and registration run, so the figures are
registration's cost, not the whole platform's (see bench/flow.py for that).

Figures, each beside a baseline measured in the same run:
  1. and 2. companies per second over HTTP (1 client, 32 clients) / bare registration-shaped
     transactions per second (a natural-key lookup, the insert of a registration's document
     and an outbox upsert in one transaction, retried on a write conflict as the services'
     runtime retries; as bench/load.py's baseline). What a registration does beyond that (the
     HTTP request, the key check, the cluster's lookup, the relay's publish and mark) is what
     the ratio measures. The requests come from a lean HTTP client (measuring.LeanHttp: one
     keep-alive connection per client), whose own CPU time is small beside registration's;
  3. and 4. the same with httpx as the client, as measured before 2026-12-05 (httpx spends
     1.5-5 ms of CPU per request itself, on the same two cores);
  5. companies per second over HTTP (lean client, 1 and 32) / single-document inserts per
     second straight into the database (1 and 32 writers);
  6. rows per second of a 1,000-row CSV import (POST to done) / raw inserts per second.

Usage: .venv/bin/python bench/registration.py [--companies 300] [--rows 1000]
"""

import argparse
import asyncio
import csv
import io
import json
import random
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from pymongo import AsyncMongoClient, UpdateOne
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.table import Table

from c2f_cli.config import StackConfig
from c2f_cli.stack import Stack
from c2f_registration import importer
from measuring import LeanHttp, stop_on_sigterm

console = Console()
CONCURRENCY = 32

PROFILE: dict[str, Any] = {
    "country": "GR",
    "city": "Θεσσαλονίκη",
    "sectors": ["ict", "mobility"],
    "sub_sectors": ["software", "public_transport"],
    "offers": [
        {
            "title": "Εφαρμογή δημόσιων συγκοινωνιών",
            "description": "Πληροφόρηση επιβατών σε πραγματικό χρόνο για δήμους.",
            "category": "public_transport_software",
            "language": "el",
        }
    ],
    "needs": [
        {
            "title": "Distribuidor en México",
            "description": "Buscamos socio.",
            "kind": "distributor",
            "language": "es",
        }
    ],
    "target_markets": ["MX", "US-CA"],
    "contacts": [{"name": "Γιώργος", "email": "g@astyapp.example", "language": "el", "consent": "brochure"}],
}


async def raw_inserts(mongo_uri: str, n: int, concurrency: int) -> float:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    coll = client["bench_raw"][uuid.uuid4().hex]
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            i = queue.pop()
            await coll.insert_one({"_id": i, "legal_name": f"Company {i}", **PROFILE})

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = n / (time.perf_counter() - start)
    await client.close()
    return rate


async def bare_registrations(mongo_uri: str, n: int, concurrency: int) -> float:
    """Registration-shaped transactions per second: lookup by natural key, insert, outbox upsert."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri, tz_aware=True)
    db = client["bench_raw"]
    items, outbox = db[uuid.uuid4().hex], db[uuid.uuid4().hex]
    await items.create_index("natural_key", unique=True)
    queue = list(range(n))

    async def register(i: int) -> None:
        key = f"bench:company {i}"
        data = {**PROFILE, "cluster_id": "bench", "legal_name": f"Company {i}"}
        for attempt in range(12):
            try:
                async with client.start_session() as session, await session.start_transaction():
                    if await items.find_one({"natural_key": key}, session=session) is not None:
                        return
                    now = datetime.now(UTC)
                    await items.insert_one(
                        {
                            "_id": str(uuid.uuid4()),
                            "natural_key": key,
                            "fingerprint": "f" * 64,
                            "data": data,
                            "revision": 1,
                            "created_at": now,
                            "updated_at": now,
                        },
                        session=session,
                    )
                    await outbox.bulk_write(
                        [
                            UpdateOne(
                                {"_id": str(uuid.uuid4())},
                                {"$setOnInsert": {"payload": json.dumps(data), "published": False}},
                                upsert=True,
                            )
                        ],
                        session=session,
                    )
                return
            except PyMongoError as error:
                if not error.has_error_label("TransientTransactionError") or attempt == 11:
                    raise
                await asyncio.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))

    async def worker() -> None:
        while queue:
            await register(queue.pop())

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    rate = n / (time.perf_counter() - start)
    await client.close()
    return rate


async def http_registrations(client: httpx.AsyncClient, cluster_id: str, n: int, concurrency: int) -> float:
    queue = list(range(n))

    async def worker() -> None:
        while queue:
            queue.pop()
            body = {**PROFILE, "cluster_id": cluster_id, "legal_name": f"Bench {uuid.uuid4().hex}"}
            response = await client.post("/companies", json=body)
            response.raise_for_status()

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def lean_registrations(base_url: str, token: str, cluster_id: str, n: int, concurrency: int) -> float:
    queue = list(range(n))

    async def worker() -> None:
        async with LeanHttp(base_url, {"Authorization": f"Bearer {token}"}) as http:
            while queue:
                queue.pop()
                body = {**PROFILE, "cluster_id": cluster_id, "legal_name": f"Bench {uuid.uuid4().hex}"}
                status, answer = await http.post("/companies", body)
                if status != 201:
                    raise SystemExit(f"registration answered {status}: {answer}")

    start = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


def member_list(rows: int) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(importer.EXAMPLE))
    writer.writeheader()
    for i in range(rows):
        writer.writerow(
            {
                **importer.EXAMPLE,
                "legal_name": f"Import {i} {uuid.uuid4().hex[:6]}",
                "contact_1_email": f"c{i}@x.example",
            }
        )
    return out.getvalue().encode()


async def import_rate(client: httpx.AsyncClient, cluster_id: str, rows: int) -> float:
    content = member_list(rows)
    start = time.perf_counter()
    started = await client.post(
        f"/clusters/{cluster_id}/imports", content=content, headers={"Content-Type": "text/csv"}
    )
    started.raise_for_status()
    job = started.json()
    while job["status"] == "running":
        await asyncio.sleep(0.05)
        job = (await client.get(f"/clusters/{cluster_id}/imports/{job['id']}")).json()
    if job["status"] != "done" or job["created"] != rows:
        raise SystemExit(f"import ended {job['status']}: {job}")
    return rows / (time.perf_counter() - start)


async def measure(stack: Stack, companies: int, rows: int) -> list[tuple[str, float, str, float]]:
    cfg = stack.config
    headers = {"Authorization": f"Bearer {cfg.operator_token()}"}
    limits = httpx.Limits(max_connections=CONCURRENCY)
    async with httpx.AsyncClient(
        base_url=cfg.service_url("registration"), headers=headers, limits=limits, timeout=60
    ) as client:
        cluster = await client.post(
            "/clusters",
            json={"name": "Bench", "short_name": "BENCH", "country": "GR", "sectors": ["ict", "mobility"]},
        )
        cluster_id = cluster.json()["id"]
        url, token = cfg.service_url("registration"), cfg.operator_token()
        console.print("sequential…")
        raw_1 = await raw_inserts(cfg.scratch_mongo_uri, companies, 1)
        bare_1 = await bare_registrations(cfg.scratch_mongo_uri, companies, 1)
        http_1 = await lean_registrations(url, token, cluster_id, companies, 1)
        httpx_1 = await http_registrations(client, cluster_id, companies, 1)
        console.print(f"{CONCURRENCY} concurrent clients…")
        raw_n = await raw_inserts(cfg.scratch_mongo_uri, companies * 2, CONCURRENCY)
        bare_n = await bare_registrations(cfg.scratch_mongo_uri, companies * 2, CONCURRENCY)
        http_n = await lean_registrations(url, token, cluster_id, companies * 2, CONCURRENCY)
        httpx_n = await http_registrations(client, cluster_id, companies * 2, CONCURRENCY)
        console.print(f"importing {rows} rows…")
        raw_import = await raw_inserts(cfg.scratch_mongo_uri, rows, 1)
        imported = await import_rate(client, cluster_id, rows)
    bare = "registration-shaped txns/s"
    return [
        ("companies/s over HTTP, 1 client", http_1, f"{bare}, 1 writer", bare_1),
        (f"companies/s over HTTP, {CONCURRENCY} clients", http_n, f"{bare}, {CONCURRENCY} writers", bare_n),
        ("the same with httpx, 1 client", httpx_1, f"{bare}, 1 writer", bare_1),
        (f"the same with httpx, {CONCURRENCY} clients", httpx_n, f"{bare}, {CONCURRENCY} writers", bare_n),
        ("companies/s over HTTP, 1 client", http_1, "raw inserts/s, 1 writer", raw_1),
        (
            f"companies/s over HTTP, {CONCURRENCY} clients",
            http_n,
            f"raw inserts/s, {CONCURRENCY} writers",
            raw_n,
        ),
        (f"import rows/s ({rows}-row CSV)", imported, "raw inserts/s, 1 writer", raw_import),
    ]


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--companies", type=int, default=300, help="registrations per sequential run (default 300)"
    )
    parser.add_argument("--rows", type=int, default=1000, help="rows in the imported CSV (default 1000)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        stack = Stack(StackConfig.on_free_ports(Path(home)))
        console.print("Starting broker, database and registration on free ports…")
        try:
            stack.start_infrastructure()
            stack.start_services(["registration"])
            figures = asyncio.run(measure(stack, args.companies, args.rows))
        finally:
            stack.stop()
    table = Table("figure", "value", "baseline (same run)", "ratio")
    for name, value, baseline_name, baseline in figures:
        table.add_row(name, f"{value:.0f}", f"{baseline:.0f} {baseline_name}", f"{value / baseline:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
