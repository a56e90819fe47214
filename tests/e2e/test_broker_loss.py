"""Broker loss: the embedded broker keeps topics in memory. It is killed (SIGKILL) mid-stream,
sign-ups go on while it is away, and it is started again, empty.

What the platform does: registration takes sign-ups during the outage (they wait in its
outbox); each service reconnects by itself; each outbox sees that the broker no longer holds
what it published (end offsets fell back) and publishes again everything it still keeps (a
week); consumers recognise what they had processed by its event id. So every sign-up before,
during and after the outage reaches matching, notifications and reporting, once: reporting's
counts are exact and every participant got one confirmation.
"""

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pymongo import AsyncMongoClient

from c2f_cli.config import StackConfig
from c2f_cli.stack import Stack, start_broker
from tests.e2e.scene import brokerage
from tests.infra import running_stack
from tests.support import as_operator, eventually, of_kind, read_mail, settled

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session"), pytest.mark.timeout(600)]

BEFORE, DURING, AFTER = 8, 6, 6
PEOPLE = BEFORE + DURING + AFTER


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    with running_stack(tmp_path, services=True) as stack:
        yield stack


async def created(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> str:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


async def report(stack: Stack) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=stack.config.service_url("reporting"), timeout=10) as client:
        answer: dict[str, Any] = (await client.get("/reports/partnership")).json()
    return answer


async def test_the_platform_recovers_what_an_empty_broker_lost(stack: Stack) -> None:
    run = uuid.uuid4().hex[:6]
    async with as_operator(stack) as registration:
        scene = await brokerage(
            registration,
            run,
            PEOPLE,
            name="Loss",
            country="GR",
            city="Thessaloniki",
            timezone="Europe/Athens",
        )
        companies, event = scene.companies, scene.event

        async def sign_up(n: int) -> None:
            await created(
                registration,
                f"/events/{event}/participants",
                {
                    "company_id": companies[n],
                    "attendee": {"name": f"P{n}", "email": f"p{n}.{run}@example.org", "language": "el"},
                },
            )

        for n in range(BEFORE):
            await sign_up(n)

        async def reported(participants: int) -> bool:
            return bool((await report(stack))["participants"] == participants)

        await eventually(lambda: reported(BEFORE), within=30)

        # The broker dies; sign-ups go on (registration keeps them in its outbox).
        broker = next(c for c in stack.children if c.name == "kafka")
        os.kill(broker.pid, signal.SIGKILL)
        broker.process.wait(5)
        for n in range(BEFORE, BEFORE + DURING):
            await sign_up(n)
        await asyncio.sleep(2)

        # It comes back on the same address, empty.
        config = stack.config
        restarted = start_broker("kafka", config.host, config.kafka_port, stack.logs)
        stack.children[stack.children.index(broker)] = restarted
        back_at = time.monotonic()
        for n in range(BEFORE + DURING, PEOPLE):
            await sign_up(n)

    async def complete() -> bool:
        numbers = await report(stack)
        return bool(numbers["participants"] == PEOPLE and numbers["companies"] == PEOPLE)

    await eventually(complete, within=120)
    recovered_in = time.monotonic() - back_at
    numbers = await report(stack)
    assert (numbers["clusters"], numbers["events"], numbers["dead_letters"]) == (1, 1, 0)

    # Matching knows every participant; every participant got one confirmation, once.
    database: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.config.mongo_uri)
    try:

        async def matched() -> bool:
            return bool(
                await database["c2f_matching"]["participants"].count_documents({"event_id": event}) == PEOPLE
            )

        await eventually(matched, within=60)
    finally:
        await database.close()

    def confirmed() -> list[str]:
        mails = of_kind(read_mail(stack.config.maildir), "registration_confirmed")
        return [a.addr_spec for m in mails for a in m["To"].addresses]

    await eventually(lambda: len(set(confirmed())) == PEOPLE, within=60)
    await asyncio.sleep(2)  # a second copy, if any were coming, would be on its way by now
    assert sorted(confirmed()) == sorted(f"p{n}.{run}@example.org" for n in range(PEOPLE))

    # Registration's outbox noticed the loss and published what it keeps again.
    async def noticed() -> bool:
        async with httpx.AsyncClient(timeout=10) as client:
            ready = (await client.get(f"{stack.config.service_url('registration')}/readyz")).json()
        return bool(ready["ready"] and ready["checks"]["broker_losses_recovered"] >= 1)

    await eventually(noticed, within=60)
    print(
        f"{PEOPLE} sign-ups ({DURING} in the outage) complete {recovered_in:.1f} s after the broker came back"
    )


def cli_env(config: StackConfig) -> dict[str, str]:
    """What `c2f` needs to find this stack, as if it were the one `make up` runs."""
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("C2F_")},
        "C2F_HOME": str(config.home),
        "C2F_KAFKA_PORT": str(config.kafka_port),
        "C2F_MONGO_PORT": str(config.mongo_port),
        "C2F_SMTP_PORT": str(config.smtp_port),
        **{f"C2F_{name.upper()}_PORT": str(port) for name, port in config.service_ports.items()},
    }


