"""Reporting's projections on the embedded stack: how fast they take in the topics, how fast the
reports answer over them, and how long a rebuild takes, beside baselines from the same run.

Only the broker and the database run, then reporting (a uvicorn subprocess, as `c2f up` runs
it). Nothing else publishes, so what reporting consumes is exactly what this script produced.

1. A brokerage season of N envelopes is built from the real event models and produced to the
   real topics, keyed as the services key them (`event.aggregate_id()`): sends pipelined and
   flushed once, one record per batch as the services' outbox relays publish. The mix: 10
   ClusterRegistered, CompanyRegistered 2 %, a few EventCreated (one event much busier than
   the others), ParticipantRegistered 20 %, MatchSuggested 20 %, MeetingRequested /
   MeetingAccepted / MeetingDeclined / MeetingScheduled 45 % (one request in five is
   declined; every accepted meeting is scheduled), MeetingOutcomeRecorded 5 %,
   NotificationSent the rest.
2. Baseline: a bare AIOKafkaConsumer reads all N from the beginning (events/s). For context,
   each as a ratio to it: the same read parsing every envelope and event (pydantic); a sample
   read with an offset commit after each message (as reporting's consumer commits); and, on
   the same sample straight with pymongo in this process, the database work reporting does per
   event (inbox lookup, then one transaction with the inbox insert and `projections.project`)
   and plain single-document inserts.
3. Reporting starts on an empty database and consumer group and catches up. Figures: events/s
   from its first to its last processed event (the inbox's timestamps), and from spawn to
   caught up (its committed offsets reach the end of every partition). Then
   /reports/partnership must show exactly the counts the season implies.
4. Report latency over the loaded projections, one request after another: p50 and p99 of
   /reports/partnership, /reports/partnership/by/{country,event,month}, /reports/events/{the
   busy event} and /dashboard, beside /healthz (the HTTP floor) and a plain read of every
   projection document with pymongo. An endpoint stops early (after at least 5 requests) once
   --budget seconds are spent on it. With fewer than 100 requests p99 is the slowest one.
5. POST /admin/rebuild as the operator (empties the projections and replays every topic):
   events/s, and the reports must come out identical.

CPU seconds of each process during the catch-up and the rebuild come from /proc (Linux).
Exit status 1 if a check fails.

Usage: .venv/bin/python bench/reporting.py [--events 100000 | --quick] [--requests 30] [--budget 30]
       [--no-rebuild]   (the default run takes about 14 minutes on 2 cores; --quick under 2)
"""

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as clock
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from c2f_cli.config import StackConfig
from c2f_cli.stack import Stack
from c2f_reporting import projections, store
from c2f_reporting.config import Settings
from c2f_shared import topics
from c2f_shared.envelope import Envelope
from c2f_shared.events import (
    Attendee,
    Break,
    ClusterRegistered,
    CompanyRegistered,
    Contact,
    Event,
    EventCreated,
    MatchParty,
    MatchReason,
    MatchSuggested,
    MeetingAccepted,
    MeetingDeclined,
    MeetingOutcomeRecorded,
    MeetingPlan,
    MeetingRequested,
    MeetingScheduled,
    Need,
    NotificationSent,
    ObstacleNote,
    Offer,
    ParticipantRegistered,
    Slot,
)
from c2f_shared.service.outbox import Outbox
from c2f_shared.service.unit_of_work import Transactions
from measuring import cpu_seconds, cpu_used, percentile, stop_on_sigterm

# Redirected to a file, rich would wrap the tables at 80 columns.
console = Console() if sys.stdout.isatty() else Console(width=120)
Document = dict[str, Any]
Message = tuple[str, bytes, bytes]  # topic, key, value

QUICK = 10_000
DEFAULT = 100_000
SAMPLE = 2_000  # messages in the commit-per-message and database baselines
GROUP = Settings().consumer_group  # reporting's consumer group (c2f-reporting)
DATABASE = Settings().mongo_db  # reporting's database (c2f_reporting)

# -- the season -----------------------------------------------------------------

CLUSTERS = [  # country, membership
    ("BG", "founding"),
    ("BG", "founding"),
    ("ES", "founding"),
    ("RS", "founding"),
    ("IT", "founding"),
    ("GR", "founding"),
    ("ES", "partner"),
    ("IT", "partner"),
    ("GR", "partner"),
    ("RS", "partner"),
]
PLACES = {
    "BG": ("Sofia", "Europe/Sofia", "bg"),
    "ES": ("Bilbao", "Europe/Madrid", "es"),
    "RS": ("Novi Sad", "Europe/Belgrade", "sr"),
    "IT": ("Torino", "Europe/Rome", "it"),
    "GR": ("Θεσσαλονίκη", "Europe/Athens", "el"),
}
SECTORS = ["ict", "mobility", "construction", "environmental_technologies", "energy"]
CATEGORIES = [
    "air_quality_monitoring",
    "iot_sensors",
    "traffic_management",
    "smart_parking",
    "e_mobility_charging",
    "public_transport_software",
    "building_energy_efficiency",
    "waste_management",
    "water_management",
    "renewable_energy",
    "smart_lighting",
    "urban_data_platforms",
]
MARKETS = ["MX", "CO", "US-CA", "DE", "FR", "PT", "RO"]
OBSTACLES = ["regulation", "certification", "language", "finance", "market_knowledge", "partners"]
NOTIFICATION_KINDS = [
    "registration_confirmed",
    "match_suggested",
    "meeting_request",
    "meeting_accepted",
    "meeting_declined",
    "meeting_scheduled",
]
FOLLOW_UPS = ["none", "further_contact", "offer_sent", "agreement_signed"]


