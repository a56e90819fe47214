"""Load benchmark: N concurrent company registrations and N concurrent event sign-ups over HTTP
on the whole platform; nothing may be lost, and every one must reach reporting. Beside it, the
raw broker and database rates measured in the same run, on the same embedded servers.

The script starts its own stack on free ports in a temporary directory (Tansu, SecantusDB, the
SMTP sink and the four services, as `c2f up` runs them), then:

1. Baselines, while the platform is idle (the same servers the services use):
   - Kafka: aiokafka, acks=all, 1 KiB messages to a scratch topic: N send_and_wait with the
     load's concurrency in flight; 20,000 pipelined sends and one flush; 1,000 send_and_wait
     one after another (an outbox relay publishes that way).
   - Database: PyMongo's AsyncMongoClient (default pool, like the services) into a scratch
     database on registration's server (each service has a database server of its own): N
     single insert_one with the load's concurrency; one insert_many of N; and, for context, N
     transactions shaped like a registration (a natural-key lookup, an insert, an outbox
     upsert), alone and with a $inc of one shared counter (like sign-ups to one event),
     retried on write conflicts exactly as the services' `Runtime.transact` retries them.
2. The operator registers --clusters clusters concurrently; each answer carries the cluster's
   first API key. Each cluster's key creates --events B2B events (round robin over the hosts).
3. N companies (full ~1 KiB profiles in six languages) are registered concurrently, company i by
   cluster i mod --clusters with that cluster's key.
4. N sign-ups (POST /events/{id}/participants), company i at event i mod --events, concurrently,
   with the company's cluster key. --single-event puts all N into one event: every sign-up
   changes the event's `registered` counter, so registration takes them one at a time per
   event (the shared-counter baseline shows what racing transactions would do instead).
   At most --concurrency requests are in flight (default: all N at once).
   A 503 with Retry-After ("database busy, nothing stored") is retried after Retry-After
   seconds, as a real client would, and counted. Any other non-2xx answer, or a transport
   error, is a failure and is reported by status. Latency is per request as the user sees it:
   from the first send to the final answer, retries and their waits included.
5. Nothing lost: GET /reports/partnership is polled (every second while a count it waits for is
   not there yet, else every 10 s; from the start of step 3) until it shows exactly the
   clusters, events, companies and participants created; the end-to-end lag is how long
   after the last HTTP answer that happened. Registration's own counts (GET /clusters,
   /companies, /events and each event's participant lists) must match.
   Then (unless --matching-patience is 0) until matching has processed every sign-up: how long
   after the last answer. The checks of registration's counts and step 6 come after that wait,
   so that their reads of thousands of documents do not slow down the work being timed.
6. Where the time went, read from the services' databases (context, not the criterion): for
   every CompanyRegistered and ParticipantRegistered, its outbox record in registration (written
   in the request's transaction), when the relay published it, and when reporting and matching
   processed it (their inboxes). Also each process's CPU seconds (/proc) and the WARNING and
   ERROR lines of each log.

Exit status 1 if anything was lost, any request failed, or a check failed.

Usage: .venv/bin/python bench/load.py [--companies 2000] [--concurrency N] [--events 4 | --single-event]
       [--clusters 10] [--patience 600] [--home DIR]
"""

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pymongo import AsyncMongoClient
from pymongo.errors import PyMongoError
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.databases import Databases
from c2f_cli.stack import Stack
from c2f_shared import topics
from c2f_shared.service.sessions import transaction_session
from measuring import (
    MACHINE,
    STATEMENT_KINDS,
    cpu_seconds,
    cpu_used,
    database_top,
    machine,
    percentile,
    stop_on_sigterm,
    top_used,
)

# Redirected to a file, rich would wrap the tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=130)
Document = dict[str, Any]

GIVE_UP = 3600.0  # seconds of 503s after which a request counts as failed (--give-up)
HTTP_TIMEOUT = 600.0  # seconds; a request still unanswered then is a failure (ReadTimeout)
POLL_SECONDS = 1.0
WATCH_IDLE_SECONDS = 10.0
METRICS_POLL_SECONDS = 2.0  # a scrape counts the outbox and the dead letters in the database
# uvicorn closes a connection idle for 5 s; a client that keeps it as long races the close
# (a request sent as the server closes fails with ReadError). Keep idle connections 2 s at most.
KEEPALIVE = 2.0
SHARD = 50  # requests in flight per httpx client
PIPELINED = 20_000  # messages in the pipelined produce baseline
SEQUENTIAL = 1_000  # messages in the one-at-a-time produce baseline
TRANSACT_ATTEMPTS = 12  # as c2f_shared.service.runtime.Runtime.transact

LANGUAGES = ["bg", "es", "sr", "it", "el", "en"]
# One profile per language; offers of one are needs of another, so matching finds pairs. Texts
# repeat across companies, so matching embeds each text once (its cache), as for a real season
# in which many members describe similar offers; the embedding model's cost is not measured here.
PROFILES: list[dict[str, Any]] = [
    {
        "country": "BG",
        "city": "София",
        "sectors": ["ict"],
        "offers": [("Сензори за качество на въздуха", "air_quality_monitoring")],
        "needs": [("Дистрибутор в Мексико", "distributor", "smart_parking")],
    },
    {
        "country": "ES",
        "city": "Bilbao",
        "sectors": ["mobility"],
        "offers": [("Gestión inteligente de aparcamiento", "smart_parking")],
        "needs": [("Sensores de calidad del aire", "supplier", "air_quality_monitoring")],
    },
    {
        "country": "RS",
        "city": "Novi Sad",
        "sectors": ["ict"],
        "offers": [("Platforma za gradske podatke", "urban_data_platforms")],
        "needs": [("Partner za javni prevoz", "partner", "public_transport_software")],
    },
    {
        "country": "IT",
        "city": "Torino",
        "sectors": ["mobility"],
        "offers": [("Software per il trasporto pubblico", "public_transport_software")],
        "needs": [("Piattaforma di dati urbani", "technology", "urban_data_platforms")],
    },
    {
        "country": "GR",
        "city": "Θεσσαλονίκη",
        "sectors": ["energy"],
        "offers": [("Έξυπνος φωτισμός δρόμων", "smart_lighting")],
        "needs": [("Ανανεώσιμη ενέργεια για δήμους", "partner", "renewable_energy")],
    },
    {
        "country": "ES",
        "city": "Valencia",
        "sectors": ["energy"],
        "offers": [("Solar microgrids for municipalities", "renewable_energy")],
        "needs": [("Smart street lighting", "supplier", "smart_lighting")],
    },
]
DESCRIPTION = (
    "Deployed in several European cities; we look for partners and customers in Mexico, "
    "Colombia and California, and can adapt the product to local procurement rules."
)


