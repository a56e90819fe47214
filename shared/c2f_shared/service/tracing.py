"""Traces: one sign-up is one trace, from the HTTP request to the SMTP send.

OpenTelemetry's FastAPI instrumentation opens a span per request, its PyMongo instrumentation
one per database command, and FastStream's Kafka telemetry middleware one per record published.
What crosses a service boundary carries the trace context (W3C `traceparent`):

- an event emitted in a unit of work stores the context it was emitted in (`carrier()`) in its
  outbox row, and the relay publishes it under that context, so the record's headers continue the
  request's (or the handled event's) trace, however late the relay sends it;
- a consumer handles each record in a span whose parent is the context in its headers
  (`handling`), so the events and mails a handler causes belong to the same trace;
- notifications stores the context in each queued mail and sends it in a span of that trace.

`C2F_TRACES` chooses where spans go: `off` (the default: no provider, nothing recorded), `console`
(standard output), `file` (one JSON span per line, `C2F_TRACES_FILE`; `c2f trace` reads them), or
`otlp` (OTLP over HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT`, e.g. a collector or Jaeger).
"""

from __future__ import annotations

import atexit
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from opentelemetry import context, propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.sampling import Decision, Sampler, SamplingResult
from opentelemetry.trace import Link, Span, SpanKind, TraceState
from opentelemetry.util.types import Attributes

__all__ = [
    "Carrier",
    "SpanKind",
    "carrier",
    "configure_tracing",
    "continued",
    "current_span_is",
    "enabled",
    "flush",
    "from_headers",
    "ids",
    "instrument_app",
    "span",
]

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

TraceMode = Literal["off", "console", "file", "otlp"]
# The W3C trace context of where something was caused (`traceparent`, maybe `tracestate`).
Carrier = dict[str, str]
TRACE_HEADERS = ("traceparent", "tracestate")
# Probes and scrapes every few seconds are not worth a trace.
UNTRACED_URLS = "healthz,readyz,metrics"

tracer = trace.get_tracer("c2f")
_provider: TracerProvider | None = None


def configure_tracing(service: str, mode: TraceMode, file: str = "") -> TracerProvider | None:
    """Send this process's spans where `mode` says (once per process; `off` does nothing).
    `file`: for `file`, a path in which `{service}` is replaced by the service's name."""
    global _provider
    if mode == "off" or _provider is not None:
        return _provider
    from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
    from opentelemetry.sdk.trace.sampling import ParentBased

    exporter: SpanExporter
    if mode == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        exporter = OTLPSpanExporter()  # OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_HEADERS
    elif mode == "file":
        path = Path(file.format(service=service))
        path.parent.mkdir(parents=True, exist_ok=True)
        out = path.open("a", encoding="utf-8")
        exporter = ConsoleSpanExporter(out=out, formatter=_json_line)
    else:
        exporter = ConsoleSpanExporter()
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"c2f-{service}"}),
        sampler=ParentBased(root=_WorkNotChores()),
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    PymongoInstrumentor().instrument(tracer_provider=provider)  # command names only, no values
    atexit.register(provider.shutdown)
    _provider = provider
    return provider


def _json_line(span: ReadableSpan) -> str:
    """One span as one line of JSON, in the shape of the SDK's `to_json` (which fails on the
    bytes FastStream puts in attributes, such as a record's key)."""
    found, parent = span.context, span.parent
    assert found is not None  # a span the SDK exports has one

    def when(ns: int | None) -> str | None:
        return None if ns is None else datetime.fromtimestamp(ns / 1e9, UTC).isoformat()

    return (
        json.dumps(
            {
                "name": span.name,
                "context": {"trace_id": f"0x{found.trace_id:032x}", "span_id": f"0x{found.span_id:016x}"},
                "kind": str(span.kind),
                "parent_id": f"0x{parent.span_id:016x}" if parent is not None else None,
                "start_time": when(span.start_time),
                "end_time": when(span.end_time),
                "status": {
                    "status_code": span.status.status_code.name,
                    "description": span.status.description,
                },
                "attributes": dict(span.attributes or {}),
                "events": [{"name": e.name, "attributes": dict(e.attributes or {})} for e in span.events],
                "resource": {"attributes": dict(span.resource.attributes)},
            },
            default=lambda value: value.decode("latin-1") if isinstance(value, bytes) else str(value),
        )
        + "\n"
    )


