"""Every service's HTTP API against its own OpenAPI document, with property-based tests
(schemathesis, on hypothesis). For each operation of `/openapi.json`, requests are generated
from the document, both ones it allows and ones it forbids, and sent twice over: without
credentials and with the operator's bearer token. No answer may be a server error, and every
answer must be one the document describes: a listed status code, with its content type, its
body schema and its headers. A 503 with Retry-After means "the database is busy, try again"
(c2f_shared.service.http): it is documented, counted and not a failure. Afterwards, what the
services accepted must have poisoned no consumer downstream (no new dead letters).

Identifiers drawn at random only ever meet a 404, so for an operation on a cluster, company,
event, participant, meeting, message or signed link, about half of the requests aim at a real
one, made first. The requests change the shared platform (clusters with odd names, rebuilds,
an erased company), so this module runs after the other tests (tests/e2e/conftest.py).
Generation is derandomised: every run sends the same requests. No stateful (link-following)
tests. The figures are in docs/reliability.md."""

import asyncio
import contextlib
import os
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import pytest_asyncio
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.errors import FailureGroup

from c2f_cli.stack import Stack
from c2f_shared import links
from tests.support import eventually, settled

pytestmark = [pytest.mark.e2e, pytest.mark.fills_platform, pytest.mark.asyncio(loop_scope="session")]

# Per operation, kind of input (allowed, forbidden) and caller (anonymous, operator). CI runs 10;
# the figures in docs/reliability.md come from C2F_SCHEMATHESIS_EXAMPLES=25.
MAX_EXAMPLES = int(os.environ.get("C2F_SCHEMATHESIS_EXAMPLES", "10"))
# Fewer for what costs seconds on a platform full of data: a rebuild replays every topic (and
# takes no input but headers), the PDF brochure is typeset each time.
FEWER_EXAMPLES = {"POST /admin/rebuild": 3, "GET /brochure.pdf": 10}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
BUSY_CHECKS = [check for check in CHECKS if check is not not_a_server_error]
# Registration first: the other services then serve (and consume) the odd data it accepted.
SERVICES = ("registration", "matching", "notifications", "reporting")
Known = dict[str, list[str]]  # path parameter -> real values


@dataclass
class Tally:
    """What one service's requests found."""

    operations: int = 0
    cases: Counter[str] = field(default_factory=Counter)  # per caller
    statuses: Counter[int] = field(default_factory=Counter)
    busy: int = 0  # 503 with Retry-After
    seconds: dict[str, float] = field(default_factory=dict)  # per operation
    failures: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)

    def slowest(self, n: int = 3) -> list[tuple[str, float]]:
        return sorted(self.seconds.items(), key=lambda item: -item[1])[:n]

    def fail(self, operation: str, caller: str, what: str, example: str) -> None:
        self.failures.setdefault((operation, caller, what), []).append(example)

    def report(self, service: str) -> str:
        lines = [
            f"{service}: {self.operations} operations, {sum(self.cases.values())} cases "
            f"({self.cases['anonymous']} without credentials, {self.cases['operator']} with the "
            f"operator's token), {self.busy} busy (503 + Retry-After), {len(self.failures)} failures",
            "  statuses: " + ", ".join(f"{code}×{n}" for code, n in sorted(self.statuses.items())),
            "  slowest: " + ", ".join(f"{op} {s:.0f} s" for op, s in self.slowest()),
        ]
        for (operation, caller, what), examples in self.failures.items():
            lines.append(f"  FAIL {operation} ({caller}): {what}, {len(examples)} case(s), e.g.")
            lines.append(f"    {examples[0]}")
        return "\n".join(lines)