def company_body(i: int, cluster_id: str, tag: str) -> dict[str, Any]:
    """About 1 KiB of JSON: a full profile in one of six languages."""
    profile = PROFILES[i % len(PROFILES)]
    language = LANGUAGES[i % len(LANGUAGES)]
    return {
        "cluster_id": cluster_id,
        "legal_name": f"Load {tag} Company {i:05d}",
        "country": profile["country"],
        "city": profile["city"],
        "website": f"https://company{i}.load.example",
        "size_band": ["micro", "small", "medium"][i % 3],
        "sectors": profile["sectors"],
        "offers": [
            {"title": title, "description": DESCRIPTION, "category": category, "language": language}
            for title, category in profile["offers"]
        ],
        "needs": [
            {
                "title": title,
                "description": DESCRIPTION,
                "kind": kind,
                "category": category,
                "language": language,
            }
            for title, kind, category in profile["needs"]
        ],
        "target_markets": ["MX", "CO", "US-CA"][: 1 + i % 3],
        "obstacles": [{"kind": "certification"}] if i % 2 else [],
        "working_languages": [language, "en"] if language != "en" else ["en"],
        "contacts": [
            {
                "name": f"Contact {i}",
                "email": f"contact{i}@load.example",
                "language": language,
                "consent": "brochure",
            }
        ],
    }


def event_body(j: int, host_cluster_id: str, tag: str) -> dict[str, Any]:
    day = f"2027-03-{10 + j % 18:02d}"
    return {
        "name": f"Load {tag} B2B {j}",
        "kind": "b2b",
        "host_cluster_id": host_cluster_id,
        "venue": "Expo Center",
        "city": "Sofia",
        "country": "BG",
        "venue_timezone": "Europe/Sofia",
        "starts_at": f"{day}T09:00:00+02:00",
        "ends_at": f"{day}T17:00:00+02:00",
        "meetings": {
            "days": [day],
            "day_start": "09:00",
            "day_end": "17:00",
            "slot_minutes": 30,
            "breaks": [{"start": "12:30", "end": "13:30"}],
            "tables": 40,
        },
    }


def sign_up_body(i: int, company_id: str) -> dict[str, Any]:
    language = LANGUAGES[i % len(LANGUAGES)]
    return {
        "company_id": company_id,
        "attendee": {"name": f"Attendee {i}", "email": f"attendee{i}@load.example", "language": language},
        "languages": [language],
        "consent_share_contact": True,
    }


# -- small helpers ---------------------------------------------------------------------


