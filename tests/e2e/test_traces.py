"""One sign-up is one trace: from registration's HTTP request, through the record each outbox
published, to every service's handling of it and notifications' SMTP send; found by the
request's correlation id, drawn by `c2f trace`, and free of the attendee's contact data."""

import asyncio
import uuid

import pytest
from typer.testing import CliRunner

from c2f_cli import traces
from c2f_cli.main import app
from tests.e2e.scene import Scene
from tests.support import eventually, of_kind, read_mail

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


def ancestry(span: traces.Span, spans: list[traces.Span]) -> list[traces.Span]:
    """`span` and its parents, up to the root of the trace."""
    by_id = {s.span_id: s for s in spans}
    chain = [span]
    while chain[-1].parent_id in by_id:
        chain.append(by_id[chain[-1].parent_id])
    return chain


async def test_one_sign_up_is_one_trace_from_http_to_the_smtp_send(scene: Scene) -> None:
    cluster = await scene.cluster("IT")
    company = await scene.company(cluster, "Tracciati")
    event = await scene.event(cluster)
    correlation = f"trace-{uuid.uuid4()}"
    email = f"{uuid.uuid4().hex[:8]}@example.org"
    response = await scene.registration.post(
        f"/events/{event}/participants",
        json={"company_id": company, "attendee": {"name": "Lia Trace", "email": email, "language": "it"}},
        headers={"X-Correlation-ID": correlation},
    )
    assert response.status_code == 201, response.text
    maildir = scene.platform.config.maildir
    await eventually(
        lambda: any(email in str(m["To"]) for m in of_kind(read_mail(maildir), "registration_confirmed"))
    )

    folder = scene.platform.config.traces_dir
    wanted = {
        ("registration", "SERVER"),
        ("matching", "ParticipantRegistered handle"),
        ("reporting", "ParticipantRegistered handle"),
        ("notifications", "ParticipantRegistered handle"),
        ("notifications", "smtp send"),
        ("reporting", "NotificationSent handle"),
    }

    spans: list[traces.Span] = []

    async def seen() -> bool:
        spans[:] = traces.find(folder, correlation) or []
        if wanted <= {(s.service, s.kind if s.kind == "SERVER" else s.name) for s in spans}:
            return True
        await asyncio.sleep(0.5)  # the files are large: read them twice a second
        return False

    await eventually(seen)

    assert len({s.trace_id for s in spans}) == 1
    [request] = [s for s in spans if s.kind == "SERVER"]
    assert request.service == "registration" and request.name == "POST /events/{event_id}/participants"
    # The mail was sent because of that request: its span descends from the request's, through
    # the records each outbox published (FastStream's publish spans) and notifications' handling.
    [send] = [s for s in spans if s.name == "smtp send"]
    chain = ancestry(send, spans)
    assert chain[-1] is request
    assert [s.service for s in chain] == ["notifications", "notifications", "registration", "registration"]
    assert [s.name for s in chain[:2]] == ["smtp send", "ParticipantRegistered handle"]
    assert chain[2].kind == "PRODUCER"  # the record registration's outbox published
    # Database commands are in the trace, under the spans that ran them.
    assert any(s.is_database and s.service == "matching" for s in spans)
    # Spans carry ids, never contact data or tokens.
    lines = "".join(line for p in folder.glob("*.jsonl") for line in p.open() if request.trace_id in line)
    assert email not in lines and response.json()["access_token"] not in lines

    drawn = CliRunner().invoke(app, ["trace", correlation, "--dir", str(folder)], env={"COLUMNS": "200"})
    assert drawn.exit_code == 0, drawn.output
    assert f"trace {request.trace_id}" in drawn.output
    for service, name in [
        ("registration", "POST /events/{event_id}/participants"),
        ("notifications", "smtp send"),
    ]:
        assert f"{service} {name}" in drawn.output
