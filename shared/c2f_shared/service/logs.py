"""Logs that carry the ids needed to follow one request or event through every service.

Every line, from our code, the libraries or uvicorn, goes through structlog: one JSON object
per line (`timestamp`, `level`, `logger`, `message`, and the context: `correlation_id`,
`event_id`, `event_type`, … set by the HTTP middleware and the consumer loop, and `trace_id`
and `span_id` when traces are on), or, for a person at a terminal, `key=value` text.
`C2F_LOG_FORMAT` chooses (`auto`: text on a terminal, JSON otherwise).
"""

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, TextIO

import structlog
from structlog.typing import EventDict, Processor

from c2f_shared.service import tracing

LogFormat = Literal["auto", "json", "console"]


def _trace_ids(_: object, __: str, event: EventDict) -> EventDict:
    """The trace and span the line was written in, when traces are on (tracing.py)."""
    event.update(tracing.ids())
    return event


# Added to every line, whether it was written with logging or with structlog.
_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    _trace_ids,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def _without_colour_codes(_: object, __: str, event: EventDict) -> EventDict:
    event.pop("color_message", None)  # uvicorn's message again, with terminal colour codes
    return event


def _renderers(fmt: LogFormat, stream: TextIO) -> list[Processor]:
    if fmt == "auto":
        fmt = "console" if stream.isatty() else "json"
    if fmt == "console":
        # Plain tracebacks: the rich ones show local variables, which may hold secrets.
        console = structlog.dev.ConsoleRenderer(
            colors=stream.isatty(), exception_formatter=structlog.dev.plain_traceback
        )
        return [console]
    return [
        structlog.processors.format_exc_info,  # the traceback as text, no local variables
        structlog.processors.EventRenamer("message"),
        structlog.processors.JSONRenderer(default=str),
    ]


def configure_logging(level: str, fmt: LogFormat = "auto", stream: TextIO | None = None) -> None:
    """Send every log line of this process to `stream` (standard error), as `fmt` says."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder(), _without_colour_codes],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *_renderers(fmt, stream)],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    # uvicorn's own lines go through the same handler, at the same level (whatever a uvicorn
    # configured earlier in this process set: its log_level sets theirs); its access log is
    # replaced by ours (c2f_shared.service.http), which has the correlation id and leaves tokens out.
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
        logger.setLevel(logging.NOTSET)
        logger.disabled = name == "uvicorn.access"
    # httpx logs each request's whole URL, which may hold a token (webhooks, links).
    logging.getLogger("httpx").setLevel(logging.WARNING)
    # FastStream logs every message received and processed; our consumer loop logs one line per event.
    logging.getLogger("c2f.broker").setLevel(logging.WARNING)


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Add `values` to every log line written inside this block (in this task)."""
    with structlog.contextvars.bound_contextvars(**values):
        yield