class Ticker:
    """A progress bar on a terminal; a line every few seconds when the output is a file."""

    def __init__(self, every: float = 5.0) -> None:
        self.tty = console.is_terminal
        self.every = every
        self.progress = Progress(
            TextColumn("{task.description:<40}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
            disable=not self.tty,
        )
        self.names: dict[TaskID, str] = {}
        self.started = time.monotonic()
        self.printed = time.monotonic()

    def __enter__(self) -> "Ticker":
        self.progress.__enter__()
        self.started = self.printed = time.monotonic()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.__exit__(None, None, None)
        if not self.tty:
            self._line()

    def add(self, description: str, total: int) -> TaskID:
        task = self.progress.add_task(description, total=total)
        self.names[task] = description
        return task

    def update(self, task: TaskID, completed: int) -> None:
        self.progress.update(task, completed=completed)
        self._maybe_line()

    def advance(self, task: TaskID) -> None:
        self.progress.advance(task)
        self._maybe_line()

    def _maybe_line(self) -> None:
        if not self.tty and time.monotonic() - self.printed >= self.every:
            self._line()

    def _line(self) -> None:
        self.printed = time.monotonic()
        parts = [
            f"{self.names[t.id]} {int(t.completed):,}/{int(t.total or 0):,}" for t in self.progress.tasks
        ]
        console.print(f"  [{self.printed - self.started:6.1f} s] " + "; ".join(parts), highlight=False)


# -- baselines -----------------------------------------------------------------------------


@dataclass
class Baselines:
    kafka_concurrent: float = 0.0  # msgs/s, N send_and_wait with C in flight
    kafka_pipelined: float = 0.0  # msgs/s
    kafka_sequential: float = 0.0  # msgs/s, one send_and_wait after another
    kafka_sequential_p50_ms: float = 0.0
    mongo_insert_one: float = 0.0  # docs/s with C in flight
    mongo_insert_one_p50_ms: float = 0.0
    mongo_insert_one_p99_ms: float = 0.0
    mongo_insert_many: float = 0.0  # docs/s
    txn: float = 0.0  # registration-shaped transactions/s, distinct documents
    txn_conflicts: int = 0
    txn_failed: int = 0
    txn_hot: float = 0.0  # the same plus $inc of one shared counter
    txn_hot_conflicts: int = 0
    txn_hot_failed: int = 0
    txn_hot_counter: int = 0  # the counter's value afterwards


async def kafka_baselines(bootstrap: str, n: int, concurrency: int, out: Baselines) -> None:
    topic = f"bench.load.{uuid.uuid4().hex[:12]}"
    payload = os.urandom(512).hex().encode()  # 1 KiB
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm-up")  # creates the topic
        gate = asyncio.Semaphore(concurrency)

        async def one(i: int) -> None:
            async with gate:
                await producer.send_and_wait(topic, payload, key=str(i).encode())

        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        out.kafka_concurrent = n / (time.perf_counter() - start)

        start = time.perf_counter()
        for i in range(PIPELINED):
            await producer.send(topic, payload, key=str(i).encode())
        await producer.flush()
        out.kafka_pipelined = PIPELINED / (time.perf_counter() - start)

        samples = []
        start = time.perf_counter()
        for i in range(SEQUENTIAL):
            t0 = time.perf_counter()
            await producer.send_and_wait(topic, payload, key=str(i).encode())
            samples.append(time.perf_counter() - t0)
        out.kafka_sequential = SEQUENTIAL / (time.perf_counter() - start)
        out.kafka_sequential_p50_ms = statistics.median(samples) * 1000
    finally:
        await producer.stop()


async def _transact(client: AsyncMongoClient[Document], work: Callable[[Any], Awaitable[None]]) -> int | None:
    """Runtime.transact's retry loop: the number of write conflicts retried, or None if it gave up
    (the services would answer 503). With the services' bound on transactions at once, so that
    the baseline leaves no more sessions behind in the database than a service does
    (c2f_shared/service/sessions.py)."""
    for attempt in range(TRANSACT_ATTEMPTS):
        try:
            async with transaction_session(client) as session, await session.start_transaction():
                await work(session)
            return attempt
        except PyMongoError as error:
            if not error.has_error_label("TransientTransactionError"):
                raise
            if attempt == TRANSACT_ATTEMPTS - 1:
                return None
            await asyncio.sleep(random.uniform(0, min(0.5, 0.01 * 2**attempt)))
    return None


async def mongo_baselines(mongo_uri: str, n: int, concurrency: int, out: Baselines) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    db = client[f"bench_load_{uuid.uuid4().hex[:8]}"]
    docs = [company_body(i, "cluster", "raw") for i in range(n)]
    gate = asyncio.Semaphore(concurrency)
    try:
        coll = db["insert_one"]
        latencies: list[float] = []

        async def insert(i: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                await coll.insert_one({"_id": i, **docs[i]})
                latencies.append(time.perf_counter() - t0)

        start = time.perf_counter()
        await asyncio.gather(*(insert(i) for i in range(n)))
        out.mongo_insert_one = n / (time.perf_counter() - start)
        out.mongo_insert_one_p50_ms = percentile(latencies, 50) * 1000
        out.mongo_insert_one_p99_ms = percentile(latencies, 99) * 1000

        start = time.perf_counter()
        await db["insert_many"].insert_many([{"_id": i, **d} for i, d in enumerate(docs)])
        out.mongo_insert_many = n / (time.perf_counter() - start)

        for hot in (False, True):
            items, outbox = db[f"txn_items_{hot}"], db[f"txn_outbox_{hot}"]
            await items.create_index("natural_key", unique=True)
            counters = db[f"txn_counter_{hot}"]
            await counters.insert_one({"_id": "event", "registered": 0})
            conflicts, failed = 0, 0

            async def registration(
                i: int, hot: bool = hot, items: Any = items, outbox: Any = outbox, counters: Any = counters
            ) -> None:
                nonlocal conflicts, failed

                async def work(session: Any) -> None:
                    key = f"k{i}"
                    if await items.find_one({"natural_key": key}, session=session) is None:
                        if hot:
                            await counters.update_one(
                                {"_id": "event"}, {"$inc": {"registered": 1}}, session=session
                            )
                        await items.insert_one({"_id": i, "natural_key": key, **docs[i]}, session=session)
                        await outbox.update_one(
                            {"_id": f"e{i}"},
                            {"$setOnInsert": {"payload": "x" * 1500, "published": False}},
                            upsert=True,
                            session=session,
                        )

                async with gate:
                    retried = await _transact(client, work)
                if retried is None:
                    failed += 1
                    conflicts += TRANSACT_ATTEMPTS - 1
                else:
                    conflicts += retried

            start = time.perf_counter()
            await asyncio.gather(*(registration(i) for i in range(n)))
            rate = (n - failed) / (time.perf_counter() - start)
            if hot:
                out.txn_hot, out.txn_hot_conflicts, out.txn_hot_failed = rate, conflicts, failed
                counter = await counters.find_one({"_id": "event"})
                out.txn_hot_counter = int(counter["registered"]) if counter else -1
            else:
                out.txn, out.txn_conflicts, out.txn_failed = rate, conflicts, failed
    finally:
        await client.drop_database(db.name)
        await client.close()


# -- the load ------------------------------------------------------------------------------


@dataclass
class Phase:
    name: str
    requests: int = 0
    latencies: list[float] = field(default_factory=list)  # successful requests, retries included
    created: int = 0  # 201
    existing: int = 0  # 200 (an identical registration was already there)
    retries: int = 0  # 503 + Retry-After answers, each retried
    retried_requests: int = 0
    most_retries: int = 0
    failures: Counter[str] = field(default_factory=Counter)  # status (or exception) → count
    examples: dict[str, str] = field(default_factory=dict)  # status → first answer body
    started: float = 0.0  # time.time()
    first_answer: float = 0.0
    last_answer: float = 0.0

    @property
    def ok(self) -> int:
        return self.created + self.existing

    @property
    def seconds(self) -> float:
        return self.last_answer - self.started

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds > 0 else math.nan

    def fail(self, status: str, detail: str) -> None:
        self.failures[status] += 1
        self.examples.setdefault(status, detail[:300])


async def call(
    client: httpx.AsyncClient, phase: Phase, path: str, body: dict[str, Any], token: str, give_up: float
) -> dict[str, Any] | None:
    """POST `body`; retry a 503 after Retry-After, for up to `give_up` seconds. The answer's JSON,
    or None on a failure (a transport error is not retried: the request may have been stored)."""
    headers = {"Authorization": f"Bearer {token}"}
    start = time.perf_counter()
    retries = 0
    try:
        while time.perf_counter() - start < give_up:
            try:
                response = await client.post(path, json=body, headers=headers)
            except httpx.HTTPError as error:
                phase.fail(type(error).__name__, str(error) or repr(error))
                return None
            if response.status_code == 503 and "retry-after" in response.headers:
                retries += 1
                phase.retries += 1
                try:
                    wait = float(response.headers["retry-after"])
                except ValueError:
                    wait = 1.0
                await asyncio.sleep(wait)
                continue
            if response.status_code in (200, 201):
                phase.latencies.append(time.perf_counter() - start)
                if response.status_code == 201:
                    phase.created += 1
                else:
                    phase.existing += 1
                answer: dict[str, Any] = response.json()
                return answer
            phase.fail(str(response.status_code), response.text)
            return None
        phase.fail("503 until --give-up", f"gave up after {retries} retries")
        return None
    finally:
        now = time.time()
        phase.first_answer = phase.first_answer or now
        phase.last_answer = max(phase.last_answer, now)
        if retries:
            phase.retried_requests += 1
            phase.most_retries = max(phase.most_retries, retries)


async def run_phase(
    clients: list[httpx.AsyncClient],
    name: str,
    jobs: list[tuple[str, dict[str, Any], str]],
    concurrency: int,
    give_up: float,
) -> tuple[Phase, list[dict[str, Any] | None]]:
    """POST every (path, body, token) with at most `concurrency` in flight; answers in order.
    Each request in flight holds one client of `clients` (each has `concurrency / len(clients)`
    connections)."""
    phase = Phase(name, requests=len(jobs))
    idle = asyncio.Queue[httpx.AsyncClient]()
    per_client = math.ceil(concurrency / len(clients))
    for client in clients:
        for _ in range(per_client):
            idle.put_nowait(client)
    gate = asyncio.Semaphore(concurrency)
    with Ticker() as ticker:
        task = ticker.add(name, len(jobs))

        async def one(path: str, body: dict[str, Any], token: str) -> dict[str, Any] | None:
            async with gate:
                client = idle.get_nowait()
                try:
                    answer = await call(client, phase, path, body, token, give_up)
                finally:
                    idle.put_nowait(client)
            ticker.advance(task)
            return answer

        phase.started = time.time()
        answers = await asyncio.gather(*(one(*job) for job in jobs))
    return phase, list(answers)


SELF = "this benchmark's loop"


class Probe:
    """GET /healthz of every service every second: a trivial route, so its latency is mostly the
    time the service's event loop takes to get to it (busy with requests, consumers, relays)."""

    def __init__(self, urls: dict[str, str]) -> None:
        self.urls = urls
        self.client = httpx.AsyncClient(timeout=120, limits=httpx.Limits(keepalive_expiry=KEEPALIVE))
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in urls}  # (at, seconds)
        self.failures: Counter[str] = Counter()
        self._tasks: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._run(name, url)) for name, url in self.urls.items()]
        self._tasks.append(asyncio.create_task(self._drift()))

    async def _drift(self) -> None:
        """This process's own event-loop lag (how late a timer fires): it adds to every latency
        measured here, so it must stay small for the figures to be the platform's."""
        self.samples[SELF] = []
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(POLL_SECONDS / 4)
            self.samples[SELF].append((time.time(), time.perf_counter() - t0 - POLL_SECONDS / 4))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.client.aclose()

    async def _run(self, name: str, url: str) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                (await self.client.get(f"{url}/healthz")).raise_for_status()
                self.samples[name].append((time.time(), time.perf_counter() - t0))
            except httpx.HTTPError as error:
                self.failures[f"{name}: {type(error).__name__}"] += 1
            await asyncio.sleep(POLL_SECONDS)

    def between(self, start: float, end: float) -> dict[str, list[float]]:
        return {
            name: [seconds for at, seconds in samples if start <= at <= end]
            for name, samples in self.samples.items()
        }