@dataclass
class Season:
    messages: list[Message] = field(default_factory=list)
    mix: Counter[str] = field(default_factory=Counter)
    expected: dict[str, int] = field(default_factory=dict)  # /reports/partnership as it must read
    busy_event: str = ""
    busy_participants: int = 0


@dataclass
class Plan:
    """How many of each fact a season of `n` events holds."""

    clusters: int
    companies: int
    events: int
    participants: int
    suggestions: int
    meetings: int
    declined: int
    outcomes: int
    notifications: int

    @classmethod
    def of(cls, n: int) -> "Plan":
        meetings = round(n * 0.45 / 2.8)  # a request, an answer and (4 in 5) a schedule: 2.8 facts each
        declined = meetings // 5
        accepted = meetings - declined
        plan = cls(
            clusters=len(CLUSTERS),
            companies=max(10, round(n * 0.02)),
            events=max(2, min(20, n // 500)),
            participants=round(n * 0.20),
            suggestions=round(n * 0.20),
            meetings=meetings,
            declined=declined,
            outcomes=min(round(n * 0.05), 2 * accepted),
            notifications=0,
        )
        plan.notifications = n - plan.facts_other_than_notifications()
        return plan

    def facts_other_than_notifications(self) -> int:
        meeting_facts = 2 * self.meetings + (self.meetings - self.declined)
        return (
            self.clusters
            + self.companies
            + self.events
            + self.participants
            + self.suggestions
            + meeting_facts
            + self.outcomes
        )


def build_season(n: int, seed: int, advance: Callable[[], None]) -> Season:
    plan = Plan.of(n)
    rng = random.Random(seed)
    season = Season()
    now = datetime.now(UTC)

    def uid() -> str:
        return str(uuid.UUID(int=rng.getrandbits(128), version=4))

    def put(event: Event, occurred_at: datetime | None = None) -> None:
        envelope = Envelope.wrap(event, producer="bench", correlation_id=uid(), event_id=uid())
        if occurred_at is not None:
            envelope = envelope.model_copy(update={"occurred_at": occurred_at})
        season.messages.append((event.TOPIC, envelope.key.encode(), envelope.model_dump_json().encode()))
        season.mix[event.TYPE] += 1
        advance()

    # Clusters
    clusters: list[tuple[str, str]] = []  # id, country
    for i, (country, membership) in enumerate(CLUSTERS):
        cluster_id = uid()
        clusters.append((cluster_id, country))
        put(
            ClusterRegistered(
                cluster_id=cluster_id,
                name=f"Bench Cluster {country} {i + 1}",
                short_name=f"BC{i + 1}",
                country=country,
                sectors=rng.sample(SECTORS, 2),
                website=f"https://cluster{i + 1}.bench.example",
                contact={"name": "Office", "email": f"office{i + 1}@bench.example", "phone": None},
                membership=membership,
            )
        )

    # Companies, with full profiles
    companies: list[tuple[str, str, str, str]] = []  # id, cluster id, name, country
    for i in range(plan.companies):
        cluster_id, country = rng.choice(clusters)
        city, _, language = PLACES[country]
        company_id, name = uid(), f"Bench Company {i} {country}"
        companies.append((company_id, cluster_id, name, country))
        put(
            CompanyRegistered(
                company_id=company_id,
                cluster_id=cluster_id,
                legal_name=name,
                country=country,
                city=city,
                website=f"https://company{i}.bench.example",
                size_band=rng.choice(["micro", "small", "medium"]),
                sectors=rng.sample(SECTORS, rng.randint(1, 2)),
                offers=[
                    Offer(
                        title=f"Offer {k} of company {i}",
                        description="Sensors, software and services for municipalities. " * 3,
                        category=rng.choice(CATEGORIES),
                        language=language,
                    )
                    for k in range(rng.randint(1, 3))
                ],
                needs=[
                    Need(
                        title=f"Need of company {i}",
                        description="A distributor or partner in the target market.",
                        kind=rng.choice(["partner", "distributor", "technology", "supplier"]),
                        category=rng.choice(CATEGORIES),
                        language=language,
                    )
                ],
                target_markets=rng.sample(MARKETS, rng.randint(1, 3)),
                obstacles=[ObstacleNote(kind=k) for k in rng.sample(OBSTACLES, rng.randint(0, 2))],
                working_languages=[language, "en"],
                contacts=[
                    Contact(
                        name=f"Contact {k} of company {i}",
                        email=f"c{k}.{i}@bench.example",
                        language=language,
                        consent=rng.choice(["brochure", "matches", "none"]),
                    )
                    for k in range(rng.randint(1, 2))
                ],
            )
        )

    # Events: B2B brokerage days (one of them much busier) and some webinars, over a year
    events: list[tuple[str, str, list[Slot]]] = []  # id, name, slots (none for a webinar)
    for i in range(plan.events):
        host, country = clusters[i % len(clusters)]
        city, zone, _ = PLACES[country]
        day = date(2026, 2, 3) + timedelta(days=19 * i)
        tz = ZoneInfo(zone)
        webinar = i % 7 == 6
        slots = [] if webinar else _slots(day, tz)
        event_id, name = uid(), f"Bench {'Webinar' if webinar else 'Brokerage'} {i} {city}"
        events.append((event_id, name, slots))
        put(
            EventCreated(
                event_id=event_id,
                name=name,
                kind="webinar" if webinar else "b2b",
                mode="virtual" if webinar else "on_site",
                host_cluster_id=host,
                venue=None if webinar else "Expo Center",
                city=city,
                country=country,
                venue_timezone=zone,
                starts_at=datetime.combine(day, clock(9), tz),
                ends_at=datetime.combine(day, clock(17), tz),
                capacity=None,
                meetings=None
                if webinar
                else MeetingPlan(
                    days=[day],
                    day_start=clock(9),
                    day_end=clock(17),
                    slot_minutes=30,
                    breaks=[Break(start=clock(12, 30), end=clock(13, 30))],
                    tables=40,
                ),
                slots=slots,
                topic="Smart city procurement" if webinar else None,
            )
        )
    season.busy_event = events[0][0]

    # Participants: a company signs up at most once per event while the event has room
    sizes = [min(plan.companies, plan.participants // 4)]
    rest = plan.participants - sizes[0]
    for j in range(1, plan.events):
        share = rest // (plan.events - j)
        sizes.append(share)
        rest -= share
    season.busy_participants = sizes[0]
    people: dict[str, list[str]] = {}  # event id -> participant ids
    participant_ids: list[str] = []
    for i, ((event_id, _, _), size) in enumerate(zip(events, sizes, strict=True)):
        event_day = date(2026, 2, 3) + timedelta(days=19 * i)
        picks = (
            rng.sample(range(plan.companies), size)
            if size <= plan.companies
            else [rng.randrange(plan.companies) for _ in range(size)]
        )
        people[event_id] = []
        for c in picks:
            company_id, cluster_id, name, country = companies[c]
            participant_id = uid()
            people[event_id].append(participant_id)
            participant_ids.append(participant_id)
            signed_up = datetime.combine(event_day, clock(10), UTC) - timedelta(days=rng.uniform(1, 60))
            put(
                ParticipantRegistered(
                    participant_id=participant_id,
                    event_id=event_id,
                    company_id=company_id,
                    cluster_id=cluster_id,
                    attendee=Attendee(
                        name=f"Attendee of {name}",
                        email=f"p{len(participant_ids)}@bench.example",
                        language="en",
                    ),
                    consent_share_contact=True,
                    languages=[PLACES[country][2], "en"],
                    access_token_hash=uuid.UUID(int=rng.getrandbits(128)).hex * 2,
                ),
                occurred_at=signed_up,
            )
    b2b = [(eid, slots) for eid, _, slots in events if slots and len(people[eid]) >= 2]
    weights = [len(people[eid]) for eid, _ in b2b]
    event_names = {eid: name for eid, name, _ in events}

    # Match suggestions between two participants of one event
    for _ in range(plan.suggestions):
        ((event_id, _slots_of),) = rng.choices(b2b, weights=weights)
        a, b = rng.sample(people[event_id], 2)
        ca, cb = rng.sample(companies, 2)
        category = rng.choice(CATEGORIES)
        put(
            MatchSuggested(
                suggestion_id=uid(),
                event_id=event_id,
                event_name=event_names[event_id],
                parties=(
                    MatchParty(participant_id=a, company_id=ca[0], company_name=ca[2], country=ca[3]),
                    MatchParty(participant_id=b, company_id=cb[0], company_name=cb[2], country=cb[3]),
                ),
                reasons=[
                    MatchReason(
                        offered_by=ca[2],
                        offer_title=f"Offer in {category}",
                        needed_by=cb[2],
                        need_title=f"Need in {category}",
                        basis="category",
                    )
                ],
                score=round(rng.uniform(0.3, 0.95), 4),
                signals=[{"kind": "shared_markets", "markets": rng.sample(MARKETS, 1)}],
                score_parts={"offer_need": 0.6, "markets": 0.2, "sectors": 0.1},
            )
        )

    # Meetings: requests, then answers (one in five declined), then the schedule
    meetings: list[tuple[str, str, list[str], bool]] = []  # id, event id, parties, accepted
    for m in range(plan.meetings):
        ((event_id, _slots_of),) = rng.choices(b2b, weights=weights)
        parties = rng.sample(people[event_id], 2)
        meetings.append((uid(), event_id, parties, m % 5 != 4))
    for meeting_id, event_id, parties, _accepted in meetings:
        put(
            MeetingRequested(
                meeting_id=meeting_id,
                event_id=event_id,
                requested_by=parties[0],
                parties=parties,
                answers={parties[1]: "requested"},
                status="requested",
                by=parties[0],
                message="We would like to meet you about your offer.",
            )
        )
    for meeting_id, event_id, parties, accepted in meetings:
        status = "accepted" if accepted else "declined"
        answer = MeetingAccepted if accepted else MeetingDeclined
        put(
            answer(
                meeting_id=meeting_id,
                event_id=event_id,
                requested_by=parties[0],
                parties=parties,
                answers={parties[1]: status},
                status=status,
                by=parties[1],
            )
        )
    slots_of = {eid: slots for eid, slots in b2b}
    placed: Counter[str] = Counter()
    for meeting_id, event_id, parties, accepted in meetings:
        if not accepted:
            continue
        k = placed[event_id]
        placed[event_id] += 1
        slots = slots_of[event_id]
        slot = slots[k % len(slots)]
        put(
            MeetingScheduled(
                meeting_id=meeting_id,
                event_id=event_id,
                parties=parties,
                slot_id=slot.id,
                starts_at=slot.starts_at,
                ends_at=slot.ends_at,
                table=str(k // len(slots) % 40 + 1),
                sequence=1,
                schedule_version=1,
                change="new",
            )
        )

    # Outcomes: each side of the accepted meetings in turn
    accepted_meetings = [m for m in meetings if m[3]]
    held: set[str] = set()
    for o in range(plan.outcomes):
        meeting_id, event_id, parties, _ = accepted_meetings[o % len(accepted_meetings)]
        side = parties[o // len(accepted_meetings)]
        was_held = rng.random() < 0.85
        if was_held:
            held.add(meeting_id)
        put(
            MeetingOutcomeRecorded(
                meeting_id=meeting_id,
                event_id=event_id,
                participant_id=side,
                held=was_held,
                rating=rng.randint(1, 5) if was_held else None,
                follow_up=rng.choice(FOLLOW_UPS) if was_held else "none",
            )
        )

    # The e-mails notifications sent
    about = [m[0] for m in meetings] + [e[0] for e in events]
    for _ in range(plan.notifications):
        put(
            NotificationSent(
                notification_id=uid(),
                kind=rng.choice(NOTIFICATION_KINDS),
                recipient_participant_id=rng.choice(participant_ids),
                about_id=rng.choice(about),
                sent_at=now,
            )
        )

    accepted_count = plan.meetings - plan.declined
    season.expected = {
        "clusters": plan.clusters,
        "agreements": 0,
        "companies": plan.companies,
        "events": plan.events,
        "participants": plan.participants,
        "match_suggestions": plan.suggestions,
        "meeting_requests": plan.meetings,
        "meetings_accepted": accepted_count,
        "meetings_scheduled": accepted_count,
        "meetings_held": len(held),
        "notifications_sent": plan.notifications,
        "dead_letters": 0,
    }
    return season


def _slots(day: date, tz: ZoneInfo) -> list[Slot]:
    """30-minute slots from 09:00 to 17:00, local time, with a lunch break 12:30-13:30."""
    slots = []
    start = datetime.combine(day, clock(9), tz)
    while start.time() < clock(17):
        if not clock(12, 30) <= start.time() < clock(13, 30):
            slots.append(
                Slot(
                    id=f"{day.isoformat()}T{start:%H:%M}",
                    starts_at=start,
                    ends_at=start + timedelta(minutes=30),
                )
            )
        start += timedelta(minutes=30)
    return slots


# -- helpers ---------------------------------------------------------------------


def progress() -> Progress:
    return Progress(
        TextColumn("{task.description:<34}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=True,
    )


async def all_partitions(consumer: Any) -> list[TopicPartition]:
    await consumer.topics()  # refreshes the metadata
    return [TopicPartition(t, p) for t in topics.ALL for p in sorted(consumer.partitions_for_topic(t) or [])]


# -- producing and the consumer baselines ----------------------------------------


async def produce(bootstrap: str, messages: list[Message]) -> tuple[float, dict[TopicPartition, int]]:
    """Create the topics as the services do (3 partitions), then send everything: pipelined
    sends and one flush, but one record per batch, as the services' outbox relays publish.

    (Tansu's in-memory engine reports a partition's end offset as the last batch's base offset
    + 1, so after a multi-record batch ListOffsets is short of the records it serves, and
    `Runtime.replay` would stop early. Returns events/s and the end offsets the sends reached.)"""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics(
            [NewTopic(t, num_partitions=topics.PARTITIONS, replication_factor=1) for t in topics.ALL]
        )
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0, max_batch_size=16)
    await producer.start()
    try:
        with progress() as bar:
            task = bar.add_task("producing", total=len(messages))
            start = time.perf_counter()
            sent = []
            for i, (topic, key, value) in enumerate(messages):
                sent.append(await producer.send(topic, value, key=key))
                if i % 1000 == 999:
                    bar.update(task, completed=i + 1)
            await producer.flush()
            elapsed = time.perf_counter() - start
    finally:
        await producer.stop()
    ends: dict[TopicPartition, int] = {}
    for delivery in sent:
        where = delivery.result()  # raises if a send failed
        tp = TopicPartition(where.topic, where.partition)
        ends[tp] = max(ends.get(tp, 0), where.offset + 1)
    return len(messages) / elapsed, ends


async def broker_ends(bootstrap: str) -> dict[TopicPartition, int]:
    """End offsets (high watermarks) as the broker reports them, non-empty partitions only."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        reported = await consumer.end_offsets(await all_partitions(consumer))
        return {tp: end for tp, end in reported.items() if end}
    finally:
        await consumer.stop()


async def consume(bootstrap: str, total: int, description: str, parse: bool = False) -> float:
    """Events/s of one consumer reading `total` messages from the beginning of every topic."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = await all_partitions(consumer)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = 0
        with progress() as bar:
            task = bar.add_task(description, total=total)
            start = time.perf_counter()
            while read < total:
                batch = await consumer.getmany(timeout_ms=1000)
                for records in batch.values():
                    if parse:
                        for record in records:
                            Envelope.model_validate_json(record.value).open()
                    read += len(records)
                bar.update(task, completed=read)
            elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return read / elapsed


async def consume_committing(bootstrap: str, n: int) -> float:
    """Events/s reading `n` messages with an offset commit after each, as reporting's consumer
    does (FastStream acks each message with `consumer.commit()`)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=f"bench-{uuid.uuid4().hex[:8]}", enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = await all_partitions(consumer)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        read = 0
        with progress() as bar:
            task = bar.add_task("consume + commit each (sample)", total=n)
            start = time.perf_counter()
            while read < n:
                batch = await consumer.getmany(timeout_ms=1000, max_records=n - read)
                for records in batch.values():
                    for _ in records:
                        await consumer.commit()
                        read += 1
                bar.update(task, completed=read)
            elapsed = time.perf_counter() - start
    finally:
        await consumer.stop()
    return read / elapsed


# -- the database baselines ------------------------------------------------------


async def database_baselines(mongo_uri: str, sample: list[Message]) -> tuple[float, float]:
    """On a scratch database: (plain inserts/s, events/s of reporting's database work per event).

    The second repeats `Pipeline.process` with reporting's own `projections.HANDLERS`: an
    inbox lookup outside the transaction, then one transaction with the inbox insert and the
    projection's writes."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    name = f"bench_scratch_{uuid.uuid4().hex[:8]}"
    db = client[name]
    envelopes = [Envelope.model_validate_json(value) for _, _, value in sample]
    events = [envelope.open() for envelope in envelopes]
    store = Transactions(client, db, Outbox(db, KafkaBroker()), "bench")  # never publishes
    try:
        with progress() as bar:
            task = bar.add_task("plain inserts (sample)", total=len(sample))
            start = time.perf_counter()
            for i, envelope in enumerate(envelopes):
                await db["plain"].insert_one({"_id": i, **envelope.data})
                bar.advance(task)
            inserts = len(sample) / (time.perf_counter() - start)

            task = bar.add_task("inbox + projection txn (sample)", total=len(sample))
            inbox = db["processed_events"]
            start = time.perf_counter()
            for envelope, event in zip(envelopes, events, strict=True):
                if await inbox.find_one({"_id": envelope.event_id}, {"_id": 1}):
                    continue
                async with store.unit_of_work(envelope.correlation_id) as uow:
                    await uow.db["processed_events"].insert_one(
                        {"_id": envelope.event_id, "type": envelope.type, "at": datetime.now(UTC)}
                    )
                    await projections.HANDLERS[type(event)](event, envelope, uow)
                bar.advance(task)
            transactions = len(sample) / (time.perf_counter() - start)
    finally:
        await client.drop_database(name)
        await client.close()
    return inserts, transactions


# -- reporting catching up ---------------------------------------------------------


async def wait_caught_up(
    bootstrap: str, ends: dict[TopicPartition, int], total: int, patience: float
) -> float:
    """Poll reporting's committed offsets until they reach `ends` on every partition; returns
    the time.time() it was seen caught up."""
    probe = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False)
    await probe.start()
    try:
        partitions = list(ends)
        deadline = time.monotonic() + patience
        with progress() as bar:
            task = bar.add_task("reporting: projecting", total=total)
            while True:
                committed = {tp: (await probe.committed(tp)) or 0 for tp in partitions}
                bar.update(task, completed=sum(committed.values()))
                if all(committed[tp] >= ends[tp] for tp in partitions):
                    return time.time()
                if time.monotonic() > deadline:
                    raise SystemExit(
                        f"reporting projected {sum(committed.values())} of {total} within {patience:.0f} s"
                    )
                await asyncio.sleep(0.5)
    finally:
        await probe.stop()


async def inbox_times(mongo_uri: str) -> list[tuple[float, str]]:
    """When reporting processed each event (time.time() scale) and its type, in order."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri, tz_aware=True)
    try:
        inbox = client[DATABASE]["processed_events"]
        return sorted([(d["at"].timestamp(), d["type"]) async for d in inbox.find({}, {"at": 1, "type": 1})])
    finally:
        await client.close()


def per_type(processed: list[tuple[float, str]]) -> dict[str, float]:
    """Mean ms per event of each type: the gap from the previous event to its inbox time."""
    spent: dict[str, float] = defaultdict(float)
    count: Counter[str] = Counter()
    for (before, _), (at, kind) in pairwise(processed):
        spent[kind] += at - before
        count[kind] += 1
    return {kind: spent[kind] / count[kind] * 1000 for kind in count}


def rate(processed: list[tuple[float, str]]) -> float:
    return (len(processed) - 1) / (processed[-1][0] - processed[0][0])


def tenths(processed: list[tuple[float, str]]) -> tuple[float, float]:
    """Events/s over the first and over the last tenth."""
    k = max(2, len(processed) // 10)
    return rate(processed[:k]), rate(processed[-k:])


async def projection_sizes(mongo_uri: str) -> dict[str, int]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    try:
        db = client[DATABASE]
        return {name: await db[name].count_documents({}) for name in store.COLLECTIONS}
    finally:
        await client.close()


# -- report latency ----------------------------------------------------------------


async def timed(call: Callable[[], Any], requests: int, budget: float) -> list[float]:
    """Seconds per call, one after another, after one untimed warm-up call; stops early (after
    at least 5) once `budget` seconds are spent."""
    await call()
    samples: list[float] = []
    spent = 0.0
    while len(samples) < requests and (spent < budget or len(samples) < 5):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
        spent += samples[-1]
    return samples


async def latencies(
    base_url: str, mongo_uri: str, busy_event: str, requests: int, budget: float
) -> dict[str, list[float]]:
    paths = [
        "/healthz",
        "/reports/partnership",
        "/reports/partnership/by/country",
        "/reports/partnership/by/event",
        "/reports/partnership/by/month",
        f"/reports/events/{busy_event}",
        "/dashboard",
    ]
    results: dict[str, list[float]] = {}
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    db = mongo[DATABASE]

    async def read_everything() -> None:
        for name in store.COLLECTIONS:
            await db[name].find({}).to_list(None)

    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=600) as client:
            with progress() as bar:
                task = bar.add_task("report latency", total=len(paths) + 1)
                for path in paths:
                    bar.update(task, description=f"GET {path[:30]}")

                    async def get(path: str = path) -> None:
                        response = await client.get(path)
                        response.raise_for_status()

                    results[path] = await timed(get, requests, budget)
                    bar.advance(task)
                bar.update(task, description="pymongo: read every projection")
                results["read every projection document (pymongo)"] = await timed(
                    read_everything, requests, budget
                )
                bar.advance(task)
    finally:
        await mongo.close()
    return results


# -- rebuild -----------------------------------------------------------------------


REPORTS = ("/reports/partnership", "/reports/partnership/by/event", "/reports/partnership/by/country")


async def snapshot(client: httpx.AsyncClient, busy_event: str) -> dict[str, Any]:
    return {path: (await client.get(path)).json() for path in (*REPORTS, f"/reports/events/{busy_event}")}


async def rebuild(base_url: str, token: str, mongo_uri: str, total: int) -> tuple[int, float]:
    """POST /admin/rebuild as the operator, showing the inbox refill as progress; returns
    (events replayed, seconds)."""
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(mongo_uri)
    inbox = mongo[DATABASE]["processed_events"]
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with httpx.AsyncClient(base_url=base_url, timeout=None, headers=headers) as client:
            with progress() as bar:
                task = bar.add_task("POST /admin/rebuild", total=total)
                start = time.perf_counter()
                request = asyncio.create_task(client.post("/admin/rebuild"))
                while not request.done():
                    await asyncio.wait([request], timeout=2)
                    if not request.done():
                        bar.update(task, completed=await inbox.estimated_document_count())
                response = await request
                elapsed = time.perf_counter() - start
        response.raise_for_status()
        replayed: int = response.json()["replayed"]
        return replayed, elapsed
    finally:
        await mongo.close()


# -- the run -----------------------------------------------------------------------


@dataclass
class Results:
    events: int
    produced: float = 0.0  # events/s
    ends: dict[TopicPartition, int] = field(default_factory=dict)  # what the sends reached
    bare: float = 0.0
    parsed: float = 0.0
    committing: float = 0.0
    inserts: float = 0.0
    transactions: float = 0.0
    spawned: float = 0.0  # time.time()
    ready: float = 0.0
    caught_up: float = 0.0
    processed: list[tuple[float, str]] = field(default_factory=list)  # inbox after the catch-up
    reprocessed: list[tuple[float, str]] = field(default_factory=list)  # inbox after the rebuild
    sizes: dict[str, int] = field(default_factory=dict)
    latency: dict[str, list[float]] = field(default_factory=dict)
    replayed: int = 0
    rebuild_s: float = 0.0
    cpu_before: dict[str, float] = field(default_factory=dict)  # just before reporting was spawned
    cpu: dict[str, tuple[float, dict[str, float]]] = field(default_factory=dict)  # phase: (wall, CPU)
    problems: list[str] = field(default_factory=list)


async def before_reporting(stack: Stack, season: Season, results: Results) -> None:
    cfg = stack.config
    n = len(season.messages)
    results.produced, results.ends = await produce(cfg.kafka_bootstrap, season.messages)
    reported = await broker_ends(cfg.kafka_bootstrap)
    if reported != results.ends:
        results.problems.append(
            f"the broker reports end offsets summing to {sum(reported.values())}, "
            f"the sends reached {sum(results.ends.values())}"
        )
    results.bare = await consume(cfg.kafka_bootstrap, n, "bare consumer (baseline)")
    results.parsed = await consume(cfg.kafka_bootstrap, n, "consume + parse envelopes", parse=True)
    sample = min(n, SAMPLE)
    results.committing = await consume_committing(cfg.kafka_bootstrap, sample)
    picks = random.Random(0).sample(season.messages, sample)  # the season's mix, in no order
    results.inserts, results.transactions = await database_baselines(cfg.mongo_uri_of("reporting"), picks)


async def after_reporting(
    stack: Stack,
    season: Season,
    results: Results,
    requests: int,
    budget: float,
    patience: float,
    rebuilding: bool,
) -> None:
    cfg = stack.config
    n = len(season.messages)
    results.caught_up = await wait_caught_up(cfg.kafka_bootstrap, results.ends, n, patience)
    results.cpu["catch-up"] = (
        results.caught_up - results.spawned,
        cpu_used(results.cpu_before, cpu_seconds(stack)),
    )
    results.processed = await inbox_times(cfg.mongo_uri_of("reporting"))
    if len(results.processed) != n:
        results.problems.append(f"reporting's inbox holds {len(results.processed)} events, {n} were produced")
    url = cfg.service_url("reporting")
    async with httpx.AsyncClient(base_url=url, timeout=600) as client:
        # The last offsets commit after the last transaction: the reports are complete now.
        totals = (await client.get("/reports/partnership")).json()
        if totals != season.expected:
            wrong = {k: (totals.get(k), v) for k, v in season.expected.items() if totals.get(k) != v}
            results.problems.append(f"/reports/partnership (got, expected): {wrong}")
        results.sizes = await projection_sizes(cfg.mongo_uri_of("reporting"))
        results.latency = await latencies(
            url, cfg.mongo_uri_of("reporting"), season.busy_event, requests, budget
        )
        if not rebuilding:
            return
        before = await snapshot(client, season.busy_event)
        cpu_before = cpu_seconds(stack)
        results.replayed, results.rebuild_s = await rebuild(
            url, cfg.operator_token(), cfg.mongo_uri_of("reporting"), n
        )
        results.cpu["rebuild"] = (results.rebuild_s, cpu_used(cpu_before, cpu_seconds(stack)))
        results.reprocessed = await inbox_times(cfg.mongo_uri_of("reporting"))
        if results.replayed != n:
            results.problems.append(f"the rebuild replayed {results.replayed} events, {n} were produced")
        after = await snapshot(client, season.busy_event)
        for path in before:
            if before[path] != after[path]:
                results.problems.append(f"{path} differs after the rebuild")


def report(results: Results, season: Season) -> None:
    n, bare = results.events, results.bare
    table = Table("figure", "events/s", f"÷ bare consumer ({bare:,.0f}/s)", title=f"{n:,} events")

    def row(name: str, rate: float, bold: bool = False) -> None:
        style = "bold" if bold else None
        table.add_row(name, f"{rate:,.0f}", f"{rate / bare:.3f}", style=style)

    row("bare AIOKafkaConsumer, all from the beginning (baseline)", bare)
    row("  + parse envelope and event (pydantic)", results.parsed)
    row(f"  + offset commit after each message ({min(n, SAMPLE):,} sample)", results.committing)
    row(f"inbox + projection transaction, pymongo ({min(n, SAMPLE):,} sample)", results.transactions)
    row(f"plain single-document inserts ({min(n, SAMPLE):,} sample)", results.inserts)
    table.add_section()
    steady = rate(results.processed)
    row("reporting: projections, first → last event", steady, bold=True)
    row("reporting: spawn → caught up (start-up, group join)", n / (results.caught_up - results.spawned))
    if results.replayed:
        row(
            "POST /admin/rebuild (empty + replay everything)", results.replayed / results.rebuild_s, bold=True
        )
    table.add_section()
    table.add_row("producing (context: pipelined, 1 record per batch)", f"{results.produced:,.0f}", "—")
    console.print(table)
    console.print(
        f"reporting: ready {results.ready - results.spawned:.1f} s after spawn, first event processed "
        f"{results.processed[0][0] - results.spawned:.1f} s after spawn, caught up after "
        f"{results.caught_up - results.spawned:.1f} s; projections ÷ the database work alone: "
        f"{steady / results.transactions:.2f}."
    )
    early, late = tenths(results.processed)
    console.print(f"catch-up: {early:,.0f} events/s over the first tenth, {late:,.0f} over the last.")
    if results.replayed:
        early, late = tenths(results.reprocessed)
        console.print(
            f"rebuild: {results.replayed:,} events replayed in {results.rebuild_s:.1f} s; "
            f"{early:,.0f} events/s over the first tenth, {late:,.0f} over the last."
        )
    console.print(
        "mix: "
        + ", ".join(f"{kind} {count:,}" for kind, count in season.mix.most_common())
        + f"; the busy event has {season.busy_participants:,} participants."
    )
    console.print("projections: " + ", ".join(f"{k} {v:,}" for k, v in results.sizes.items()))

    health = statistics.median(results.latency.get("/healthz", [math.nan]))
    lat = Table(
        "request (one after another)",
        "n",
        "p50 ms",
        "p99 ms",
        f"p50 ÷ /healthz p50 ({health * 1000:.1f} ms)",
        title="report latency over the loaded projections",
    )
    for name, samples in results.latency.items():
        label = "/reports/events/{busy event}" if name.startswith("/reports/events/") else name
        label = f"GET {label}" if label.startswith("/") else label
        p50 = statistics.median(samples)
        lat.add_row(
            label,
            str(len(samples)),
            f"{p50 * 1000:,.1f}",
            f"{percentile(samples, 99) * 1000:,.1f}",
            f"{p50 / health:,.0f}×",
        )
    console.print(lat)

    phases = {"catch-up": per_type(results.processed)}
    if results.reprocessed:
        phases["rebuild"] = per_type(results.reprocessed)
    kinds = Table(
        "event type",
        "events",
        *(f"{phase} ms/event" for phase in phases),
        title="time per event by type (gap from the previous event to its inbox time)",
    )
    for kind, count in season.mix.most_common():
        kinds.add_row(kind, f"{count:,}", *(f"{ms.get(kind, math.nan):.2f}" for ms in phases.values()))
    console.print(kinds)

    for phase, (wall, used) in results.cpu.items():
        if not used:
            continue
        cpu = Table("process", "CPU s", "of one core", title=f"CPU during the {phase} ({wall:.1f} s)")
        for name, seconds in sorted(used.items(), key=lambda item: -item[1]):
            cpu.add_row(name, f"{seconds:.1f}", f"{seconds / wall:.0%}")
        cpu.add_row("all", f"{sum(used.values()):.1f}", f"{sum(used.values()) / wall:.0%}")
        console.print(cpu)


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=DEFAULT, help=f"envelopes to produce and project (default {DEFAULT:,})"
    )
    parser.add_argument("--quick", action="store_true", help=f"a short run: --events {QUICK:,}")
    parser.add_argument(
        "--requests", type=int, default=30, help="timed requests per report endpoint (default 30)"
    )
    parser.add_argument(
        "--budget",
        type=float,
        default=30,
        help="seconds of requests per endpoint after which it stops early, with at least 5 (default 30)",
    )
    parser.add_argument("--no-rebuild", action="store_true", help="skip timing POST /admin/rebuild")
    parser.add_argument(
        "--timeout", type=float, default=3600, help="seconds to wait for reporting to catch up (default 3600)"
    )
    parser.add_argument("--seed", type=int, default=1, help="random seed of the season (default 1)")
    args = parser.parse_args()
    n = QUICK if args.quick else args.events
    if n < 1000 or args.requests < 1:
        parser.error("--events must be at least 1000 and --requests at least 1")

    with progress() as bar:
        task = bar.add_task("building the season's events", total=n)
        season = build_season(n, args.seed, lambda: bar.advance(task))
    results = Results(events=n)
    load_before = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    with tempfile.TemporaryDirectory() as home:
        stack = Stack(StackConfig.on_free_ports(Path(home)))
        console.print("Starting the broker and the database on free ports…")
        try:
            stack.start_infrastructure()
            asyncio.run(before_reporting(stack, season, results))
            console.print("Starting reporting on an empty database; it reads every topic from the start…")
            results.cpu_before = cpu_seconds(stack)
            results.spawned = time.time()
            stack.start_services(["reporting"])
            results.ready = time.time()
            asyncio.run(
                after_reporting(
                    stack, season, results, args.requests, args.budget, args.timeout, not args.no_rebuild
                )
            )
        finally:
            stack.stop()
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    console.print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}; "
        f"load average before {load_before}, after {load} (other work on the machine shows here)"
    )
    report(results, season)
    if results.problems:
        for problem in results.problems:
            console.print(f"[red]✗ {problem}")
        raise SystemExit(1)
    console.print(
        "[green]✓ reporting's inbox holds every event, /reports/partnership shows the season's counts"
        + (", and the rebuild changed no report." if results.replayed else ".")
    )


if __name__ == "__main__":
    main()
