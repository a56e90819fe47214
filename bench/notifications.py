"""Mails per second through the real SMTP server, beside the raw aiosmtplib send rate to the
same server in the same run.

Only the broker, the database, the SMTP sink (aiosmtpd writing a Maildir), registration and
notifications run; matching and reporting do not, so every mail in the sink is either a
baseline mail or a `registration_confirmed` mail caused by a sign-up below.

Baselines, measured first, on the idle stack:
  - raw aiosmtplib.send of N small mails to the stack's SMTP sink, one after another
    (a new connection per mail, as notifications sends), and with --concurrency senders;
  - the same N mails over one reused SMTP connection (what a connection pool could reach);
  - composing and rendering one registration_confirmed mail in this process (no I/O).

Through the platform: one cluster, N companies and one B2B event are registered over
registration's HTTP API (not timed; a company can sign up once per event), then N
participants are signed up with --concurrency HTTP clients, attendee languages cycling
through en, es, it, bg, sr, el. Each sign-up makes exactly one registration_confirmed mail.
  - end to end: N / (last mail's arrival - first sign-up sent);
  - notifications' own rate: (N - 1) / (last arrival - first arrival), by the files' mtimes;
  - for context: the queue's drain rate once the last sign-up has answered (notifications
    no longer shares the machine with registration), and sign-ups per second;
each beside the raw rates as a ratio. With registration signing up about as fast as it can, the
live figures are capped by registration's sign-up rate, not by notifications. So, second, a
backlog: notifications is stopped, N participants sign up to a second event (their
ParticipantRegistered events wait on the topic), notifications is started again, and
  - notifications' own rate on the backlog: (N - 1) / (last arrival - first arrival): from
    ParticipantRegistered on the topic to the mail in the sink, nothing else running;
  - for context, N / (last arrival - the moment notifications was started), process start-up
    and joining the consumer group included.
Also printed: the CPU time each process used in each phase (Linux). Sign-ups that fail on the server
(5xx, a dropped connection) are retried and counted. Every mail must arrive exactly once
(unique Message-ID, one per attendee, in the attendee's language); otherwise exit status 1.

Usage: .venv/bin/python bench/notifications.py [--mails 500] [--concurrency 8] [--home DIR]
"""

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from email.policy import default
from email.utils import make_msgid
from pathlib import Path
from typing import Any

import aiosmtplib
import httpx
from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from c2f_cli.config import StackConfig
from c2f_cli.mail import read_mail
from c2f_cli.stack import Stack
from c2f_notifications import messages, outgoing
from c2f_notifications.i18n import Words
from c2f_shared.service.outbox import Outbox
from c2f_shared.service.unit_of_work import Transactions
from measuring import MACHINE, STATEMENT_KINDS, cpu_seconds, cpu_used, database_top, stop_on_sigterm, top_used

console = Console()
LANGUAGES = ("en", "es", "it", "bg", "sr", "el")
KIND = "registration_confirmed"
LIVE, BACKLOG = "attendee", "backlog"  # attendees' addresses: attendee<i>@, backlog<i>@
SIGN_UP_ATTEMPTS = 12
EVENT = {
    "name": "Smart City Brokerage Sofia",
    "city": "Sofia",
    "venue": "Inter Expo Center",
    "country": "BG",
    "venue_timezone": "Europe/Sofia",
    "starts_at": "2027-03-16T09:00:00+02:00",
    "ends_at": "2027-03-16T17:00:00+02:00",
}


# -- baselines ------------------------------------------------------------------


def small_mail(i: int) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = "Bench <bench@c2future.example>"
    mail["To"] = f"Raw {i} <raw{i}@bench.example>"
    mail["Subject"] = f"Raw mail {i}"
    mail["Message-ID"] = make_msgid(domain="bench.example")
    mail["X-C2F-Kind"] = "bench_raw"
    mail.set_content("A small message that times the SMTP server and aiosmtplib alone.\n")
    return mail