class Watch:
    """Polls reporting's /reports/partnership; remembers when each count first met its target."""

    KEYS = ("clusters", "events", "companies", "participants")

    def __init__(self, url: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=url, timeout=120, limits=httpx.Limits(keepalive_expiry=KEEPALIVE)
        )
        self.targets: dict[str, int] = {}
        self.reached: dict[str, float] = {}
        self.latest: dict[str, Any] = {}
        self.overshoot: dict[str, int] = {}
        self.polls = 0
        self.poll_seconds: list[float] = []
        self.failed_polls: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.client.aclose()

    def expect(self, key: str, count: int) -> None:
        self.targets[key] = count
        self._check(time.time())

    def done(self) -> bool:
        return all(key in self.reached for key in self.targets)

    def _check(self, now: float) -> None:
        for key, target in self.targets.items():
            value = self.latest.get(key)
            if value == target:
                self.reached.setdefault(key, now)
            elif isinstance(value, int) and value > target:
                self.overshoot[key] = value

    async def _run(self) -> None:
        while True:
            t0 = time.perf_counter()
            try:
                response = await self.client.get("/reports/partnership")
                response.raise_for_status()
                self.latest = response.json()
                self.polls += 1
                self.poll_seconds.append(time.perf_counter() - t0)
                self._check(time.time())
            except httpx.HTTPError as error:
                self.failed_polls[type(error).__name__] += 1
            # Every second while a count it waits for is not there yet; otherwise (a phase under
            # way, nothing to wait for) every WATCH_IDLE_SECONDS, for the progress line only: each
            # poll aggregates reporting's collections, which cost the database as much as a
            # fifth of a core during the sign-ups.
            await asyncio.sleep(POLL_SECONDS if not self.done() else WATCH_IDLE_SECONDS)

    async def wait(self, patience: float) -> bool:
        """Until every target is met (True) or `patience` seconds pass (False)."""
        deadline = time.monotonic() + patience
        with Ticker(every=10) as ticker:
            tasks = {key: ticker.add(f"reporting: {key}", total) for key, total in self.targets.items()}
            while not self.done():
                for key, task in tasks.items():
                    ticker.update(task, int(self.latest.get(key) or 0))
                if time.monotonic() > deadline:
                    return False
                await asyncio.sleep(0.2)
            for key, task in tasks.items():
                ticker.update(task, int(self.latest.get(key) or 0))
        return True


@dataclass
class Run:
    companies: int
    concurrency: int
    events: int
    clusters: int
    phases: list[Phase] = field(default_factory=list)
    per_event: Counter[str] = field(default_factory=Counter)  # event id → sign-ups answered 2xx
    reporting: dict[str, Any] = field(default_factory=dict)
    watch_reached: dict[str, float] = field(default_factory=dict)
    caught_up: bool = False
    poll_p50_ms: float = math.nan
    healthz: list[tuple[str, dict[str, list[float]]]] = field(default_factory=list)
    healthz_failures: dict[str, int] = field(default_factory=dict)
    registration_counts: list[tuple[str, int, str, bool]] = field(default_factory=list)
    lags: dict[str, dict[str, list[float]]] = field(default_factory=dict)
    downstream: dict[str, str] = field(default_factory=dict)
    cpu: list[tuple[str, float, dict[str, float]]] = field(default_factory=list)  # (what, wall s, CPU s)
    failed_polls: dict[str, int] = field(default_factory=dict)
    matching_caught_up: float | None = None  # s after the last sign-up answer; None: not within patience
    statements: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)  # database `top`
    problems: list[str] = field(default_factory=list)


