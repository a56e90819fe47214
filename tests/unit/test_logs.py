"""Logs: one JSON object per line with the correlation and event ids (or key=value text for a
person), and one access log line per request, without the tokens links carry."""

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import structlog
from fastapi import FastAPI, Request

from c2f_shared.service.http import CORRELATION_HEADER, RequestLog, loggable_path, loggable_query
from c2f_shared.service.logs import configure_logging, log_context

TOKEN = "eyJhIjoiYWNjZXB0IiwicyI6Im0xIn0.c2lnbmF0dXJlLW9mLXRoZS1saW5r"


@pytest.fixture(autouse=True)
def logging_restored() -> Iterator[None]:
    """configure_logging changes the process's logging: put it back after each test."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("uvicorn.access").disabled = False
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_a_line_is_json_with_the_correlation_and_event_ids() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    log = logging.getLogger("c2f.test")
    with log_context(correlation_id="corr-1"):
        with log_context(event_id="ev-9", event_type="CompanyRegistered"):
            log.info("handled %s in %d ms", "ev-9", 12)
        log.warning("after the event")
    log.info("outside")
    handled, after, outside = lines(out)
    assert handled["message"] == "handled ev-9 in 12 ms"
    assert handled["correlation_id"] == "corr-1" and handled["event_id"] == "ev-9"
    assert handled["event_type"] == "CompanyRegistered"
    assert handled["level"] == "info" and handled["logger"] == "c2f.test"
    assert handled["timestamp"].endswith("Z")
    assert after["correlation_id"] == "corr-1" and "event_id" not in after  # the inner block ended
    assert "correlation_id" not in outside


def test_below_the_level_nothing_is_written_and_structlog_loggers_write_the_same_lines() -> None:
    out = io.StringIO()
    configure_logging("WARNING", "json", out)
    logging.getLogger("c2f.test").info("not written")
    with log_context(correlation_id="corr-2"):
        structlog.stdlib.get_logger("c2f.other").warning("sent", attempts=3)
    [line] = lines(out)
    assert line["message"] == "sent" and line["attempts"] == 3 and line["correlation_id"] == "corr-2"
    assert line["logger"] == "c2f.other"


def test_an_exception_is_one_line_with_its_traceback_and_no_local_variables() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    secret = "the-link-secret"  # noqa: F841 - a local variable the traceback must not show
    try:
        raise ValueError("bad input")
    except ValueError:
        logging.getLogger("c2f.test").exception("it failed")
    [line] = lines(out)
    assert line["level"] == "error" and "ValueError: bad input" in line["exception"]
    assert "the-link-secret" not in out.getvalue()


def test_console_format_is_key_value_text_for_a_person() -> None:
    out = io.StringIO()
    configure_logging("INFO", "console", out)
    with log_context(correlation_id="corr-3", event_id="ev-1"):
        logging.getLogger("c2f.test").info("hello")
    text = out.getvalue()
    assert "hello" in text and "correlation_id=corr-3" in text and "event_id=ev-1" in text
    assert not text.startswith("{")


def test_auto_is_json_unless_the_stream_is_a_terminal() -> None:
    out = io.StringIO()  # not a terminal, as in a container or a log file
    configure_logging("INFO", "auto", out)
    logging.getLogger("c2f.test").info("hello")
    assert lines(out)[0]["message"] == "hello"


def test_uvicorns_lines_go_through_the_same_handler_and_its_access_log_is_off() -> None:
    # As a uvicorn started earlier in the process leaves it (an e2e test's, log_level="warning").
    logging.getLogger("uvicorn.error").setLevel(logging.WARNING)
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    logging.getLogger("uvicorn.error").info("Started server process [1]", extra={"color_message": "\x1b[36m"})
    logging.getLogger("uvicorn.access").info('127.0.0.1 - "GET /act/%s HTTP/1.1" 200', TOKEN)
    [line] = lines(out)
    assert line["logger"] == "uvicorn.error" and "color_message" not in line


def test_paths_and_queries_lose_their_tokens() -> None:
    assert loggable_path(f"/act/{TOKEN}", {"token": TOKEN}) == "/act/<redacted>"
    assert loggable_path("/unsubscribe/short.tok", {"token": "short.tok"}) == "/unsubscribe/<redacted>"
    # No route matched (a mistyped link): a long segment that is no id goes too.
    assert loggable_path(f"/acts/{TOKEN}") == "/acts/<redacted>"
    kept = "/events/0b8e1f64-1c1e-4b7e-9a43-5b1c1d2e3f40/participants/p-17"
    assert loggable_path(kept, {"event_id": "0b8e1f64-1c1e-4b7e-9a43-5b1c1d2e3f40"}) == kept
    assert loggable_query(b"token=abc.def&status=sent&limit=10") == "token&status&limit"


def app_with_request_log() -> FastAPI:
    app = FastAPI()

    @app.get("/act/{token}")
    async def act(token: str, request: Request) -> dict[str, str]:
        logging.getLogger("c2f.test").info("acting")
        return {"correlation_id": request.state.correlation_id}

    @app.get("/fails")
    async def fails() -> None:
        raise RuntimeError("broken")

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "alive"}

    app.add_middleware(RequestLog)
    return app


@pytest.mark.asyncio
async def test_each_request_has_one_access_line_with_its_correlation_id_and_no_token() -> None:
    out = io.StringIO()
    configure_logging("INFO", "json", out)
    transport = httpx.ASGITransport(app_with_request_log(), raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        answer = await client.get(f"/act/{TOKEN}?sig={TOKEN}&lang=fr", headers={CORRELATION_HEADER: "corr-4"})
        assert answer.json() == {"correlation_id": "corr-4"}
        assert answer.headers[CORRELATION_HEADER] == "corr-4"
        failed = await client.get("/fails", headers={CORRELATION_HEADER: "bad id with spaces"})
        assert failed.status_code == 500
        await client.get("/healthz")  # a probe: at DEBUG, so not at INFO
    acting, access, error, failure = lines(out)
    assert acting["message"] == "acting" and acting["correlation_id"] == "corr-4"
    assert access["logger"] == "c2f.access" and access["correlation_id"] == "corr-4"
    assert (access["method"], access["path"], access["status"]) == ("GET", "/act/<redacted>", 200)
    assert access["query"] == "sig&lang" and access["duration_ms"] >= 0
    assert TOKEN not in out.getvalue()
    # The failure: its traceback, then its access line with 500 and a correlation id of our own.
    assert error["level"] == "error" and "RuntimeError: broken" in error["exception"]
    assert failure["status"] == 500 and failure["path"] == "/fails"
    assert failure["correlation_id"] != "bad id with spaces" and len(failure["correlation_id"]) == 36
    assert error["correlation_id"] == failure["correlation_id"]