async def raw_send_rate(host: str, port: int, n: int, concurrency: int) -> float:
    """Mails/s with aiosmtplib.send (connect, EHLO, MAIL, RCPT, DATA, QUIT per mail)."""
    mails: Iterator[EmailMessage] = iter([small_mail(i) for i in range(n)])

    async def sender() -> None:
        for mail in mails:  # a shared iterator: each mail goes to one sender
            await aiosmtplib.send(mail, hostname=host, port=port, timeout=15)

    start = time.perf_counter()
    await asyncio.gather(*(sender() for _ in range(concurrency)))
    return n / (time.perf_counter() - start)


async def reused_connection_rate(host: str, port: int, n: int) -> float:
    """Mails/s over one SMTP connection kept open (MAIL, RCPT, DATA per mail)."""
    mails = [small_mail(i) for i in range(n)]
    start = time.perf_counter()
    async with aiosmtplib.SMTP(hostname=host, port=port, timeout=15) as smtp:
        for mail in mails:
            await smtp.send_message(mail)
    return n / (time.perf_counter() - start)


def render_rate(n: int) -> float:
    """Mails/s of compose + render alone (Jinja2, Babel, the message's bytes), in this process."""
    event = {**EVENT, "_id": "e1", "kind": "b2b", "mode": "in_person"}
    start = time.perf_counter()
    for i in range(n):
        language = LANGUAGES[i % len(LANGUAGES)]
        me = {"_id": f"p{i}", "name": f"Attendee {i}", "email": f"a{i}@bench.example", "language": language}
        ctx = messages.Context(
            words=Words(language),
            recipient=me,
            event=event,
            party=lambda _: messages.Party(name="Bench Company", country="BG"),
            link=lambda action, subject: f"http://127.0.0.1/act/{action}/{subject}",
            sender="C2Future Match <noreply@c2future.example>",
        )
        message = messages.compose(KIND, {"event_id": "e1"}, ctx)
        messages.render(
            message,
            ctx,
            to=(me["name"], me["email"]),
            message_id=str(uuid.uuid4()),
            preferences_url="http://127.0.0.1/preferences/x",
            unsubscribe_url=None,
        )
    return n / (time.perf_counter() - start)


# -- through the platform ---------------------------------------------------------


@dataclass
class Run:
    signups_started: float  # wall clock (time.time()), comparable with file mtimes
    signups_done: float
    arrivals: list[float]  # mtimes of the registration_confirmed files, sorted
    mail_bytes: list[int]
    errors: list[str]
    retried: list[str]  # sign-ups the server failed (5xx, dropped connection) and that were sent again
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds per process, sign-ups to settled
    wall: float = 0.0  # the seconds `cpu` was counted over


@dataclass
class Backlog:
    signups_s: float  # how long the N sign-ups took (notifications stopped)
    started: float  # wall clock when notifications was started again
    ready: float  # ... and when it answered /readyz
    arrivals: list[float]
    errors: list[str]
    retried: list[str]
    cpu: dict[str, float] = field(default_factory=dict)  # from the restart to settled
    wall: float = 0.0
    statements: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)  # database_top


def maildir_files(maildir: Path) -> list[Path]:
    return [p for sub in ("new", "cur") if (maildir / sub).is_dir() for p in (maildir / sub).iterdir()]


def mail_count(maildir: Path) -> int:
    """How many mails the sink holds: what the waits look at twenty times a second. Listing them
    as paths took this process a quarter of a core with 4,500 mails in the sink, CPU the
    services being measured did not get."""
    return sum(len(os.listdir(maildir / sub)) for sub in ("new", "cur") if (maildir / sub).is_dir())


def ours(to: str, prefix: str) -> bool:
    """Whether a mail's To header is one of the attendees signed up as `prefix`<i>@."""
    return f"<{prefix}" in to and to.split("<", 1)[1][len(prefix) : len(prefix) + 1].isdigit()


