"""Crashes under fire: kill -9 each service in turn, and the databases once, under a steady
stream of sign-ups, then meeting requests and a schedule; count what came through.

Runs the whole platform on free ports (embedded broker, SecantusDB, SMTP sink). Companies sign
up for a B2B event at a steady pace through registration's HTTP API, retrying what failed as a
real client would (connection refused, 503). Meanwhile registration, matching, notifications,
reporting and the database servers (all four at once) are each killed with SIGKILL, left down a
moment, and started again.
Then every seeker asks its best suggestion for a meeting (matching is killed once more in the
middle) and the schedule is published. Afterwards:

- every sign-up exists once in registration, matching and reporting;
- every suggestion and meeting request matching holds, reporting counts, exactly;
- every participant got one registration confirmation, and every invitee one meeting request
  (a second copy with the same Message-ID is the documented window of a notifications kill
  between SMTP's acceptance and recording it: reported, at most one per kill);
- no service set anything aside as a dead letter.

    .venv/bin/python bench/crashes.py [--people 60] [--down 2]

Prints the figures: events through, kills, time down, time from restart to ready, time until
everything settled. Exits 1 if anything was lost or doubled. Figures: docs/reliability.md.
"""

import argparse
import asyncio
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.databases import Databases
from c2f_cli.processes import wait_until_ready
from c2f_cli.stack import Stack
from tests.support import of_kind, read_mail, settled

console = Console()
TARGETS = ("registration", "matching", "notifications", "reporting", "mongo")


@dataclass
class Figures:
    kills: list[tuple[str, float, float]] = field(default_factory=list)  # what, down s, restart→ready s
    retries: Counter[str] = field(default_factory=Counter)
    refused: Counter[str] = field(default_factory=Counter)  # meeting requests refused by a rule, by reason
    signed_up: dict[str, str] = field(default_factory=dict)  # participant id → e-mail
    requests: dict[str, str] = field(default_factory=dict)  # meeting id → invitee id


async def retrying(figures: Figures, what: str, call: Any) -> httpx.Response:
    """Call until the platform answers something other than 'not now'."""
    while True:
        try:
            response: httpx.Response = await call()
        except httpx.TransportError:
            figures.retries[what] += 1
            await asyncio.sleep(0.25)
            continue
        if response.status_code in (502, 503, 504):
            figures.retries[what] += 1
            await asyncio.sleep(float(response.headers.get("Retry-After", "0.5")))
            continue
        return response


def kill(stack: Stack, name: str) -> None:
    """SIGKILL `name`; "mongo": every service's database server at once."""
    for child in [
        c for c in stack.children if c.name == name or (name == "mongo" and c.name.startswith("mongo-"))
    ]:
        os.kill(child.pid, signal.SIGKILL)
        child.process.wait(10)
        stack.children.remove(child)


async def restart(stack: Stack, name: str) -> float:
    """Start `name` again; returns the seconds until it (or, for the database, every service) is ready."""
    started = time.monotonic()
    if name == "mongo":
        stack.children[1:1] = await asyncio.to_thread(stack.start_databases)
        for service in SERVICES:
            child = next(c for c in stack.children if c.name == service)
            await asyncio.to_thread(wait_until_ready, child, stack.config.service_url(service))
    else:
        await asyncio.to_thread(stack.start_services, [name])
    return time.monotonic() - started


async def chaos(stack: Stack, figures: Figures, targets: tuple[str, ...], every: float, down: float) -> None:
    for target in targets:
        await asyncio.sleep(every)
        killed_at = time.monotonic()
        kill(stack, target)
        console.print(f"  killed {target} (SIGKILL)")
        await asyncio.sleep(down)
        ready_in = await restart(stack, target)
        figures.kills.append((target, time.monotonic() - killed_at - ready_in, ready_in))
        console.print(f"  {target} back, ready in {ready_in:.1f} s")


