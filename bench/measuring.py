"""What the benchmarks under bench/ share to measure: CPU seconds per process of a stack, the
database's statements per collection, nearest-rank percentiles, a line describing the
machine, the broker, databases and SMTP sink started for the time a benchmark
runs, and a lean HTTP/1.1 client to load a service with. Import it from a script in bench/ (the
script's folder is on the path)."""

import asyncio
import json
import math
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from pymongo import AsyncMongoClient

from c2f_cli.config import SERVICES, StackConfig
from c2f_cli.stack import Stack

MACHINE = "(the whole machine)"
T = TypeVar("T")


def on_infrastructure(prefix: str, run: Callable[[StackConfig], T]) -> T:
    """`run(config)` while a broker, the databases and an SMTP sink run on free ports in a
    temporary directory (as `c2f up` runs them); they stop when it returns or fails."""
    with tempfile.TemporaryDirectory(prefix=prefix) as home:
        stack = Stack(StackConfig.on_free_ports(Path(home)), say=lambda line: print(f"  {line}"))
        try:
            stack.start_infrastructure()
            return run(stack.config)
        finally:
            stack.stop()


def stop_on_sigterm() -> None:
    """Make SIGTERM (a `kill`, a timeout) stop the benchmark as Ctrl-C does, so that its
    `finally` stops the stack it started instead of leaving the services running."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the stop short
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def cpu_seconds(stack: Stack) -> dict[str, float]:
    """CPU time (user + system) each of the stack's processes, this one, and (under MACHINE)
    every process on the machine have used so far. Linux only (/proc); empty elsewhere."""
    tick = os.sysconf("SC_CLK_TCK")
    used = {"this benchmark": sum(os.times()[:2])}
    for child in stack.children:
        try:
            fields = Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return {}
        used[child.name] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    try:  # user nice system idle iowait irq softirq steal
        ticks = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    except (OSError, ValueError):
        return used
    used[MACHINE] = (sum(ticks) - ticks[3] - ticks[4]) / tick
    return used


def cpu_used(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Per process; one started in between counts from zero."""
    return {name: after[name] - before.get(name, 0.0) for name in after} if before and after else {}


def percentile(samples: list[float], q: float) -> float:
    """Nearest rank: with fewer than 100 samples, p99 is the largest. NaN without samples."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def machine() -> str:
    """CPUs, their model, RAM and Python, for the line above a benchmark's figures."""
    ram = cpu = "?"
    try:
        kib = re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text())
        ram = f"{int(kib.group(1)) / 2**20:.1f} GiB RAM" if kib else "?"
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), {ram}, Python {sys.version.split()[0]}"


# What the database's `top` command counts per collection (its `total` is their sum).
STATEMENT_KINDS = ("queries", "getmore", "insert", "update", "remove", "commands")


async def database_top(config: StackConfig) -> dict[str, dict[str, tuple[int, float]]]:
    """The stack's database servers' statements so far, per collection ("db.collection") and
    kind: (count, seconds spent), summed over the servers (one per service). From MongoDB's
    `top` command, which SecantusDB answers too."""
    used: dict[str, dict[str, tuple[int, float]]] = {}
    for uri in dict.fromkeys(config.mongo_uri_of(name) for name in SERVICES):
        client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(uri)
        try:
            totals = (await client.admin.command("top"))["totals"]
        finally:
            await client.close()
        for namespace, figures in totals.items():
            if not isinstance(figures, dict) or "total" not in figures:
                continue
            mine = used.setdefault(namespace, {})
            for kind in ("total", *STATEMENT_KINDS):
                if kind in figures:
                    count, seconds = mine.get(kind, (0, 0.0))
                    mine[kind] = (count + int(figures[kind]["count"]), seconds + figures[kind]["time"] / 1e6)
    return used


def top_used(
    before: dict[str, dict[str, tuple[int, float]]], after: dict[str, dict[str, tuple[int, float]]]
) -> dict[str, dict[str, tuple[int, float]]]:
    """Statements between two `database_top` readings, collections without any left out."""
    used = {}
    for namespace, kinds in after.items():
        earlier = before.get(namespace, {})
        delta = {
            kind: (count - earlier.get(kind, (0, 0.0))[0], seconds - earlier.get(kind, (0, 0.0))[1])
            for kind, (count, seconds) in kinds.items()
        }
        if delta.get("total", (0, 0.0))[0] > 0:
            used[namespace] = delta
    return used


class LeanHttp:
    """One keep-alive HTTP/1.1 connection that sends JSON requests and reads their answers, and
    little else: a load generator (as wrk or oha would be) whose own CPU time is small beside
    the server's. httpx, measured on this machine, spent 1.5 ms of CPU per request with one
    connection and 5.4 ms with 32 (more than registration itself), so on two cores a figure
    taken with it measured the client as much as the server. Answers must carry a
    Content-Length (FastAPI's JSON answers do)."""

    def __init__(self, base_url: str, headers: dict[str, str]) -> None:
        url = urlsplit(base_url)
        self._host, self._port = url.hostname or "127.0.0.1", url.port or 80
        self._head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": url.netloc, **headers}.items())
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> "LeanHttp":
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._writer is not None:
            self._writer.close()
            await self._writer.wait_closed()

    async def post(self, path: str, body: Any) -> tuple[int, Any]:
        """POST `body` as JSON to `path`; the answer's status and JSON."""
        assert self._reader is not None and self._writer is not None, "use it as `async with`"
        content = json.dumps(body).encode()
        self._writer.write(
            f"POST {path} HTTP/1.1\r\n{self._head}Content-Type: application/json\r\n"
            f"Content-Length: {len(content)}\r\n\r\n".encode()
            + content
        )
        status_line, *lines = (await self._reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next(
            (int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:")), None
        )
        if length is None:
            raise RuntimeError(f"{path}: an answer without Content-Length ({status_line})")
        answer = await self._reader.readexactly(length)
        return int(status_line.split(" ", 2)[1]), json.loads(answer) if answer else None