def confirmed_arrivals(maildir: Path, prefix: str) -> tuple[list[float], list[int]]:
    """Arrival times (mtime) and sizes of the registration_confirmed mails to `prefix`<i>@."""
    parser = BytesHeaderParser(policy=default)
    times, sizes = [], []
    for path in maildir_files(maildir):
        with path.open("rb") as fh:
            headers = parser.parse(fh)
        if headers["X-C2F-Kind"] == KIND and ours(str(headers["To"]), prefix):
            stat = path.stat()
            times.append(stat.st_mtime_ns / 1e9)
            sizes.append(stat.st_size)
    return sorted(times), sizes


async def prepare(client: httpx.AsyncClient, n: int, concurrency: int) -> tuple[str, str, list[str]]:
    """One cluster, one event and `n` companies (one sign-up per company and event)."""
    cluster = await client.post(
        "/clusters",
        json={"name": "Bench", "short_name": f"B{uuid.uuid4().hex[:6]}", "country": "BG", "sectors": ["ict"]},
    )
    cluster.raise_for_status()
    cluster_id = cluster.json()["id"]
    event = await client.post("/events", json={**EVENT, "host_cluster_id": cluster_id})
    event.raise_for_status()
    indices = iter(range(n))
    companies: list[str] = []

    async def register() -> None:
        for i in indices:
            body = {
                "cluster_id": cluster_id,
                "legal_name": f"Bench Company {i} {uuid.uuid4().hex[:6]}",
                "country": "BG",
                "sectors": ["ict"],
            }
            response = await client.post("/companies", json=body)
            response.raise_for_status()
            companies.append(response.json()["id"])

    with console.status(f"registering a cluster, an event and {n} companies…"):
        await asyncio.gather(*(register() for _ in range(concurrency)))
    return cluster_id, event.json()["id"], companies