async def run(people: int, down: float, pace: float) -> int:
    home = Path(tempfile.mkdtemp(prefix="c2f-crashes-"))
    stack = Stack(StackConfig.on_free_ports(home))
    figures = Figures()
    tasks: list[asyncio.Task[None]] = []
    run_id = uuid.uuid4().hex[:6]
    token = stack.config.operator_token()
    operator = {"Authorization": f"Bearer {token}"}
    try:
        await asyncio.to_thread(stack.start)
        reg = httpx.AsyncClient(
            base_url=stack.config.service_url("registration"), headers=operator, timeout=30
        )
        matching = httpx.AsyncClient(
            base_url=stack.config.service_url("matching"), headers=operator, timeout=60
        )
        cluster = (
            await reg.post(
                "/clusters",
                json={
                    "name": f"Crash {run_id}",
                    "short_name": f"K{run_id}",
                    "country": "RS",
                    "sectors": ["ict"],
                },
            )
        ).json()["id"]
        companies = []
        for n in range(people):
            item = {
                "title": "Air sensors",
                "description": "Air quality sensors for streets",
                "language": "en",
            }
            item["category"] = "air_quality_monitoring"
            body = {
                "cluster_id": cluster,
                "legal_name": f"Firma {n} {run_id}",
                "country": "RS",
                "sectors": ["ict"],
            }
            body |= {"offers": [item]} if n % 2 else {"needs": [{**item, "kind": "supplier"}]}
            companies.append((await reg.post("/companies", json=body)).json()["id"])
        day = (datetime.now(UTC) + timedelta(days=10)).date().isoformat()
        event = (
            await reg.post(
                "/events",
                json={
                    "name": f"Novi Sad {run_id}",
                    "kind": "b2b",
                    "host_cluster_id": cluster,
                    "city": "Novi Sad",
                    "country": "RS",
                    "venue_timezone": "Europe/Belgrade",
                    "starts_at": f"{day}T08:00:00+01:00",
                    "ends_at": f"{day}T14:00:00+01:00",
                    "meetings": {"days": [day], "day_start": "09:00", "day_end": "13:00", "tables": 8},
                },
            )
        ).json()["id"]

        async def sign_up(n: int) -> None:
            email = f"p{n}.{run_id}@example.org"
            body = {
                "company_id": companies[n],
                "attendee": {"name": f"P{n}", "email": email, "language": "sr"},
            }
            response = await retrying(
                figures, "sign-up", lambda: reg.post(f"/events/{event}/participants", json=body)
            )
            if response.status_code == 409:  # the first try went through before the answer was lost
                match = re.search(r"participant ([0-9a-f-]{36})", response.json()["detail"])
                while match is None:  # "a moment ago": ask again in a moment
                    await asyncio.sleep(0.5)
                    response = await retrying(
                        figures, "sign-up", lambda: reg.post(f"/events/{event}/participants", json=body)
                    )
                    match = re.search(r"participant ([0-9a-f-]{36})", response.text)
                figures.signed_up[match.group(1)] = email
                return
            assert response.status_code == 201, response.text
            figures.signed_up[response.json()["id"]] = email

        console.print(f"[bold]Sign-ups[/bold]: {people}, one every {pace} s; killing each process in turn")
        started = time.monotonic()
        every = people * pace / (len(TARGETS) + 1)
        chaos_task = asyncio.create_task(chaos(stack, figures, TARGETS, every, down))
        tasks.append(chaos_task)
        for n in range(people):
            await sign_up(n)
            await asyncio.sleep(pace)
        await chaos_task

        console.print(
            "[bold]Meeting requests[/bold]: each seeker asks its best suggestion; matching killed once"
        )
        ask_chaos = asyncio.create_task(chaos(stack, figures, ("matching",), 1.0, down))
        tasks.append(ask_chaos)
        seekers = [pid for pid, email in figures.signed_up.items() if int(email[1:].split(".")[0]) % 2 == 0]
        for turn, pid in enumerate(seekers):
            found = await retrying(
                figures, "suggestions", lambda pid=pid: matching.get(f"/participants/{pid}/suggestions")
            )
            suggestions = found.json() if found.status_code == 200 else []
            if not suggestions:
                continue
            pick = suggestions[turn % len(suggestions)]  # spread the requests over the providers
            other = next(p["participant_id"] for p in pick["parties"] if p["participant_id"] != pid)
            asked = await retrying(
                figures,
                "request",
                lambda pid=pid, other=other: matching.post(
                    f"/participants/{pid}/meetings", json={"with": [other]}
                ),
            )
            if asked.status_code == 409:  # asked before the answer was lost: find that request
                mine = await retrying(
                    figures, "request", lambda pid=pid: matching.get(f"/participants/{pid}/meetings")
                )
                meeting = next((m for m in mine.json() if other in m["parties"]), None)
            elif asked.status_code in (200, 201):
                meeting = asked.json()
            else:
                raise SystemExit(f"meeting request refused: {asked.status_code} {asked.text}")
            if meeting is None:  # refused by a rule (a cap reached, no slot left): the answer says which
                figures.refused[asked.json()["detail"]] += 1
                continue
            figures.requests[meeting["id"]] = other
            answered = await retrying(
                figures,
                "accept",
                lambda m=meeting["id"], other=other: matching.post(
                    f"/meetings/{m}/accept", json={"participant_id": other}
                ),
            )
            if answered.status_code not in (200, 409):  # 409: accepted before the answer was lost
                raise SystemExit(f"accepting refused: {answered.status_code} {answered.text}")
        await ask_chaos
        published = await retrying(
            figures, "schedule", lambda: matching.post(f"/events/{event}/schedule", json={"seconds": 2})
        )
        stream_s = time.monotonic() - started

        console.print("[bold]Settling[/bold]: every outbox empty, every group caught up, every mail sent")
        settle_started = time.monotonic()
        deadline = settle_started + 300
        while not await settled(stack.config):
            if time.monotonic() > deadline:
                raise SystemExit("the platform did not settle within 5 minutes")
            await asyncio.sleep(1)
        settle_s = time.monotonic() - settle_started
        return await check(stack, figures, event, people, published.json(), stream_s, settle_s)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(stack.stop)


