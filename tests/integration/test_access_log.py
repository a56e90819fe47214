"""A real service process (c2f-serve, as the images run it, on the shared broker and
database) logs in JSON and writes one access line per request, with the status and the
correlation id, and without the token a link carries."""

import asyncio
import json
import signal
import sys
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import pytest

from c2f_cli.processes import Child, free_port, spawn, wait_until_ready
from c2f_cli.stack import Stack
from c2f_shared import links
from tests.support import eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]


@pytest.fixture(scope="module")
def notifications(infra: Stack) -> Iterator[tuple[Child, str]]:
    run = uuid.uuid4().hex[:8]
    port = free_port()
    env = {
        **infra.service_env("notifications"),
        "C2F_NOTIFICATIONS_MONGO_DB": f"notifications_log_{run}",
        "C2F_NOTIFICATIONS_CONSUMER_GROUP": f"notifications-log-{run}",
        "C2F_LOG_LEVEL": "INFO",
    }
    env.pop("C2F_LOG_FORMAT", None)  # the default: JSON, as the output is a file
    child = spawn(
        f"notifications-log-{run}",
        [
            sys.executable,
            "-m",
            "c2f_shared.service.serve",
            "notifications",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        infra.logs,
        env=env,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until_ready(child, url)
        yield child, url
    finally:
        child.stop()


def log_lines(child: Child) -> list[dict[str, Any]]:
    return [json.loads(line) for line in child.log.read_text().splitlines() if line.strip()]


def access_lines(child: Child, correlation_id: str) -> list[dict[str, Any]]:
    return [
        line
        for line in log_lines(child)
        if line.get("logger") == "c2f.access" and line.get("correlation_id") == correlation_id
    ]


async def test_a_request_writes_one_json_access_line_with_its_status_and_correlation_id(
    infra: Stack, notifications: tuple[Child, str]
) -> None:
    child, url = notifications
    token = links.sign(infra.config.link_secret(), "unsubscribe", "suggestions", "p-log-1")
    opened, missing = f"open-{uuid.uuid4()}", f"missing-{uuid.uuid4()}"
    async with httpx.AsyncClient(base_url=url) as client:
        page = await client.get(f"/unsubscribe/{token}?lang=fr", headers={"X-Correlation-ID": opened})
        assert page.status_code == 200 and page.headers["X-Correlation-ID"] == opened
        gone = await client.get(f"/unsubscribes/{token}", headers={"X-Correlation-ID": missing})
        assert gone.status_code == 404

    async def both_logged() -> bool:
        return bool(access_lines(child, opened)) and bool(access_lines(child, missing))

    await eventually(both_logged, within=10)
    [line] = access_lines(child, opened)
    assert (line["method"], line["path"], line["status"]) == ("GET", "/unsubscribe/<redacted>", 200)
    assert line["query"] == "lang" and line["level"] == "info" and line["duration_ms"] >= 0
    assert line["timestamp"] and line["message"] == "GET /unsubscribe/<redacted> 200"
    [line] = access_lines(child, missing)
    assert (line["path"], line["status"]) == ("/unsubscribes/<redacted>", 404)
    # Every line is JSON (json.loads above), uvicorn's too, and the token is in none of them.
    lines = log_lines(child)
    assert any(line["logger"].startswith("uvicorn") for line in lines)
    assert token not in child.log.read_text()


async def test_an_idle_connection_outlives_the_clients_keep_alive(notifications: tuple[Child, str]) -> None:
    """A client may keep an idle connection 5 s (httpx's default) and then send on it: the
    server must not close it first, or that request fails with a dropped connection (uvicorn
    closes after 5 s by default; c2f-serve keeps it 75 s)."""
    _, url = notifications
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    request = f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()

    async def answer() -> bytes:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)
        lines = head.split(b"\r\n")
        length = next(
            int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length")
        )
        await reader.readexactly(length)
        return lines[0]

    try:
        assert await answer() == b"HTTP/1.1 200 OK"
        await asyncio.sleep(6)
        assert await answer() == b"HTTP/1.1 200 OK"  # on the same connection
    finally:
        writer.close()


async def test_answers_carry_the_date_and_sigterm_stops_the_process_cleanly(
    notifications: tuple[Child, str],
) -> None:
    """c2f-serve's server looks at its clock once a second (bench/idle.py), yet its answers
    carry the current Date header, and SIGTERM still stops it cleanly, not with the SIGKILL
    that `Child.stop` sends after its timeout."""
    child, url = notifications
    async with httpx.AsyncClient(base_url=url) as client:
        first = parsedate_to_datetime((await client.get("/healthz")).headers["date"])
        await asyncio.sleep(2.2)
        second = parsedate_to_datetime((await client.get("/healthz")).headers["date"])
    assert abs((second - datetime.now(UTC)).total_seconds()) < 2
    assert (second - first).total_seconds() >= 1  # renewed while it ran
    child.stop(timeout=10)
    # uvicorn raises the signal again once it has shut down cleanly: SIGTERM, not SIGKILL.
    assert child.process.returncode == -signal.SIGTERM, child.tail()
    assert "Finished server process" in child.log.read_text()
