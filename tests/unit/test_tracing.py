"""Traces keep secrets out and chores out: a request's span has no link token and no query
value, a database command outside any request starts no trace, and attributes FastStream
gives as bytes are written. Run in a process of its own: a process has one tracer provider."""

import json
import subprocess
import sys
from pathlib import Path

from c2f_shared.service import tracing

SCRIPT = """
import asyncio, sys
import httpx
from fastapi import FastAPI
from opentelemetry import trace
from c2f_shared.service import tracing
from c2f_shared.service.http import loggable_path, loggable_query

import logging
from c2f_shared.service.logs import configure_logging

tracing.configure_tracing("probe", "file", sys.argv[1])
configure_logging("INFO", "json", stream=sys.stderr)
app = FastAPI()

@app.get("/act/{token}")
async def act(token: str) -> dict[str, str]:
    return {"carrier": tracing.carrier()["traceparent"]}

tracing.instrument_app(app, loggable_path, loggable_query)

async def main() -> None:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://probe") as client:
        answer = await client.get("/act/" + "T" * 40 + "?code=s3cret&lang=en")
        print(answer.json()["carrier"])
    tracer = trace.get_tracer("probe")
    with tracer.start_as_current_span("a database command", kind=trace.SpanKind.CLIENT):
        pass  # outside any trace: not recorded
    with tracing.span("a send", {"traceparent": answer.json()["carrier"]}, attributes={"key": "k"}):
        trace.get_current_span().set_attribute("bytes", b"\\x00ab")  # type: ignore[arg-type]
        logging.getLogger("probe").info("inside the send")
    tracing.flush()

asyncio.run(main())
"""


def test_spans_leave_tokens_query_values_and_background_chores_out(tmp_path: Path) -> None:
    out = tmp_path / "{service}.jsonl"
    run = subprocess.run([sys.executable, "-c", SCRIPT, str(out)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    carrier = run.stdout.strip()
    text = (tmp_path / "probe.jsonl").read_text()
    spans = [json.loads(line) for line in text.splitlines()]
    assert "T" * 40 not in text and "s3cret" not in text
    [request] = [s for s in spans if s["kind"] == "SpanKind.SERVER"]
    assert request["name"] == "GET /act/{token}"
    assert request["attributes"]["http.target"] == "/act/<redacted>"
    assert request["attributes"]["url.query"] == "code&lang"
    assert request["resource"]["attributes"]["service.name"] == "c2f-probe"
    assert not any(s["name"] == "a database command" for s in spans)
    # The span continued from a stored carrier joins the request's trace, under its span.
    [send] = [s for s in spans if s["name"] == "a send"]
    assert send["context"]["trace_id"] == request["context"]["trace_id"] == "0x" + carrier.split("-")[1]
    assert send["parent_id"] == "0x" + carrier.split("-")[2]
    assert send["attributes"]["bytes"] == "\x00ab"
    # A log line written inside a span names its trace and span.
    [line] = [json.loads(x) for x in run.stderr.splitlines() if "inside the send" in x]
    assert "0x" + line["trace_id"] == send["context"]["trace_id"]
    assert "0x" + line["span_id"] == send["context"]["span_id"]


def test_with_traces_off_nothing_is_carried_or_recorded() -> None:
    assert not tracing.enabled()
    assert tracing.carrier() == {}
    assert tracing.from_headers([("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")]) == {}
    with tracing.span("anything", {"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) as opened:
        assert not opened.is_recording()
    assert tracing.ids() == {}