async def load(stack: Stack, run: Run, patience: float, give_up: float, matching_patience: float) -> None:
    cfg = stack.config
    operator = cfg.operator_token()
    tag = uuid.uuid4().hex[:6]
    # One httpx client per SHARD requests in flight: httpx's connection pool does work linear in
    # its connections for every request, so one pool of 2,000 connections would make this
    # process, not the platform, the bottleneck (and stall its event loop for seconds).
    shards = math.ceil(run.concurrency / SHARD)
    per_shard = math.ceil(run.concurrency / shards)
    limits = httpx.Limits(
        max_connections=per_shard, max_keepalive_connections=per_shard, keepalive_expiry=KEEPALIVE
    )
    timeout = httpx.Timeout(HTTP_TIMEOUT, connect=60)
    watch = Watch(cfg.service_url("reporting"))
    async with contextlib.AsyncExitStack() as exits:
        pool = [
            await exits.enter_async_context(
                httpx.AsyncClient(base_url=cfg.service_url("registration"), limits=limits, timeout=timeout)
            )
            for _ in range(shards)
        ]
        http = pool[0]
        # Clusters (operator) and events (each host's own key); small, but through the same path.
        cluster_jobs = [
            (
                "/clusters",
                {
                    "name": f"Load Cluster {k}",
                    "short_name": f"L{tag}{k}",
                    "country": PROFILES[k % len(PROFILES)]["country"],
                    "sectors": ["ict", "mobility", "energy"],
                    "membership": "founding" if k < 6 else "partner",
                },
                operator,
            )
            for k in range(run.clusters)
        ]
        phase, answers = await run_phase(pool, "clusters (operator)", cluster_jobs, run.concurrency, give_up)
        run.phases.append(phase)
        clusters = [(a["id"], a["api_key"]["key"]) for a in answers if a and a.get("api_key")]
        if len(clusters) != run.clusters:
            raise SystemExit(
                f"only {len(clusters)} of {run.clusters} clusters were registered: {phase.failures}"
            )
        event_jobs = [
            ("/events", event_body(j, clusters[j % len(clusters)][0], tag), clusters[j % len(clusters)][1])
            for j in range(run.events)
        ]
        phase, answers = await run_phase(pool, "events (host's key)", event_jobs, run.concurrency, give_up)
        run.phases.append(phase)
        events = [a["id"] for a in answers if a]
        if len(events) != run.events:
            raise SystemExit(f"only {len(events)} of {run.events} events were created: {phase.failures}")

        watch.start()
        probe = Probe({name: cfg.service_url(name) for name in SERVICES})
        probe.start()
        watch.expect("clusters", len(clusters))
        watch.expect("events", len(events))
        cpu_start = cpu_seconds(stack)
        top_start = await database_top(cfg)
        wall_start = time.time()

        company_jobs = [
            (
                "/companies",
                company_body(i, clusters[i % len(clusters)][0], tag),
                clusters[i % len(clusters)][1],
            )
            for i in range(run.companies)
        ]
        phase, answers = await run_phase(
            pool, "companies (cluster keys)", company_jobs, run.concurrency, give_up
        )
        run.phases.append(phase)
        companies = [(i, a["id"]) for i, a in enumerate(answers) if a]
        watch.expect("companies", len(companies))
        cpu_after_companies = cpu_seconds(stack)
        run.cpu.append(
            ("companies phase", phase.last_answer - wall_start, cpu_used(cpu_start, cpu_after_companies))
        )

        sign_up_jobs = []
        job_events = []
        for i, company_id in companies:
            event_id = events[i % len(events)]
            job_events.append(event_id)
            sign_up_jobs.append(
                (
                    f"/events/{event_id}/participants",
                    sign_up_body(i, company_id),
                    clusters[i % len(clusters)][1],
                )
            )
        phase, answers = await run_phase(
            pool, "sign-ups (cluster keys)", sign_up_jobs, run.concurrency, give_up
        )
        run.phases.append(phase)
        expected_signups: dict[str, tuple[str, str] | None] = {}
        for event_id, (_, company_id), answer in zip(job_events, companies, answers, strict=True):
            expected_signups[company_id] = (event_id, answer["id"]) if answer else None
            if answer:
                run.per_event[event_id] += 1
        watch.expect("participants", sum(run.per_event.values()))
        last_answer = phase.last_answer
        cpu_after_http = cpu_seconds(stack)
        run.cpu.append(("sign-ups phase", phase.seconds, cpu_used(cpu_after_companies, cpu_after_http)))

        console.print("Waiting for reporting to show every registration…")
        run.caught_up = await watch.wait(patience)
        caught_up_at = time.time()
        run.cpu.append(
            (
                "time from the last answer until reporting caught up",
                caught_up_at - last_answer,
                cpu_used(cpu_after_http, cpu_seconds(stack)),
            )
        )
        await watch.stop()
        await probe.stop()
        companies_phase, sign_ups_phase = run.phases[2], run.phases[3]
        run.healthz = [
            ("companies phase", probe.between(companies_phase.started, companies_phase.last_answer)),
            ("sign-ups phase", probe.between(sign_ups_phase.started, sign_ups_phase.last_answer)),
            ("until reporting caught up", probe.between(last_answer, caught_up_at)),
        ]
        run.healthz_failures = dict(probe.failures)
        run.reporting = dict(watch.latest)
        run.watch_reached = dict(watch.reached)
        run.poll_p50_ms = statistics.median(watch.poll_seconds) * 1000 if watch.poll_seconds else math.nan
        if not run.caught_up:
            missing = {
                k: (watch.latest.get(k), v) for k, v in watch.targets.items() if k not in watch.reached
            }
            run.problems.append(
                f"reporting did not show every registration within {patience:.0f} s "
                f"(shown, expected): {missing}"
            )
        for key, value in watch.overshoot.items():
            run.problems.append(f"reporting showed {value} {key}, more than the {watch.targets[key]} created")
        run.failed_polls = dict(watch.failed_polls)

        # Matching is waited for before the checks below: they read thousands of documents
        # in every service's database, which would slow down the work being timed.
        if matching_patience > 0:
            before, started = cpu_seconds(stack), time.time()
            run.matching_caught_up = await wait_for_matching(
                cfg.service_url("matching") + "/metrics",
                cfg.mongo_uri_of("matching"),
                sum(run.per_event.values()),
                run.phases[3].last_answer,
                matching_patience,
            )
            run.cpu.append(("wait for matching", time.time() - started, cpu_used(before, cpu_seconds(stack))))
        run.statements = top_used(top_start, await database_top(cfg))
        await check_registration(http, operator, clusters, events, expected_signups, run)
    await analyse(cfg, run, cfg.maildir)


async def wait_for_matching(
    metrics_url: str, mongo_uri: str, expected: int, since: float, patience: float
) -> float | None:
    """Until matching has processed every sign-up (each re-ranks its event's participants):
    seconds after `since`, or None if `patience` seconds passed first. Context, not a verdict.

    Watched on matching's /metrics (its messages taken from the participants topic), not in its
    database: counting its inbox every second cost the database as much as a fifth of a core
    of the run it measures. The database confirms the count once at the end."""
    deadline = time.monotonic() + patience
    async with httpx.AsyncClient(timeout=10) as http:
        with Ticker(every=10) as ticker:
            task = ticker.add("matching: sign-ups processed", expected)
            while True:
                done = await _participants_taken(http, metrics_url)
                ticker.update(task, done)
                if done >= expected:
                    break
                if time.monotonic() > deadline:
                    return None
                await asyncio.sleep(METRICS_POLL_SECONDS)
    seconds = time.time() - since
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        inbox = client["c2f_matching"]["processed_events"]
        while await inbox.count_documents({"type": "ParticipantRegistered"}) < expected:
            if time.monotonic() > deadline:
                return None
            await asyncio.sleep(POLL_SECONDS)
    finally:
        await client.close()
    return seconds


async def _participants_taken(http: httpx.AsyncClient, metrics_url: str) -> int:
    """Messages of the participants topic matching has finished with (processed or duplicate)."""
    try:
        text = (await http.get(metrics_url)).text
    except httpx.HTTPError:
        return 0
    done = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if (
                sample.name == "c2f_messages_total"
                and sample.labels.get("topic") == topics.PARTICIPANTS
                and sample.labels.get("outcome") in ("processed", "duplicate")
            ):
                done += sample.value
    return int(done)