async def wait_for_read_model(mongo_uri: str, event_id: str, companies: int, within: float) -> None:
    """Until notifications has consumed the event and every company (so no mail waits for them)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    db = client["c2f_notifications"]
    deadline = time.monotonic() + within
    try:
        with console.status("waiting for notifications to read the companies and the event…"):
            while (
                await db["events"].count_documents({"_id": event_id}) == 0
                or await db["companies"].count_documents({}) < companies
            ):
                if time.monotonic() > deadline:
                    raise SystemExit(f"notifications did not read the setup within {within:.0f} s")
                await asyncio.sleep(0.1)
    finally:
        await client.close()


async def sign_up(
    client: httpx.AsyncClient, event_id: str, i: int, company_id: str, retried: list[str], prefix: str
) -> str | None:
    """Sign up attendee `i`; None when registered, else why not.

    A 5xx or a dropped connection is retried: registration then either did not commit (a
    write conflict on the event's seat counter, for instance) or did, and the retry is told
    "already registered" (409), which counts as registered."""
    attendee = {
        "name": f"Attendee {i}",
        "email": f"{prefix}{i}@bench.example",
        "language": LANGUAGES[i % len(LANGUAGES)],
    }
    body = {"company_id": company_id, "attendee": attendee}
    for attempt in range(SIGN_UP_ATTEMPTS):
        try:
            response = await client.post(f"/events/{event_id}/participants", json=body)
        except httpx.TransportError as error:
            retried.append(f"sign-up {i}: {type(error).__name__}")
        else:
            if response.status_code == 201 or (response.status_code == 409 and attempt > 0):
                return None
            if response.status_code < 500:
                return f"sign-up {i}: {response.status_code} {response.text[:200]}"
            retried.append(f"sign-up {i}: {response.status_code}")
        await asyncio.sleep(random.uniform(0, min(1.0, 0.05 * 2**attempt)))
    return f"sign-up {i}: failed {SIGN_UP_ATTEMPTS} times"


async def sign_up_and_wait(
    client: httpx.AsyncClient,
    maildir: Path,
    event_id: str,
    companies: list[str],
    concurrency: int,
    patience: float,
) -> Run:
    n = len(companies)
    already = len(maildir_files(maildir))  # the baselines' mails
    errors: list[str] = []
    retried: list[str] = []
    jobs = iter(enumerate(companies))
    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        transient=True,
    ) as progress:
        signed = progress.add_task("sign-ups", total=n)
        arrived = progress.add_task("mails in the SMTP sink", total=n)

        async def worker() -> None:
            for i, company_id in jobs:
                error = await sign_up(client, event_id, i, company_id, retried, LIVE)
                if error is not None:
                    errors.append(error)
                progress.advance(signed)

        started = time.time()
        signing = asyncio.gather(*(worker() for _ in range(concurrency)))
        done_at: list[float] = []
        signing.add_done_callback(lambda _: done_at.append(time.time()))
        deadline = time.monotonic() + patience
        while True:
            # Counting files is cheap; parsing is done once the count says all are there.
            count = mail_count(maildir) - already
            progress.update(arrived, completed=min(count, n))
            if count >= n and len(confirmed(maildir, LIVE)) >= n:
                break
            if signing.done() and errors and count >= n - len(errors):
                break  # the failed sign-ups will send nothing
            if time.monotonic() > deadline:
                errors.append(f"only {count} of {n} mails arrived within {patience:.0f} s")
                break
            await asyncio.sleep(0.05)
        await signing
    arrivals, sizes = confirmed_arrivals(maildir, LIVE)
    return Run(started, done_at[0], arrivals, sizes, errors, retried)


def confirmed(maildir: Path, prefix: str) -> list[EmailMessage]:
    return [m for m in read_mail(maildir) if m["X-C2F-Kind"] == KIND and ours(str(m["To"]), prefix)]


async def outbox_drained(mongo_uri: str, within: float) -> None:
    """Until registration's outbox has published everything (the sign-ups' events are on the topic)."""
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(mongo_uri)
    deadline = time.monotonic() + within
    try:
        while await client["c2f_registration"]["outbox"].count_documents({"published": False}):
            if time.monotonic() > deadline:
                raise SystemExit(f"registration did not publish its events within {within:.0f} s")
            await asyncio.sleep(0.1)
    finally:
        await client.close()


async def backlog(
    stack: Stack,
    registration: httpx.AsyncClient,
    notifications: httpx.AsyncClient,
    cluster_id: str,
    companies: list[str],
    concurrency: int,
    patience: float,
) -> Backlog:
    """Sign up N participants to a second event while notifications is stopped, then start it
    and time the mails out of the backlog of ParticipantRegistered events."""
    cfg = stack.config
    n = len(companies)
    event = await registration.post(
        "/events", json={**EVENT, "name": f"{EVENT['name']} (backlog)", "host_cluster_id": cluster_id}
    )
    event.raise_for_status()
    event_id = event.json()["id"]
    await wait_for_read_model(cfg.mongo_uri_of("notifications"), event_id, n, within=60)
    stopped = next(child for child in stack.children if child.name == "notifications")
    stopped.stop()
    stack.children.remove(stopped)
    errors: list[str] = []
    retried: list[str] = []
    jobs = iter(enumerate(companies))

    async def worker() -> None:
        for i, company_id in jobs:
            error = await sign_up(registration, event_id, i, company_id, retried, BACKLOG)
            if error is not None:
                errors.append(error)

    began = time.perf_counter()
    with console.status(f"signing up {n} participants while notifications is stopped…"):
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        signups_s = time.perf_counter() - began
        await outbox_drained(cfg.mongo_uri_of("registration"), within=120)
    already = len(maildir_files(cfg.maildir))
    top_before = await database_top(cfg)
    cpu_before, wall_before = cpu_seconds(stack), time.perf_counter()
    started = time.time()
    await asyncio.to_thread(stack.start_services, ["notifications"])
    ready = time.time()
    deadline = time.monotonic() + patience
    with console.status("notifications drains the backlog…"):
        # Counting files is cheap (parsing every mail at each look would take a core from the
        # services); the mails are parsed once the count says all are there.
        while (count := mail_count(cfg.maildir) - already) < n - len(errors):
            if time.monotonic() > deadline:
                errors.append(f"backlog: only {count} of {n} mails arrived within {patience:.0f} s")
                break
            await asyncio.sleep(0.05)
        queue = await settle(notifications, 2 * n)
    arrivals, _ = confirmed_arrivals(cfg.maildir, BACKLOG)
    result = Backlog(signups_s, started, ready, arrivals, errors, retried)
    result.cpu = cpu_used(cpu_before, cpu_seconds(stack))
    result.wall = time.perf_counter() - wall_before
    result.statements = top_used(top_before, await database_top(cfg))
    result.errors += check(cfg.maildir, n, queue, BACKLOG, sent=2 * n)
    return result


@dataclass
class Queued:
    arrivals: list[float]
    errors: list[str]
    cpu: dict[str, float] = field(default_factory=dict)
    wall: float = 0.0
    statements: dict[str, dict[str, tuple[int, float]]] = field(default_factory=dict)  # database_top


async def queued(stack: Stack, notifications: httpx.AsyncClient, n: int, patience: float) -> Queued:
    """Delivery alone: with notifications stopped, queue one more mail for each backlog attendee
    straight into its queue (as its consumer would, with `outgoing.queue`), start it, and time
    the mails out. Its consumer has nothing to do meanwhile."""
    cfg = stack.config
    stopped = next(child for child in stack.children if child.name == "notifications")
    stopped.stop()
    stack.children.remove(stopped)
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        cfg.mongo_uri_of("notifications"), tz_aware=True
    )
    try:
        db = client["c2f_notifications"]
        people = await db["recipients"].find({"email": {"$regex": f"^{BACKLOG}"}}).to_list(None)
        # A unit of work on notifications' database; nothing is emitted, so its outbox never publishes.
        async with Transactions(client, db, Outbox(db, KafkaBroker()), "bench").unit_of_work("bench") as uow:
            for person in people:
                await outgoing.queue(
                    uow, KIND, f"bench-again:{person['_id']}", person["_id"], {"event_id": person["event_id"]}
                )
    finally:
        await client.close()
    before = set(maildir_files(cfg.maildir))
    top_before = await database_top(cfg)
    cpu_before, wall_before = cpu_seconds(stack), time.perf_counter()
    await asyncio.to_thread(stack.start_services, ["notifications"])
    errors = [] if len(people) == n else [f"queued: {len(people)} backlog attendees found, expected {n}"]
    deadline = time.monotonic() + patience
    with console.status(f"notifications sends {n} mails already queued…"):
        while mail_count(cfg.maildir) - len(before) < len(people):
            if time.monotonic() > deadline:
                errors.append(f"queued: only {mail_count(cfg.maildir) - len(before)} of {n} arrived")
                break
            await asyncio.sleep(0.05)
        queue = await settle(notifications, 3 * n)
    new = [p for p in maildir_files(cfg.maildir) if p not in before]
    result = Queued(sorted(p.stat().st_mtime_ns / 1e9 for p in new), errors)
    result.cpu = cpu_used(cpu_before, cpu_seconds(stack))
    result.wall = time.perf_counter() - wall_before
    result.statements = top_used(top_before, await database_top(cfg))
    ids = [m["Message-ID"] for m in read_mail(cfg.maildir) if m["X-C2F-Kind"] == KIND]
    if len(ids) != len(set(ids)) or len(ids) != 3 * n:
        result.errors.append(
            f"queued: {len(ids)} mails, {len(set(ids))} Message-IDs, expected {3 * n} of each"
        )
    if queue["sent"] != 3 * n or queue["failed"] or queue["cancelled"]:
        result.errors.append(f"queued: notifications' queue: {queue}")
    return result


async def settle(client: httpx.AsyncClient, n: int, within: float = 30) -> dict[str, int]:
    """Notifications' queue once every message is recorded as sent (or the time is up)."""
    deadline = time.monotonic() + within
    while True:
        response = await client.get("/outgoing/summary")
        response.raise_for_status()
        counts: dict[str, int] = response.json()
        if counts["sent"] >= n and not counts["pending"] and not counts["sending"]:
            return counts
        if time.monotonic() > deadline:
            return counts
        await asyncio.sleep(0.2)