async def inbox_size(config: StackConfig, service: str) -> int:
    database: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(config.mongo_uri)
    try:
        return await database[f"c2f_{service}"]["processed_events"].count_documents({})
    finally:
        await database.close()


async def test_a_restart_of_the_embedded_stack_mid_stream_loses_nothing(stack: Stack) -> None:
    """Ctrl-C and `make up` again while sign-ups stream in: the database keeps everything, the
    broker nothing. Each service, starting, finds the broker holding less than it had published
    and publishes everything its outbox keeps again; consumers start from the beginning of the
    new topics and skip what they had processed. Then `c2f rebuild` after another restart
    replays every event again."""
    if stack.config.external_kafka is not None:
        pytest.skip("Kafka keeps its topics across a restart: nothing to recover")
    run = uuid.uuid4().hex[:6]
    people, restart_after = 60, 10
    async with as_operator(stack) as registration:
        scene = await brokerage(
            registration,
            run,
            people,
            name="Restart",
            country="RS",
            city="Novi Sad",
            timezone="Europe/Belgrade",
        )
        companies, event = scene.companies, scene.event
        answered: list[int] = []

        async def stream() -> None:
            """Sign-ups one after another, retried as a client would while registration is away."""
            for n in range(people):
                body = {
                    "company_id": companies[n],
                    "attendee": {"name": f"R{n}", "email": f"r{n}.{run}@example.org", "language": "sr"},
                }
                while True:
                    try:
                        response = await registration.post(f"/events/{event}/participants", json=body)
                    except httpx.TransportError:
                        await asyncio.sleep(0.2)  # refused while it restarts: a client tries again
                        continue
                    if response.status_code == 503:
                        await asyncio.sleep(0.2)
                        continue
                    # 409: an earlier try went through before its answer was lost.
                    assert response.status_code in (201, 409), response.text
                    break
                answered.append(n)

        streaming = asyncio.create_task(stream())
        await eventually(lambda: len(answered) >= restart_after, within=60)
        stopped_at = len(answered)  # the stop begins mid-stream (registration may answer a few more)
        await asyncio.to_thread(stack.stop)  # Ctrl-C: services first, then the servers
        await asyncio.to_thread(stack.start)  # make up: the same ports, home and data
        async with asyncio.timeout(120):
            await streaming
    assert stopped_at < people, "the stream ended before the stop began: make it longer"

    async def complete() -> bool:
        numbers = await report(stack)
        return bool(numbers["participants"] == people and numbers["companies"] == people)

    await eventually(complete, within=120)
    database: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(stack.config.mongo_uri)
    try:

        async def matched() -> bool:
            participants = database["c2f_matching"]["participants"]
            return bool(await participants.count_documents({"event_id": event}) == people)

        await eventually(matched, within=60)
    finally:
        await database.close()

    def confirmations() -> dict[str, Counter[str]]:
        """Per attendee of this run: how often each confirmation (by Message-ID) arrived."""
        found: dict[str, Counter[str]] = {}
        for mail in of_kind(read_mail(stack.config.maildir), "registration_confirmed"):
            for to in (a.addr_spec for a in mail["To"].addresses if run in a.addr_spec):
                found.setdefault(to, Counter())[str(mail["Message-ID"])] += 1
        return found

    def one_confirmation_each() -> None:
        """One message each, sent once: a stop lets notifications' senders finish and record the
        mails in hand, so a start sends none of them again."""
        found = confirmations()
        assert sorted(found) == sorted(f"r{n}.{run}@example.org" for n in range(people))
        assert all(len(copies) == 1 for copies in found.values()), found  # one message each
        assert all(list(copies.values()) == [1] for copies in found.values()), found  # sent once

    await eventually(lambda: len(confirmations()) == people, within=60)
    await eventually(lambda: settled(stack.config), within=120)
    one_confirmation_each()
    numbers = await report(stack)
    assert (numbers["clusters"], numbers["events"], numbers["dead_letters"]) == (1, 1, 0)

    # Once more, and a rebuild at once: it waits for the services to publish again what their
    # outboxes keep, so it replays at least every event reporting had processed.
    processed = await inbox_size(stack.config, "reporting")
    await asyncio.to_thread(stack.stop)
    await asyncio.to_thread(stack.start)
    rebuilt = await asyncio.to_thread(
        subprocess.run,
        [str(Path(sys.executable).with_name("c2f")), "rebuild", "reporting"],
        env=cli_env(stack.config),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    replayed = re.search(r"Rebuilt reporting: (\d+) events replayed", " ".join(rebuilt.stdout.split()))
    assert replayed is not None, rebuilt.stdout
    assert int(replayed.group(1)) >= processed > people
    assert await report(stack) == numbers
    await eventually(lambda: settled(stack.config), within=120)
    one_confirmation_each()
    print(
        f"{people} sign-ups, {stopped_at} answered when the stop began; after a second restart "
        f"the rebuild replayed {replayed.group(1)} events (reporting had processed {processed})"
    )