async def check_registration(
    http: httpx.AsyncClient,
    operator: str,
    clusters: list[tuple[str, str]],
    events: list[str],
    expected_signups: dict[str, tuple[str, str] | None],
    run: Run,
) -> None:
    """Registration's own counts, through its API, against what was answered 2xx.

    `expected_signups`: company id → (event id, participant id) its sign-up was answered with,
    or None if the sign-up failed."""
    auth = {"Authorization": f"Bearer {operator}"}
    companies_ok = run.phases[2].ok
    listed_clusters = (await http.get("/clusters", headers=auth)).json()
    page = (await http.get("/companies", params={"limit": 1}, headers=auth)).json()
    listed_events = {e["id"]: e for e in (await http.get("/events", headers=auth)).json()}
    counts = run.registration_counts
    counts.append(("GET /clusters (operator)", len(clusters), str(len(listed_clusters)), True))
    counts.append(("GET /companies total (operator)", companies_ok, str(page["total"]), True))
    counts.append(("GET /events (operator)", len(events), str(len(listed_events)), True))
    for j, event_id in enumerate(events):
        expected = run.per_event[event_id]
        registered = listed_events.get(event_id, {}).get("registered")
        counts.append((f"event {j}: its `registered` counter", expected, str(registered), True))
        listed: Counter[str] = Counter()
        while True:  # page through the list, 1,000 at a time
            answer = await http.get(
                f"/events/{event_id}/participants",
                params={"limit": 1000, "offset": listed.total()},
                headers=auth,
            )
            ids = [p["id"] for p in answer.json()]
            listed.update(ids)
            if len(ids) < 1000:
                break
        doubled = sum(n - 1 for n in listed.values())
        shown = f"{len(listed)}" + (f" ({doubled} listed twice)" if doubled else "")
        counts.append((f"event {j}: GET …/participants, paged (operator)", expected, shown, True))
    # Complete: every company's export lists its sign-ups (GDPR portability endpoint).
    found: Counter[str] = Counter()
    gate = asyncio.Semaphore(32)

    async def export(company_id: str, signup: tuple[str, str] | None) -> None:
        async with gate:
            response = await http.get(f"/companies/{company_id}/export", headers=auth)
        if response.status_code != 200:
            found[f"export answered {response.status_code}"] += 1
            return
        held = [(r["event_id"], r["id"]) for r in response.json()["event_registrations"]]
        if signup is None:
            found["failed sign-up, yet registered" if held else "failed sign-up, not registered"] += 1
        elif held == [signup]:
            found["exactly the answered sign-up"] += 1
        elif not held:
            found["answered 2xx, but NOT registered (lost)"] += 1
        else:
            found["answered 2xx, registered differently"] += 1

    with console.status(f"checking {len(expected_signups):,} companies' exports…"):
        await asyncio.gather(*(export(c, signup) for c, signup in expected_signups.items()))
    good = found.pop("exactly the answered sign-up", 0)
    counts.append(
        (
            "GET /companies/{id}/export: holds exactly the answered sign-up",
            sum(run.per_event.values()),
            str(good),
            True,
        )
    )
    for what, n in found.items():
        counts.append((f"GET /companies/{{id}}/export: {what}", 0, str(n), "not registered" not in what))
    for what, expected, shown, exact in counts:
        if exact and shown != str(expected):
            run.problems.append(f"registration: {what} shows {shown}, expected {expected}")


async def analyse(config: StackConfig, run: Run, maildir: Path) -> None:
    """From the services' own databases: when each registration fact was written to the outbox,
    published by the relay, and processed by reporting and matching."""
    client = Databases(config, tz_aware=True)
    try:
        kinds = ["CompanyRegistered", "ParticipantRegistered"]
        outbox = {
            d["_id"]: d
            async for d in client["c2f_registration"]["outbox"].find(
                {"type": {"$in": kinds}}, {"type": 1, "seq": 1, "published": 1, "published_at": 1}
            )
        }
        inboxes: dict[str, dict[str, float]] = {}
        for service in ("reporting", "matching", "notifications"):
            inboxes[service] = {
                d["_id"]: d["at"].timestamp()
                async for d in client[f"c2f_{service}"]["processed_events"].find(
                    {"type": {"$in": kinds}}, {"at": 1}
                )
            }
        for kind in kinds:
            lags: dict[str, list[float]] = defaultdict(list)
            for event_id, doc in outbox.items():
                if doc["type"] != kind:
                    continue
                written = doc["seq"] / 1e9
                published = doc["published_at"].timestamp() if doc.get("published_at") else None
                if published is None:
                    lags["unpublished"].append(written)
                    continue
                lags["outbox → published (relay)"].append(published - written)
                lags["written at"].append(written)
                lags["published at"].append(published)
                for service in ("reporting", "matching"):
                    at = inboxes[service].get(event_id)
                    if at is None:
                        lags[f"not processed by {service}"].append(written)
                    else:
                        lags[f"published → {service} processed"].append(at - published)
                        lags[f"{service} processed at"].append(at)
                at = inboxes["reporting"].get(event_id)
                if at is not None:
                    lags["outbox → reporting processed (total)"].append(at - written)
            run.lags[kind] = dict(lags)
        signed_up = sum(run.per_event.values())
        processed = {
            service: sum(1 for e in inbox if outbox.get(e, {}).get("type") == "ParticipantRegistered")
            for service, inbox in inboxes.items()
        }
        new_mail = maildir / "new"
        mails = len(list(new_mail.iterdir())) if new_mail.exists() else 0
        unpublished = await client["c2f_registration"]["outbox"].count_documents({"published": False})
        run.downstream = {
            "matching: sign-ups processed": f"{processed['matching']:,} of {signed_up:,}",
            "notifications: sign-ups processed": f"{processed['notifications']:,} of {signed_up:,}",
            "e-mails in the SMTP sink": f"{mails:,}",
            "reporting: match suggestions": f"{run.reporting.get('match_suggestions', 0):,}",
            "reporting: e-mails sent": f"{run.reporting.get('notifications_sent', 0):,}",
            "reporting: dead letters": f"{run.reporting.get('dead_letters', 0):,}",
            "registration outbox: unpublished": f"{unpublished:,}",
        }
        for service in ("registration", "matching", "notifications", "reporting"):
            dead = await client[f"c2f_{service}"]["dead_letters"].count_documents({})
            if dead:
                run.problems.append(f"{service} holds {dead} dead letters")
    finally:
        await client.close()


# -- logs --------------------------------------------------------------------------------

NOISE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|\b[0-9a-f]{16,}\b|(?<![A-Za-z])\d+(\.\d+)?"
)


def summarise_logs(logs: Path) -> list[tuple[str, Counter[str], Counter[str]]]:
    """Per log: lines per level, and the most common WARNING/ERROR messages (numbers and ids
    replaced by #)."""
    out = []
    for path in sorted(logs.glob("*.log")):
        levels: Counter[str] = Counter()
        messages: Counter[str] = Counter()
        for line in path.read_text(errors="replace").splitlines():
            try:  # the services log one JSON object per line (c2f_shared.service.logs)
                entry = json.loads(line)
            except ValueError:
                if "Traceback" in line or line.startswith(("Error", "Exception")):
                    levels["traceback"] += 1
                continue
            if not isinstance(entry, dict) or "level" not in entry:
                continue
            level = str(entry["level"]).upper()
            levels[level] += 1
            if "exception" in entry:
                levels["traceback"] += 1
            if level in ("WARNING", "ERROR", "CRITICAL"):
                message = str(entry.get("message", ""))
                messages[f"{level} {entry.get('logger')}: {NOISE.sub('#', message)[:150]}"] += 1
        out.append((path.stem, levels, messages))
    return out


# -- the report ----------------------------------------------------------------------------


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}" if not math.isnan(seconds) else "—"