def check(maildir: Path, n: int, queue: dict[str, int], prefix: str, sent: int) -> list[str]:
    """Every attendee got one mail, once, in its language; the queue shows `sent` sent."""
    mails = confirmed(maildir, prefix)
    problems = []
    if len(mails) != n:
        problems.append(f"{len(mails)} registration_confirmed mails to {prefix}… in the sink, expected {n}")
    ids = [m["Message-ID"] for m in mails]
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} mails arrived more than once (same Message-ID)")
    to = [a.addr_spec for m in mails for a in m["To"].addresses]
    if sorted(to) != sorted(f"{prefix}{i}@bench.example" for i in range(n)):
        problems.append("the recipients are not exactly one mail per attendee")
    wrong_language = 0
    for mail, address in zip(mails, to, strict=False):
        i = int(address.removeprefix(prefix).split("@")[0])
        html = mail.get_body(("html",))
        if html is None or f'lang="{LANGUAGES[i % len(LANGUAGES)]}"' not in html.get_content():
            wrong_language += 1
    if wrong_language:
        problems.append(f"{wrong_language} mails not in the attendee's language")
    if queue["sent"] != sent or queue["failed"] or queue["cancelled"]:
        problems.append(f"notifications' queue: {queue}")
    return problems


async def measure(
    stack: Stack, n: int, concurrency: int, patience: float
) -> tuple[dict[str, float], Run, Backlog, Queued]:
    cfg = stack.config
    figures = {}
    with console.status("raw aiosmtplib baselines…"):
        figures["raw_1"] = await raw_send_rate(cfg.smtp_host, cfg.smtp_port, n, 1)
        figures["raw_n"] = await raw_send_rate(cfg.smtp_host, cfg.smtp_port, n, concurrency)
        figures["reused"] = await reused_connection_rate(cfg.smtp_host, cfg.smtp_port, n)
        figures["render"] = render_rate(n)
    headers = {"Authorization": f"Bearer {cfg.operator_token()}"}
    limits = httpx.Limits(max_connections=concurrency)
    async with (
        httpx.AsyncClient(
            base_url=cfg.service_url("registration"), headers=headers, limits=limits, timeout=60
        ) as registration,
        httpx.AsyncClient(
            base_url=cfg.service_url("notifications"), headers=headers, timeout=30
        ) as notifications,
    ):
        cluster_id, event_id, companies = await prepare(registration, n, concurrency)
        await wait_for_read_model(cfg.mongo_uri_of("notifications"), event_id, n, within=max(60.0, n / 5))
        cpu_before, wall_before = cpu_seconds(stack), time.perf_counter()
        run = await sign_up_and_wait(registration, cfg.maildir, event_id, companies, concurrency, patience)
        queue = await settle(notifications, n)
        cpu_after, run.wall = cpu_seconds(stack), time.perf_counter() - wall_before
        run.cpu = {name: cpu_after[name] - cpu_before[name] for name in cpu_before if name in cpu_after}
        run.errors += check(cfg.maildir, n, queue, LIVE, sent=n)
        drained = await backlog(
            stack, registration, notifications, cluster_id, companies, concurrency, patience
        )
        alone = await queued(stack, notifications, n, patience)
    return figures, run, drained, alone


