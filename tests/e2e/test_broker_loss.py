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
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from c2f_cli.databases import Databases
from c2f_cli.stack import Stack, start_broker
from tests.e2e.scene import brokerage
from tests.infra import running_stack
from tests.support import as_operator, eventually, of_kind, read_mail

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
    database = Databases(stack.config)
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
