"""Benchmark of the skeleton's flow on the embedded stack, against baselines from the same run.

Figures:
  1. registration: companies registered per second over HTTP (validation, one
     transaction with the outbox record) / baseline: single-document inserts per
     second straight into the same database.
  2. end to end: seconds from POSTing a participant until both e-mails of the
     match it causes are in the SMTP sink / baseline: one produce→consume round
     trip on the same broker.

Usage: .venv/bin/python bench/flow.py [--companies 200] [--pairs 20]
"""

import argparse
import asyncio
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.progress import track
from rich.table import Table

from c2f_cli.config import StackConfig
from c2f_cli.mail import read_mail
from c2f_cli.stack import Stack
from measuring import stop_on_sigterm

console = Console()


def company(cluster_id: str, name: str, offers: list[Any], needs: list[Any]) -> dict[str, Any]:
    return {
        "cluster_id": cluster_id,
        "legal_name": name,
        "country": "BG",
        "sectors": ["ict"],
        "offers": offers,
        "needs": needs,
        "target_markets": ["MX"],
    }


OFFER = {
    "title": "Sensores",
    "description": "Sensores de aire",
    "category": "air_quality_monitoring",
    "language": "es",
}
NEED = {
    "title": "Сензори",
    "description": "Търсим сензори",
    "kind": "supplier",
    "category": "air_quality_monitoring",
    "language": "bg",
}


async def baseline_inserts(mongo_uri: str, n: int) -> float:
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    coll = client["bench_baseline"]["docs"]
    start = time.perf_counter()
    for i in range(n):
        await coll.insert_one({"_id": i, "legal_name": f"Company {i}", "offers": [OFFER], "needs": [NEED]})
    elapsed = time.perf_counter() - start
    await client.close()
    return n / elapsed


async def baseline_round_trip(bootstrap: str, n: int) -> list[float]:
    topic = f"bench.{uuid.uuid4().hex}"
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, fetch_max_wait_ms=10)
    await producer.start()
    await producer.send_and_wait(topic, b"warm-up")
    await consumer.start()
    await consumer.seek_to_end()
    latencies = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            await producer.send_and_wait(topic, b"x" * 500)
            await consumer.getone()
            latencies.append(time.perf_counter() - start)
    finally:
        await producer.stop()
        await consumer.stop()
    return latencies


def register_companies(client: httpx.Client, cluster_id: str, n: int) -> float:
    start = time.perf_counter()
    for i in track(range(n), description="registering companies", console=console, transient=True):
        response = client.post(
            "/companies", json=company(cluster_id, f"Bench {uuid.uuid4().hex[:8]} {i}", [], [])
        )
        response.raise_for_status()
    return n / (time.perf_counter() - start)


def end_to_end(client: httpx.Client, stack: Stack, cluster_id: str, pairs: int) -> list[float]:
    """Per pair: a fresh event with a seeker and a provider; time their sign-ups → both e-mails."""
    latencies = []
    for _ in track(range(pairs), description="end-to-end matches", console=console, transient=True):
        event = client.post(
            "/events",
            json={
                "name": f"Bench {uuid.uuid4().hex[:8]}",
                "host_cluster_id": cluster_id,
                "city": "Sofia",
                "country": "BG",
                "venue_timezone": "Europe/Sofia",
                "starts_at": "2027-03-16T09:00:00+02:00",
                "ends_at": "2027-03-16T17:00:00+02:00",
            },
        ).json()["id"]
        signups = []
        for role, offers, needs in (("seeker", [], [NEED]), ("provider", [OFFER], [])):
            tag = uuid.uuid4().hex[:8]
            body = company(cluster_id, f"{role} {tag}", offers, needs)
            company_id = client.post("/companies", json=body).json()["id"]
            attendee = {"name": tag, "email": f"{tag}@bench.example", "language": "en"}
            signups.append({"company_id": company_id, "attendee": attendee})
        expected = len(read_mail(stack.config.maildir)) + 2
        start = time.perf_counter()
        for signup in signups:
            client.post(f"/events/{event}/participants", json=signup).raise_for_status()
        deadline = time.monotonic() + 60
        while len(read_mail(stack.config.maildir)) < expected:
            if time.monotonic() > deadline:
                raise SystemExit("e-mails did not arrive within 60 s")
            time.sleep(0.005)
        latencies.append(time.perf_counter() - start)
    return latencies


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, default=200, help="companies to register (default 200)")
    parser.add_argument("--pairs", type=int, default=10, help="matched pairs to time end to end (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        stack = Stack(StackConfig.on_free_ports(Path(home)))
        console.print("Starting the embedded stack on free ports…")
        try:
            stack.start()
            cfg = stack.config
            insert_rate = asyncio.run(baseline_inserts(cfg.scratch_mongo_uri, args.companies))
            round_trips = asyncio.run(baseline_round_trip(cfg.kafka_bootstrap, 50))
            operator = {"Authorization": f"Bearer {cfg.operator_token()}"}
            with httpx.Client(
                base_url=cfg.service_url("registration"), timeout=30, headers=operator
            ) as client:
                cluster_id = client.post(
                    "/clusters",
                    json={
                        "name": "Bench",
                        "short_name": f"B{uuid.uuid4().hex[:6]}",
                        "country": "BG",
                        "sectors": ["ict"],
                    },
                ).json()["id"]
                register_rate = register_companies(client, cluster_id, args.companies)
                flow = end_to_end(client, stack, cluster_id, args.pairs)
        finally:
            stack.stop()
    table = Table("figure", "value", "baseline (same run)", "ratio")
    table.add_row(
        "registration, companies/s over HTTP",
        f"{register_rate:.0f}",
        f"{insert_rate:.0f} raw inserts/s",
        f"{register_rate / insert_rate:.2f}",
    )
    p50, rt50 = statistics.median(flow), statistics.median(round_trips)
    table.add_row(
        "end to end p50, POST → 2 e-mails (ms)",
        f"{p50 * 1000:.0f}",
        f"{rt50 * 1000:.1f} broker round trip",
        f"{p50 / rt50:.0f}×",
    )
    table.add_row(
        "end to end max (ms)",
        f"{max(flow) * 1000:.0f}",
        f"{max(round_trips) * 1000:.1f}",
        f"{max(flow) / max(round_trips):.0f}×",
    )
    console.print(table)


if __name__ == "__main__":
    main()