def cpu_table(used: dict[str, float], wall: float, title: str) -> Table:
    cpu = Table("process", "CPU s", "of one core", title=f"{title} ({wall:.1f} s)")
    ours = {name: seconds for name, seconds in used.items() if name != MACHINE}
    for name, seconds in sorted(ours.items(), key=lambda item: -item[1]):
        cpu.add_row(name, f"{seconds:.1f}", f"{seconds / wall:.0%}")
    cpu.add_row("all of the above", f"{sum(ours.values()):.1f}", f"{sum(ours.values()) / wall:.0%}")
    if MACHINE in used:  # other sessions' work on a shared machine shows here
        cpu.add_row(MACHINE, f"{used[MACHINE]:.1f}", f"{used[MACHINE] / wall:.0%}")
    return cpu


def report(
    figures: dict[str, float], run: Run, drained: Backlog, alone: Queued, n: int, concurrency: int
) -> None:
    raw_1, raw_n = figures["raw_1"], figures["raw_n"]
    table = Table(
        "figure",
        "mails/s",
        f"÷ raw send, 1 sender ({raw_1:.0f}/s)",
        f"÷ raw send, {concurrency} senders ({raw_n:.0f}/s)",
    )

    def row(name: str, rate: float, ratios: bool = True) -> None:
        if ratios:
            table.add_row(name, f"{rate:.0f}", f"{rate / raw_1:.2f}", f"{rate / raw_n:.2f}")
        else:
            table.add_row(name, f"{rate:.0f}", "—", "—")

    row("raw aiosmtplib.send, 1 sender", raw_1)
    row(f"raw aiosmtplib.send, {concurrency} senders", raw_n)
    row("raw, 1 connection reused", figures["reused"])
    row("compose + render only (in process)", figures["render"])
    table.add_section()
    if len(run.arrivals) >= 2:
        first, last = run.arrivals[0], run.arrivals[-1]
        row(
            f"end to end: first sign-up → all {len(run.arrivals)} mails",
            len(run.arrivals) / (last - run.signups_started),
        )
        row("notifications' own: first → last mail", (len(run.arrivals) - 1) / (last - first))
        after = [t for t in run.arrivals if t > run.signups_done]
        if len(after) >= 2:
            row(
                f"queue drain after the last sign-up ({len(after)} mails)",
                len(after) / (last - run.signups_done),
            )
        signup_s = run.signups_done - run.signups_started
        row(f"sign-ups/s over HTTP, {concurrency} clients (context)", n / signup_s, ratios=False)
        table.add_section()
        if len(drained.arrivals) >= 2:
            row(
                f"backlog of {len(drained.arrivals)}: notifications' own, first → last mail",
                (len(drained.arrivals) - 1) / (drained.arrivals[-1] - drained.arrivals[0]),
            )
            row(
                "backlog: notifications started → last mail (context)",
                len(drained.arrivals) / (drained.arrivals[-1] - drained.started),
            )
        if len(alone.arrivals) >= 2:
            row(
                f"delivery alone, {len(alone.arrivals)} queued: first → last mail",
                (len(alone.arrivals) - 1) / (alone.arrivals[-1] - alone.arrivals[0]),
            )
        console.print(table)
        gaps = [b - a for a, b in zip(run.arrivals, run.arrivals[1:], strict=False)]
        console.print(
            f"sign-ups took {signup_s:.2f} s; first mail {first - run.signups_started:.2f} s after the first "
            f"sign-up, last {last - run.signups_started:.2f} s after it "
            f"({last - run.signups_done:.2f} s after the last sign-up answered).\n"
            f"gap between mails: median {statistics.median(gaps) * 1000:.1f} ms, "
            f"max {max(gaps) * 1000:.0f} ms; mail size: median {statistics.median(run.mail_bytes):.0f} bytes "
            f"(raw baseline mail {len(bytes(small_mail(0))):.0f} bytes)."
        )
        if len(drained.arrivals) >= 2:
            console.print(
                f"backlog: {n} sign-ups took {drained.signups_s:.2f} s with notifications stopped; "
                f"notifications answered /readyz {drained.ready - drained.started:.2f} s after it was "
                f"started, the first mail arrived {drained.arrivals[0] - drained.started:.2f} s after it "
                f"was started, the last {drained.arrivals[-1] - drained.started:.2f} s after."
            )
    else:
        console.print(table)
    if run.cpu:
        console.print(cpu_table(run.cpu, run.wall, "CPU, live: from the first sign-up to settled"))
    if drained.cpu:
        console.print(
            cpu_table(drained.cpu, drained.wall, "CPU, backlog: from notifications' start to settled")
        )
    if alone.cpu:
        console.print(
            cpu_table(alone.cpu, alone.wall, "CPU, delivery alone: from notifications' start to settled")
        )
    for phase, measured in (("backlog", drained), ("delivery alone", alone)):
        if measured.statements and measured.arrivals:
            console.print(statements_table(measured.statements, len(measured.arrivals), phase))


