"""What a service reports about itself: /readyz's checks and the gauges refreshed at each
Prometheus scrape (consumer lag, outbox backlog, dead letters)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, Protocol

from faststream.kafka import KafkaBroker
from pymongo import AsyncMongoClient

from c2f_shared.service.consumer import Consumer
from c2f_shared.service.dead_letters import DeadLetters
from c2f_shared.service.metrics import Metrics
from c2f_shared.service.outbox import Outbox

log = logging.getLogger(__name__)


class Consuming(Protocol):
    """What the lag needs of a consumer: its aiokafka consumer, if started."""

    @property
    def kafka(self) -> Any: ...


async def readiness(
    service: str,
    client: AsyncMongoClient[dict[str, Any]] | None,
    broker: KafkaBroker,
    consumers: list[Consumer],
    outbox: Outbox | None,
) -> dict[str, Any]:
    """Each check and whether all passed."""
    checks: dict[str, Any] = {}
    try:
        if client is None:
            raise RuntimeError("not started")
        async with asyncio.timeout(2):
            await client.admin.command("ping")
        checks["database"] = "ok"
    except Exception as error:  # noqa: BLE001 - any failure means not ready
        checks["database"] = f"unreachable: {type(error).__name__}"
    try:
        ok = await broker.ping(timeout=2)
        checks["broker"] = "ok" if ok else "unreachable"
    except Exception as error:  # noqa: BLE001
        checks["broker"] = f"unreachable: {type(error).__name__}"
    checks["consumers"] = {
        c.name: (
            "assigned " + ",".join(sorted(f"{tp.topic}[{tp.partition}]" for tp in c.assignment.assigned))
            if c.assignment.joined
            else "joining"
        )
        for c in consumers
    }
    # Ready once the database answers and every consumer has joined its group (which needs the
    # broker, so a service is not ready before the broker is). A broker lost afterwards makes the
    # service degraded, not unready: HTTP writes keep being taken and wait in the outbox, which
    # is what an orchestrator should keep serving; operators see it in `degraded`.
    ready = checks["database"] == "ok" and all(c.assignment.joined for c in consumers)
    degraded = [] if checks["broker"] == "ok" else ["broker"]
    if outbox is not None:
        checks["outbox_pending"] = await outbox.pending() if checks["database"] == "ok" else None
        checks["broker_losses_recovered"] = outbox.losses
    return {"ready": ready, "degraded": degraded, "service": service, "checks": checks}


async def refresh_metrics(
    metrics: Metrics,
    group: str,
    consumers: Sequence[Consuming],
    outbox: Outbox | None,
    dead_letters: DeadLetters | None,
) -> None:
    """Bring the gauges up to date: consumer lag per assigned partition, the outbox backlog, the
    dead letters. Each part is skipped if it cannot answer in time. Only partitions assigned now
    are reported, so the sum over instances is the group's lag."""
    metrics.lag.clear()
    for consumer in consumers:
        kafka = consumer.kafka
        if kafka is None:
            continue
        for tp in kafka.assignment():
            end = kafka.highwater(tp)
            try:
                async with asyncio.timeout(2):
                    committed = await kafka.committed(tp)
            except Exception:  # noqa: BLE001 - the coordinator is away: not reported this time
                continue
            if end is not None:
                metrics.lag.labels(group, tp.topic, str(tp.partition)).set(max(0, end - (committed or 0)))
    if outbox is None or dead_letters is None:
        return
    try:
        async with asyncio.timeout(2):
            metrics.outbox_pending.set(await outbox.pending())
            metrics.dead_letters.set(await dead_letters.count())
    except Exception:  # noqa: BLE001 - the database is away; /readyz says so
        log.warning("metrics: the database did not answer; gauges left as they were")