async def _post(client: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def known(platform: Stack) -> dict[str, Known]:
    return await real_things(platform)


async def real_things(platform: Stack) -> dict[str, Known]:
    """Per service, real things to aim requests at: a cluster, two members signed up for a B2B
    event, a meeting request between them, the mail that confirmed a sign-up, and signed links
    as e-mails carry them. Registration, whose requests change and erase what they name, gets a
    member and an event of its own; the others then meet whatever odd data it accepted."""
    config = platform.config
    operator = {"Authorization": f"Bearer {config.operator_token()}"}
    run = uuid.uuid4().hex[:6]
    day = (datetime.now(UTC) + timedelta(days=30)).date().isoformat()

    def client(service: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=config.service_url(service), headers=operator, timeout=30)

    async with client("registration") as reg, client("matching") as mat, client("notifications") as notif:
        cluster = await _post(
            reg,
            "/clusters",
            {"name": f"Schema {run}", "short_name": f"S{run}", "country": "IT", "sectors": ["ict"]},
        )

        async def company(name: str, country: str) -> str:
            body = {"cluster_id": cluster["id"], "legal_name": f"{name} {run}", "country": country}
            return str((await _post(reg, "/companies", {**body, "sectors": ["ict"]}))["id"])

        async def event(name: str) -> str:
            body = {
                "name": f"{name} {run}",
                "kind": "b2b",
                "host_cluster_id": cluster["id"],
                "venue": "Fiera",
                "city": "Bologna",
                "country": "IT",
                "venue_timezone": "Europe/Rome",
                "starts_at": f"{day}T08:00:00+02:00",
                "ends_at": f"{day}T12:00:00+02:00",
                "meetings": {"days": [day], "day_start": "09:00", "day_end": "11:00", "slot_minutes": 30},
            }
            return str((await _post(reg, "/events", body))["id"])

        async def sign_up(event_id: str, company_id: str) -> str:
            attendee = {"name": "Ada", "email": f"{uuid.uuid4().hex[:8]}@example.org", "language": "it"}
            body = {"company_id": company_id, "attendee": attendee}
            return str((await _post(reg, f"/events/{event_id}/participants", body))["id"])

        brokerage, own_event = await event("Schema brokerage"), await event("Registration's own")
        people = [
            await sign_up(brokerage, await company(n, c)) for n, c in (("Prima", "IT"), ("Seconda", "ES"))
        ]
        own_company = await company("Terza", "GR")
        own_participant = await sign_up(own_event, own_company)

        async def known_to_matching() -> bool:
            answers = [await mat.get(f"/participants/{p}/meetings") for p in people]
            return all(answer.status_code == 200 for answer in answers)

        await eventually(known_to_matching)
        meeting = (await _post(mat, f"/participants/{people[0]}/meetings", {"with": [people[1]]}))["id"]

        async def mailed() -> bool:
            inbox = await notif.get(f"/participants/{people[0]}/inbox")
            return inbox.status_code == 200 and bool(inbox.json()["messages"])

        await eventually(mailed)
        message = (await notif.get(f"/participants/{people[0]}/inbox")).json()["messages"][0]["id"]
    secret = config.link_secret()
    return {
        "registration": {
            "cluster_id": [cluster["id"]],
            "key_id": [cluster["api_key"]["id"]],
            "company_id": [own_company],
            "event_id": [own_event],
            "participant_id": [own_participant],
        },
        "matching": {
            "event_id": [brokerage],
            "participant_id": [people[0]],
            "meeting_id": [meeting],
            "token": [
                links.sign(secret, "accept", meeting, people[1]),
                links.sign(secret, "outcome", meeting, people[0]),
            ],
        },
        # No cluster id here: a real cluster's webhook must never point at a generated URL
        # (notifications would send requests off this machine).
        "notifications": {
            "participant_id": [people[0]],
            "message_id": [message],
            "token": [
                links.sign(secret, "unsubscribe", "reminder", people[0]),
                links.sign(secret, "preferences", "", people[0]),
            ],
        },
        "reporting": {"event_id": [brokerage, own_event]},
    }


async def _dead_letters(platform: Stack) -> int:
    """Dead letters on the platform, once everything published has been consumed."""
    await eventually(lambda: settled(platform.config), within=90)
    async with httpx.AsyncClient(base_url=platform.config.service_url("reporting")) as reporting:
        count: int = (await reporting.get("/reports/partnership")).json()["dead_letters"]
    return count


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def dead_letters_before(platform: Stack) -> int:
    return await _dead_letters(platform)


def _cases(
    operation: APIOperation[Any, Any, Any, Any], mode: GenerationMode, known: Known
) -> st.SearchStrategy[Case[Any]]:
    """Generated cases; for an operation on real things, as many again aimed at them."""
    generated = operation.as_strategy(generation_mode=mode)
    names = [parameter.name for parameter in operation.path_parameters]
    if not names or any(name not in known for name in names):
        return generated
    aimed = [
        operation.as_strategy(
            generation_mode=mode, path_parameters={name: known[name][i % len(known[name])] for name in names}
        )
        for i in range(max(len(known[name]) for name in names))
    ]
    return st.one_of(generated, st.one_of(aimed))


def _send_all(
    tally: Tally,
    session: requests.Session,
    base: str,
    caller: str,
    headers: dict[str, str],
    cases: st.SearchStrategy[Case[Any]],
    examples: int,
) -> None:
    @settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # every failure is kept as found, none shrunk
        suppress_health_check=list(HealthCheck),
        verbosity=Verbosity.quiet,
    )
    @given(case=cases)
    def send(case: Case[Any]) -> None:
        tally.cases[caller] += 1
        label = case.operation.label
        try:
            response = case.call(base_url=base, session=session, headers=headers, timeout=60)
        except requests.RequestException as error:
            tally.fail(label, caller, f"no answer ({error!r})", case.as_curl_command(headers=headers))
            return
        tally.statuses[response.status_code] += 1
        busy = response.status_code == 503 and "retry-after" in response.headers
        tally.busy += busy
        try:
            case.validate_response(response, checks=BUSY_CHECKS if busy else CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                why = " ".join(failure.message.split())[:600]
                example = f"{response.status_code} {case.as_curl_command(headers=headers)}\n    {why}"
                tally.fail(label, caller, failure.title, example)

    with contextlib.suppress(Unsatisfiable):  # nothing to break: no parameters, no forbidden input
        send()


def _exercise(platform: Stack, service: str, known: Known) -> Tally:
    base = platform.config.service_url(service)
    schema = schemathesis.openapi.from_url(f"{base}/openapi.json", timeout=30)
    operations = [schema[path][method] for path in schema for method in schema[path]]
    operations.sort(key=lambda op: op.method.upper() == "DELETE")  # the real things stay till the end
    tally = Tally(operations=len(operations))
    callers = {
        "anonymous": {},
        "operator": {"Authorization": f"Bearer {platform.config.operator_token()}"},
    }
    with requests.Session() as session:
        for caller, headers in callers.items():
            for operation in operations:
                started = time.monotonic()
                for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                    cases = _cases(operation, mode, known)
                    examples = FEWER_EXAMPLES.get(operation.label, MAX_EXAMPLES)
                    _send_all(tally, session, base, caller, headers, cases, examples)
                spent = time.monotonic() - started
                tally.seconds[operation.label] = tally.seconds.get(operation.label, 0.0) + spent
    return tally


@pytest.mark.timeout(300)
@pytest.mark.parametrize("service", SERVICES)
async def test_every_answer_is_documented_and_none_is_a_server_error(
    platform: Stack, known: dict[str, Known], dead_letters_before: int, service: str
) -> None:
    started = time.monotonic()
    tally = await asyncio.to_thread(_exercise, platform, service, known[service])
    print(f"\n{tally.report(service)}\n  ({time.monotonic() - started:.0f} s)")
    assert not tally.failures, tally.report(service)


async def test_what_http_accepted_poisons_no_consumer(platform: Stack, dead_letters_before: int) -> None:
    """Whatever the services accepted from the generated requests, every consumer downstream
    could process: no new dead letters once everything published has been consumed."""
    assert await _dead_letters(platform) == dead_letters_before