def report(run: Run, base: Baselines, logs: list[tuple[str, Counter[str], Counter[str]]]) -> None:
    table = Table(
        "phase",
        "requests",
        "2xx",
        "req/s",
        "p50 ms",
        "p95 ms",
        "p99 ms",
        "max ms",
        "first answer s",
        "503 retries (requests)",
        "failures",
        title=f"HTTP load: concurrency {run.concurrency}, {run.events} event(s), {run.clusters} clusters",
    )
    for p in run.phases:
        table.add_row(
            p.name,
            f"{p.requests:,}",
            f"{p.ok:,}" + (f" ({p.existing} were 200)" if p.existing else ""),
            f"{p.rate:,.1f}",
            ms(percentile(p.latencies, 50)),
            ms(percentile(p.latencies, 95)),
            ms(percentile(p.latencies, 99)),
            ms(max(p.latencies, default=math.nan)),
            f"{p.first_answer - p.started:,.1f}",
            f"{p.retries:,} ({p.retried_requests:,}; most {p.most_retries})",
            ", ".join(f"{k}: {v}" for k, v in p.failures.items()) or "0",
        )
    console.print(table)
    for p in run.phases:
        for status, example in p.examples.items():
            console.print(f"  {p.name}: first {status} answer: {example}", highlight=False)

    b = Table("baseline (same run, same servers, platform idle)", "rate/s", "detail", title="Baselines")
    b.add_row(
        f"Kafka: aiokafka send_and_wait, acks=all, 1 KiB, {run.concurrency} in flight",
        f"{base.kafka_concurrent:,.0f}",
        f"{run.companies:,} messages",
    )
    b.add_row(
        "Kafka: pipelined send + one flush, acks=all, 1 KiB", f"{base.kafka_pipelined:,.0f}", f"{PIPELINED:,}"
    )
    b.add_row(
        "Kafka: send_and_wait one after another (like an outbox relay)",
        f"{base.kafka_sequential:,.0f}",
        f"p50 {base.kafka_sequential_p50_ms:.2f} ms",
    )
    b.add_row(
        f"DB: insert_one, {run.concurrency} in flight (pool 100), ~1 KiB",
        f"{base.mongo_insert_one:,.0f}",
        f"p50 {base.mongo_insert_one_p50_ms:,.1f} ms, p99 {base.mongo_insert_one_p99_ms:,.1f} ms",
    )
    b.add_row("DB: insert_many of all", f"{base.mongo_insert_many:,.0f}", f"{run.companies:,} documents")
    b.add_row(
        "DB (context): registration-shaped transaction, distinct docs",
        f"{base.txn:,.0f}",
        f"{base.txn_conflicts:,} conflicts retried, {base.txn_failed} gave up",
    )
    b.add_row(
        "DB (context): the same + $inc of one shared counter",
        f"{base.txn_hot:,.0f}",
        f"{base.txn_hot_conflicts:,} conflicts retried, {base.txn_hot_failed} gave up; "
        f"counter {base.txn_hot_counter:,}",
    )
    console.print(b)

    companies, sign_ups = run.phases[2], run.phases[3]
    r = Table(
        "platform figure", "value", "÷ baseline", "ratio", title="The platform as a ratio of the raw rates"
    )
    for p in (companies, sign_ups):
        r.add_row(
            f"{p.name}/s",
            f"{p.rate:,.1f}",
            f"DB insert_one {base.mongo_insert_one:,.0f}/s",
            f"{p.rate / base.mongo_insert_one:.3f}",
        )
        r.add_row(
            "",
            "",
            f"DB insert_many {base.mongo_insert_many:,.0f}/s",
            f"{p.rate / base.mongo_insert_many:.3f}",
        )
        r.add_row("", "", f"DB registration-shaped txn {base.txn:,.0f}/s", f"{p.rate / base.txn:.3f}")
        r.add_row(
            "",
            "",
            f"Kafka {run.concurrency} in flight {base.kafka_concurrent:,.0f}/s",
            f"{p.rate / base.kafka_concurrent:.4f}",
        )
        r.add_row(
            "", "", f"Kafka pipelined {base.kafka_pipelined:,.0f}/s", f"{p.rate / base.kafka_pipelined:.4f}"
        )
    console.print(r)

    e2e = Table(
        "reporting shows every …", "after the last answer of its phase", title="Nothing lost: end-to-end lag"
    )
    for key, phase in (("companies", companies), ("participants", sign_ups)):
        at = run.watch_reached.get(key)
        e2e.add_row(
            f"{key} ({'polled every 1 s' if at else 'NOT REACHED'})",
            f"{at - phase.last_answer:,.1f} s" if at else "—",
        )
    e2e.add_row(
        "matching processed every sign-up (context)",
        f"{run.matching_caught_up:,.1f} s"
        if run.matching_caught_up is not None
        else "not within --matching-patience",
    )
    for kind in ("CompanyRegistered", "ParticipantRegistered"):
        processed = run.lags.get(kind, {}).get("reporting processed at", [])
        if processed:
            phase = companies if kind == "CompanyRegistered" else sign_ups
            e2e.add_row(
                f"{kind}: last one in reporting's inbox (exact)",
                f"{max(processed) - phase.last_answer:,.1f} s",
            )
    console.print(e2e)

    lag = Table(
        "stage (per event)",
        "n",
        "p50 s",
        "p99 s",
        "max s",
        title="Where the lag is (from the services' databases)",
    )
    for kind in ("CompanyRegistered", "ParticipantRegistered"):
        for stage, samples in run.lags.get(kind, {}).items():
            if stage.endswith(" at"):
                continue
            if stage.startswith(("unpublished", "not processed")):
                lag.add_row(f"{kind}: {stage}", f"{len(samples):,}", "", "", "")
                continue
            lag.add_row(
                f"{kind}: {stage}",
                f"{len(samples):,}",
                f"{percentile(samples, 50):,.2f}",
                f"{percentile(samples, 99):,.2f}",
                f"{max(samples):,.2f}",
            )
        published = run.lags.get(kind, {}).get("published at", [])
        written = run.lags.get(kind, {}).get("written at", [])
        if published and written:
            phase = companies if kind == "CompanyRegistered" else sign_ups
            lag.add_row(
                f"{kind}: relay rate, first written → last published (per s)",
                f"{len(published):,}",
                "",
                "",
                f"{len(published) / (max(published) - min(written)):,.1f}",
            )
            lag.add_row(
                f"{kind}: last published, after its phase's last answer (s)",
                "",
                "",
                "",
                f"{max(published) - phase.last_answer:,.2f}",
            )
    console.print(lag)

    checks = Table("check", "expected", "shown", title="Registration's own counts (its API)")
    for what, expected, shown, _ in run.registration_counts:
        checks.add_row(what, f"{expected:,}", shown)
    rep = run.reporting
    for key in Watch.KEYS:
        checks.add_row(f"GET /reports/partnership {key}", "", f"{rep.get(key, '—')}")
    console.print(checks)
    console.print(
        f"GET /reports/partnership (the poll) took {run.poll_p50_ms:,.0f} ms p50 during the run"
        + (f"; failed polls (retried a second later): {run.failed_polls}." if run.failed_polls else "."),
        highlight=False,
    )

    if run.healthz:
        names = list(run.healthz[0][1])
        hz = Table(
            "phase",
            *(f"{name} p50 / max ms" for name in names),
            title="Event-loop lag: GET /healthz latency on each service, every second, and how late "
            "this process's own timers fire (it adds to every latency here)",
        )
        for what, per_service in run.healthz:
            hz.add_row(
                what,
                *(
                    f"{ms(percentile(per_service[n], 50))} / {ms(max(per_service[n], default=math.nan))}"
                    for n in names
                ),
            )
        console.print(hz)
        if run.healthz_failures:
            console.print(f"failed /healthz probes: {run.healthz_failures}", highlight=False)

    down = Table("downstream, once matching was waited for (context)", "value")
    for k, v in run.downstream.items():
        down.add_row(k, v)
    console.print(down)

    for title, wall, used in run.cpu:
        if not used or wall <= 0:
            continue
        cpu = Table("process", "CPU s", "of one core", title=f"CPU during the {title} ({wall:.1f} s)")
        ours = {k: v for k, v in used.items() if k != MACHINE}
        for name, seconds in sorted(ours.items(), key=lambda item: -item[1]):
            cpu.add_row(name, f"{seconds:.1f}", f"{seconds / wall:.0%}")
        total = sum(ours.values())
        cpu.add_row("all of the above", f"{total:.1f}", f"{total / wall:.0%}", style="bold")
        if MACHINE in used:
            others = max(0.0, used[MACHINE] - total)
            cpu.add_row("other processes on the machine", f"{others:.1f}", f"{others / wall:.0%}")
            cpu.add_row(
                "the whole machine (/proc/stat)",
                f"{used[MACHINE]:.1f}",
                f"{used[MACHINE] / wall:.0%} of {os.cpu_count() or 0}00 %",
            )
        console.print(cpu)

    if run.statements:
        total = sum(kinds["total"][0] for kinds in run.statements.values())
        seconds = sum(kinds["total"][1] for kinds in run.statements.values())
        requests = run.phases[2].ok + run.phases[3].ok
        st = Table(
            "collection",
            "statements",
            "s in the database",
            *STATEMENT_KINDS,
            title=f"Database statements from the first company to the end: {total:,} "
            f"({total / max(1, requests):.1f} per request), {seconds:.0f} s inside the server "
            "(its `top` command; commits and reads of no collection are not counted)",
        )
        for namespace, kinds in sorted(run.statements.items(), key=lambda item: -item[1]["total"][1])[:20]:
            st.add_row(
                namespace,
                f"{kinds['total'][0]:,}",
                f"{kinds['total'][1]:.1f}",
                *(f"{kinds[k][0]:,}" if kinds.get(k, (0, 0))[0] else "" for k in STATEMENT_KINDS),
            )
        console.print(st)

    lt = Table("log", "lines by level", "most common WARNING/ERROR (ids and numbers as #)", title="Logs")
    for name, levels, messages in logs:
        common = "\n".join(f"{n:,} × {m}" for m, n in messages.most_common(4))
        lt.add_row(name, ", ".join(f"{k} {v:,}" for k, v in levels.most_common()), common)
    console.print(lt)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--companies", type=int, default=2000, help="companies, and sign-ups (default 2000)")
    parser.add_argument(
        "--concurrency", type=int, default=None, help="requests in flight at once (default: all of them)"
    )
    parser.add_argument(
        "--events", type=int, default=4, help="B2B events the sign-ups spread over (default 4)"
    )
    parser.add_argument(
        "--single-event", action="store_true", help="every sign-up into one event (same as --events 1)"
    )
    parser.add_argument(
        "--clusters", type=int, default=10, help="clusters the companies belong to (default 10)"
    )
    parser.add_argument(
        "--patience",
        type=float,
        default=600,
        help="seconds to wait for reporting after the last answer (default 600)",
    )
    parser.add_argument(
        "--matching-patience",
        type=float,
        default=1200,
        help="seconds to wait, after reporting, until matching has processed every sign-up "
        "(context, not a verdict; 0 skips; default 1200)",
    )
    parser.add_argument(
        "--give-up",
        type=float,
        default=GIVE_UP,
        help=f"seconds a request may keep getting 503 before it counts as failed (default {GIVE_UP:.0f})",
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="keep the stack's data and logs in DIR (default: a temporary one)",
    )
    args = parser.parse_args()
    events = 1 if args.single_event else args.events
    concurrency = args.concurrency or args.companies
    if args.companies < 1 or events < 1 or args.clusters < 1 or concurrency < 1:
        parser.error("--companies, --events, --clusters and --concurrency must be at least 1")
    run = Run(companies=args.companies, concurrency=concurrency, events=events, clusters=args.clusters)
    base = Baselines()
    started = datetime.now(UTC)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    home = args.home or Path(tempfile.mkdtemp(prefix="c2f-load-"))
    if args.home and args.home.exists() and any(args.home.iterdir()):
        parser.error(f"--home {args.home} is not empty")
    stack = Stack(StackConfig.on_free_ports(home.resolve()))
    logs = []
    try:
        console.print(f"Starting the whole platform on free ports (data and logs in {home})…")
        stack.start()
        console.print("Baselines on the same broker and database (platform idle)…")
        asyncio.run(kafka_baselines(stack.config.kafka_bootstrap, args.companies, concurrency, base))
        asyncio.run(mongo_baselines(stack.config.scratch_mongo_uri, args.companies, concurrency, base))
        console.print(
            f"Load: {args.clusters} clusters, {events} event(s), {args.companies:,} companies, "
            f"{args.companies:,} sign-ups; {concurrency:,} requests in flight at most…"
        )
        asyncio.run(load(stack, run, args.patience, args.give_up, args.matching_patience))
    finally:
        stack.stop()
        logs = summarise_logs(stack.logs)
        if args.home is None:
            shutil.rmtree(home, ignore_errors=True)
    load_after = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(
        f"{started:%Y-%m-%d %H:%M} UTC, {machine()}; load average before {load_before}, after {load_after} "
        f"(other work on the machine shows here); "
        f"{(datetime.now(UTC) - started).total_seconds():.0f} s in all",
        highlight=False,
    )
    report(run, base, logs)
    for p in run.phases:
        if p.failures:
            run.problems.append(f"{p.name}: {sum(p.failures.values())} failed ({dict(p.failures)})")
    if run.problems:
        for problem in run.problems:
            console.print(f"[red]✗ {problem}")
        raise SystemExit(1)
    console.print(
        f"[green]✓ every request answered 2xx; registration and reporting show all "
        f"{run.phases[2].ok:,} companies "
        f"and {run.phases[3].ok:,} participants."
    )


if __name__ == "__main__":
    main()
