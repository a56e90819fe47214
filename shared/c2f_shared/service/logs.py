"""Logs that carry the ids needed to follow one request or event through every service.

Each line ends with key=value pairs from the current context, e.g.
`correlation_id=… event_id=… event_type=…`, set by the HTTP middleware and the
consumer loop.
"""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_context: ContextVar[dict[str, str]] = ContextVar("c2f_log_context", default={})  # noqa: B039


class _WithContext(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.context = " ".join(f"{k}={v}" for k, v in _context.get().items())
        return True


def configure_logging(level: str) -> None:
    handler = logging.StreamHandler()
    handler.addFilter(_WithContext())
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s %(context)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # FastStream logs every message received and processed; our consumer loop logs one line per event.
    logging.getLogger("c2f.broker").setLevel(logging.WARNING)


@contextmanager
def log_context(**values: str) -> Iterator[None]:
    """Add `values` to every log line written inside this block (in this task)."""
    token = _context.set({**_context.get(), **values})
    try:
        yield
    finally:
        _context.reset(token)