class _WorkNotChores(Sampler):
    """Starts a trace for a request, a message or a send, not for a database command run outside
    them (the background loops' polls would each make a one-span trace); inside a trace, the
    parent's choice holds (`ParentBased`)."""

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        if kind == SpanKind.CLIENT:
            return SamplingResult(Decision.DROP)
        return SamplingResult(Decision.RECORD_AND_SAMPLE, attributes)

    def get_description(self) -> str:
        return "WorkNotChores"


def enabled() -> bool:
    return _provider is not None


def flush() -> None:
    """Export what is buffered (at shutdown, so the last spans are not lost)."""
    if _provider is not None:
        _provider.force_flush(timeout_millis=5000)


def instrument_app(
    app: FastAPI, loggable_path: Callable[[str], str], loggable_query: Callable[[bytes], str]
) -> None:
    """A server span per request (not for probes), with tokens left out of its path and query
    values left out, as the access log does."""
    if _provider is None:
        return
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor

    def without_secrets(span: Span, scope: dict[str, Any]) -> None:
        if not span.is_recording():
            return
        path = loggable_path(scope.get("path", ""))
        names = loggable_query(scope.get("query_string", b""))
        for key in ("http.target", "url.path"):
            span.set_attribute(key, path)
        for key in ("http.url", "url.full"):
            span.set_attribute(key, path + (f"?{names}" if names else ""))
        if names:
            span.set_attribute("url.query", names)

    FastAPIInstrumentor.instrument_app(
        app,
        tracer_provider=_provider,
        excluded_urls=UNTRACED_URLS,
        exclude_spans=["receive", "send"],
        server_request_hook=without_secrets,
    )


def carrier() -> Carrier:
    """The current trace context, to be stored with what continues it later (an outbox row, a
    queued mail); empty when nothing is traced."""
    found: Carrier = {}
    if _provider is not None:
        propagate.inject(found)
    return found


def from_headers(headers: Any) -> Carrier:
    """The trace context in a Kafka record's headers (a list of (name, bytes))."""
    if _provider is None:
        return {}
    return {name: value.decode("latin-1") for name, value in headers or () if name in TRACE_HEADERS}


@contextmanager
def continued(trace_context: Mapping[str, str] | None) -> Iterator[None]:
    """Make `trace_context` the current context (what a span opened inside continues)."""
    if not trace_context or _provider is None:
        yield
        return
    token = context.attach(propagate.extract(dict(trace_context)))
    try:
        yield
    finally:
        context.detach(token)


@contextmanager
def span(
    name: str,
    trace_context: Mapping[str, str] | None = None,
    *,
    kind: SpanKind = SpanKind.INTERNAL,
    attributes: Mapping[str, str | int] | None = None,
) -> Iterator[Span]:
    """A span named `name`, child of `trace_context` when given (else of the current span)."""
    if _provider is None:
        yield trace.INVALID_SPAN
        return
    parent = propagate.extract(dict(trace_context)) if trace_context else None
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes) as opened:
        yield opened


def current_span_is(**attributes: str) -> None:
    """Name what the current span is about (`c2f.correlation_id`, `c2f.event_id`, ...), so that a
    trace can be found by the ids people see in responses and logs."""
    current = trace.get_current_span()
    if current.is_recording():
        current.set_attributes({f"c2f.{name}": value for name, value in attributes.items()})


def ids() -> dict[str, str]:
    """The current trace and span ids, for log lines (empty outside a recorded span)."""
    if _provider is None:
        return {}
    found = trace.get_current_span().get_span_context()
    if not found.is_valid:
        return {}
    return {"trace_id": format(found.trace_id, "032x"), "span_id": format(found.span_id, "016x")}