async def check(
    stack: Stack,
    figures: Figures,
    event: str,
    people: int,
    schedule: dict[str, Any],
    stream_s: float,
    settle_s: float,
) -> int:
    problems: list[str] = []
    database = Databases(stack.config)
    try:
        letters = {s: await database[f"c2f_{s}"]["dead_letters"].count_documents({}) for s in SERVICES}
        in_matching = await database["c2f_matching"]["participants"].count_documents({"event_id": event})
        suggestions = await database["c2f_matching"]["suggestions"].count_documents({"event_id": event})
        meetings = await database["c2f_matching"]["meetings"].count_documents({"event_id": event})
        sent = await database["c2f_notifications"]["outgoing"].count_documents({"status": "sent"})
    finally:
        await database.close()
    async with httpx.AsyncClient(base_url=stack.config.service_url("reporting"), timeout=30) as client:
        report = (await client.get("/reports/partnership")).json()
    expected = {
        "participants": people,
        "companies": people,
        "match_suggestions": suggestions,
        "meeting_requests": meetings,
        "notifications_sent": sent,
        "dead_letters": 0,
    }
    for key, value in expected.items():
        if report[key] != value:
            problems.append(f"reporting {key} = {report[key]}, expected {value}")
    if len(figures.signed_up) != people or in_matching != people:
        problems.append(
            f"sign-ups: {len(figures.signed_up)} made, {in_matching} in matching, {people} expected"
        )
    if any(letters.values()):
        problems.append(f"dead letters: {letters}")
    if meetings != len(figures.requests):
        problems.append(f"meetings in matching {meetings}, requests made {len(figures.requests)}")
    if schedule["scheduled"] == 0:
        problems.append(f"the schedule placed no meeting: {schedule}")

    mails = read_mail(stack.config.maildir)
    duplicates = 0
    invitees = {figures.signed_up[i] for i in figures.requests.values()}
    for kind, messages, recipients in (
        ("registration_confirmed", people, set(figures.signed_up.values())),
        ("meeting_request", len(figures.requests), invitees),
    ):
        got = of_kind(mails, kind)
        ids = Counter(str(m["Message-ID"]) for m in got)
        duplicates += sum(c - 1 for c in ids.values())
        to = {a.addr_spec for m in got for a in m["To"].addresses}
        if len(ids) != messages or to != recipients:
            problems.append(
                f"{kind}: {len(ids)} mails to {len(to)} people; expected {messages} to {len(recipients)}"
            )
        for mid, n in ids.items():
            if n > 1:
                console.print(f"  resent after a kill (same Message-ID): {kind} {mid} ×{n}")
    kills_of_notifications = sum(1 for k in figures.kills if k[0] == "notifications")
    if duplicates > kills_of_notifications:
        problems.append(f"{duplicates} duplicate mails for {kills_of_notifications} notifications kills")

    table = Table(title="Crashes under fire")
    table.add_column("figure")
    table.add_column("value", justify="right")
    table.add_row("sign-ups (each once everywhere)", str(people))
    table.add_row("suggestions = reporting's count", str(suggestions))
    table.add_row("meeting requests = reporting's count", str(meetings))
    if figures.refused:
        reasons = "; ".join(f"{n}× {why}" for why, n in figures.refused.items())
        table.add_row("meeting requests refused by a rule", reasons)
    table.add_row("schedule: accepted meetings placed", f"{schedule['scheduled']} of {schedule['accepted']}")
    table.add_row("mails sent (reporting counts the same)", str(sent))
    table.add_row("duplicate mails (same Message-ID)", str(duplicates))
    table.add_row(
        "client retries (refused or 503, by step)", ", ".join(f"{k} {v}" for k, v in figures.retries.items())
    )
    table.add_row("stream duration", f"{stream_s:.0f} s")
    table.add_row("settled after the stream", f"{settle_s:.1f} s")
    for what, down_s, ready_s in figures.kills:
        table.add_row(f"kill -9 {what}", f"down {down_s:.1f} s, ready {ready_s:.1f} s after restart")
    console.print(table)
    if problems:
        console.print("[red]LOST OR DOUBLED:[/red]\n" + "\n".join(problems))
        return 1
    console.print("[green]Nothing lost, nothing doubled.[/green]")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog="Figures: docs/reliability.md"
    )
    parser.add_argument(
        "--people", type=int, default=60, help="sign-ups in the stream (default: %(default)s)"
    )
    parser.add_argument(
        "--down", type=float, default=2.0, help="seconds each process stays down (default: 2)"
    )
    parser.add_argument("--pace", type=float, default=0.3, help="seconds between sign-ups (default: 0.3)")
    args = parser.parse_args()
    sys.exit(asyncio.run(run(args.people, args.down, args.pace)))


if __name__ == "__main__":
    main()