def statements_table(statements: dict[str, dict[str, tuple[int, float]]], mails: int, phase: str) -> Table:
    """The database's statements per mail sent in a phase (its `top` command: commits and
    reads of no collection are not counted)."""
    table = Table(
        "collection",
        "statements / mail",
        "ms in the db / mail",
        "of which",
        title=f"Database statements per mail, {phase} ({mails} mails)",
    )
    ordered = sorted(statements.items(), key=lambda item: -item[1]["total"][1])
    for namespace, kinds in ordered:
        count, seconds = kinds["total"]
        if count / mails < 0.01:
            continue
        table.add_row(
            namespace.split(".", 1)[-1],
            f"{count / mails:.2f}",
            f"{seconds * 1000 / mails:.2f}",
            ", ".join(
                f"{kinds[k][0] / mails:.2f} {k} ({kinds[k][1] * 1000 / mails:.2f} ms)"
                for k in STATEMENT_KINDS
                if kinds.get(k, (0, 0))[0]
            ),
        )
    return table


def main() -> None:
    stop_on_sigterm()
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--mails",
        type=int,
        default=500,
        help="mails per baseline and sign-ups through the platform (default 500)",
    )
    parser.add_argument(
        "--concurrency",
        type=int,
        default=8,
        help="concurrent raw SMTP senders, and HTTP clients registering and signing up (default 8)",
    )
    parser.add_argument(
        "--timeout", type=float, default=600, help="seconds to wait for all the mails to arrive (default 600)"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="keep the stack's data and logs in DIR, which must be empty (default: a temporary one)",
    )
    args = parser.parse_args()
    if args.home and args.home.exists() and any(args.home.iterdir()):
        parser.error(f"--home {args.home} is not empty")
    if args.mails < 2 or args.concurrency < 1:
        parser.error("--mails must be at least 2 and --concurrency at least 1")
    with contextlib.ExitStack() as cleanup:
        home = args.home or Path(cleanup.enter_context(tempfile.TemporaryDirectory()))
        stack = Stack(StackConfig.on_free_ports(home.resolve()))
        console.print("Starting broker, database, SMTP sink, registration and notifications on free ports…")
        try:
            stack.start_infrastructure()
            stack.start_services(["registration", "notifications"])
            figures, run, drained, alone = asyncio.run(
                measure(stack, args.mails, args.concurrency, args.timeout)
            )
        finally:
            stack.stop()
    console.print(
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}"
    )
    report(figures, run, drained, alone, args.mails, args.concurrency)
    retried = run.retried + drained.retried
    if retried:
        kinds = sorted({r.split(": ", 1)[1] for r in retried})
        console.print(
            f"[yellow]! {len(retried)} sign-up requests failed on the server ({', '.join(kinds)}) "
            f"and were sent again; see registration's log for why."
        )
    errors = run.errors + drained.errors + alone.errors
    if errors:
        for error in errors:
            console.print(f"[red]✗ {error}")
        raise SystemExit(1)
    console.print(f"[green]✓ 3 × {args.mails} mails, each arrived once, in its attendee's language.")


if __name__ == "__main__":
    main()
