"""Reading the spans the services wrote with C2F_TRACES=file (one JSON span per line, one file
per service), and drawing one trace as a tree: which service did what, in what order, how long."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.tree import Tree

DATABASE_SPAN_KEYS = ("db.system", "db.system.name")
COLLECTION = "db.mongodb.collection"


@dataclass
class Span:
    trace_id: str
    span_id: str
    parent_id: str | None
    name: str
    service: str
    kind: str
    start: datetime
    end: datetime
    attributes: dict[str, Any]
    status: str
    children: list[Span] = field(default_factory=list)

    @property
    def ms(self) -> float:
        return (self.end - self.start).total_seconds() * 1000

    @property
    def is_database(self) -> bool:
        return any(key in self.attributes for key in DATABASE_SPAN_KEYS)

    @classmethod
    def from_json(cls, line: str) -> Span:
        raw = json.loads(line)
        return cls(
            trace_id=raw["context"]["trace_id"].removeprefix("0x"),
            span_id=raw["context"]["span_id"].removeprefix("0x"),
            parent_id=(raw.get("parent_id") or "").removeprefix("0x") or None,
            name=raw["name"],
            service=raw.get("resource", {})
            .get("attributes", {})
            .get("service.name", "?")
            .removeprefix("c2f-"),
            kind=str(raw.get("kind", "")).removeprefix("SpanKind."),
            start=datetime.fromisoformat(raw["start_time"]),
            end=datetime.fromisoformat(raw["end_time"]),
            attributes=raw.get("attributes") or {},
            status=(raw.get("status") or {}).get("status_code", "UNSET"),
        )


def _service(raw: dict[str, Any]) -> str:
    name: str = raw.get("resource", {}).get("attributes", {}).get("service.name", "?")
    return name.removeprefix("c2f-")


def _correlation(span: Span) -> str | None:
    return span.attributes.get("c2f.correlation_id")


def load(folder: Path, containing: Iterable[str] = ()) -> dict[str, list[Span]]:
    """The spans in `folder`'s *.jsonl files, by trace id; only lines that contain one of
    `containing`, when given (a line cut short by a process killed while writing is skipped)."""
    needles = tuple(containing)
    traces: dict[str, list[Span]] = defaultdict(list)
    for path in sorted(folder.glob("*.jsonl")):
        with path.open(encoding="utf-8") as lines:
            for line in lines:
                if needles and not any(needle in line for needle in needles):
                    continue
                try:
                    span = Span.from_json(line)
                except (ValueError, KeyError):
                    continue
                traces[span.trace_id].append(span)
    return dict(traces)


def find(folder: Path, wanted: str) -> list[Span] | None:
    """The spans of the trace whose id starts with `wanted`, or of the first trace (by time) with
    a span for correlation id `wanted` (the X-Correlation-ID of a response, a log line's
    correlation_id). Reads only the lines that may belong to it: files grow large."""
    named = {t: spans for t, spans in load(folder, [wanted, wanted.lower()]).items()}
    candidates = [spans for t, spans in named.items() if t.startswith(wanted.lower())]
    if not candidates:
        candidates = [spans for spans in named.values() if any(_correlation(s) == wanted for s in spans)]
    if not candidates:
        return None
    trace_id = min(candidates, key=lambda spans: min(s.start for s in spans))[0].trace_id
    return load(folder, [trace_id])[trace_id]


def roots(spans: list[Span]) -> list[Span]:
    """The trace as trees: each span under its parent, in the order they started. A span whose
    parent is missing (not written yet, or not traced) is a root of its own."""
    by_id = {s.span_id: s for s in spans}
    for span in spans:
        span.children = []
    top: list[Span] = []
    for span in sorted(spans, key=lambda s: s.start):
        parent = by_id.get(span.parent_id or "")
        (parent.children if parent is not None else top).append(span)
    return top


def tree(spans: list[Span], *, database: bool = False) -> Tree:
    """One trace drawn as a tree. Database commands are counted on their parent's line unless
    `database`."""
    top = roots(spans)
    began = min(s.start for s in spans)
    services = sorted({s.service for s in spans})
    drawn = Tree(f"[bold]trace {spans[0].trace_id}[/bold]: {len(spans)} spans in {', '.join(services)}")

    def add(branch: Tree, span: Span) -> None:
        shown = [c for c in span.children if database or not c.is_database]
        hidden = len(span.children) - len(shown)
        offset = (span.start - began).total_seconds() * 1000
        failed = " [red]error[/red]" if span.status == "ERROR" else ""
        db = f" [dim]({hidden} database commands)[/dim]" if hidden else ""
        timing = f"[dim]+{offset:.0f} ms, {span.ms:.1f} ms[/dim]"
        what = span.name
        if span.is_database and COLLECTION in span.attributes:
            what += f" {span.attributes[COLLECTION]}"
        node = branch.add(f"[cyan]{span.service}[/cyan] {what} {timing}{failed}{db}")
        for child in shown:
            add(node, child)

    for span in top:
        if database or not span.is_database:
            add(drawn, span)
    return drawn


def summary(spans: list[Span]) -> dict[str, Any]:
    """One line of the list of traces: when, what started it, which services, how long."""
    began = min(s.start for s in spans)
    ended = max(s.end for s in spans)
    first = min(roots(spans), key=lambda s: s.start)
    correlation = next(
        (s.attributes["c2f.correlation_id"] for s in spans if "c2f.correlation_id" in s.attributes), ""
    )
    return {
        "trace_id": spans[0].trace_id,
        "started": began,
        "root": f"{first.service} {first.name}",
        "services": sorted({s.service for s in spans}),
        "spans": len(spans),
        "ms": (ended - began).total_seconds() * 1000,
        "correlation_id": correlation,
    }
