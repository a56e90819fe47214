"""What /metrics reports, computed from small fakes: consumer lag per assigned partition, and
HTTP requests by route template. (The whole endpoint, on real services, is in tests/e2e.)"""

from dataclasses import dataclass

import httpx
import pytest
from aiokafka import TopicPartition
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from c2f_matching.config import Settings
from c2f_shared.service import health
from c2f_shared.service.metrics import HttpMetrics, Metrics

A = TopicPartition("c2f.registration.participants", 0)
B = TopicPartition("c2f.registration.participants", 1)


@dataclass
class FakeConsumer:
    """The part of aiokafka's consumer the lag needs: assignment, highwater, committed."""

    ends: dict[TopicPartition, int | None]
    commits: dict[TopicPartition, int | None]
    coordinator_away: bool = False

    def assignment(self) -> set[TopicPartition]:
        return set(self.ends)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends[tp]

    async def committed(self, tp: TopicPartition) -> int | None:
        if self.coordinator_away:
            raise ConnectionError("coordinator not available")
        return self.commits[tp]


@dataclass
class Consuming:
    """Our consumer, as the metrics see it: its aiokafka consumer (None before it starts)."""

    kafka: FakeConsumer | None = None


def samples(metrics: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    families = text_string_to_metric_families(metrics.exposition().decode())
    return {tuple(sorted(s.labels.items())): s.value for f in families for s in f.samples if s.name == name}


class Measured:
    """The metrics of a matching instance whose only consumer is `consumer`."""

    def __init__(self, consumer: FakeConsumer | None) -> None:
        self.metrics = Metrics()
        self._consumers = [Consuming(consumer)]

    async def refresh_metrics(self) -> None:
        await health.refresh_metrics(self.metrics, Settings().consumer_group, self._consumers, None, None)


def runtime_with(consumer: FakeConsumer | None) -> Measured:
    return Measured(consumer)


def lag_of(runtime: Measured) -> dict[str, float]:
    return {
        dict(labels)["partition"]: v for labels, v in samples(runtime.metrics, "c2f_consumer_lag").items()
    }


@pytest.mark.asyncio
async def test_lag_is_the_end_of_each_assigned_partition_minus_the_groups_commit() -> None:
    consumer = FakeConsumer(ends={A: 120, B: 7}, commits={A: 100, B: None})
    runtime = runtime_with(consumer)
    await runtime.refresh_metrics()
    assert lag_of(runtime) == {"0": 20, "1": 7}  # nothing committed yet: all 7 are behind
    [labels] = [dict(k) for k in samples(runtime.metrics, "c2f_consumer_lag") if dict(k)["partition"] == "0"]
    assert labels == {"group": "c2f-matching", "topic": A.topic, "partition": "0"}

    # After a rebalance took partition 1 away, this instance no longer reports it (the
    # instance that holds it does), so the sum over instances stays the group's lag.
    consumer.ends.pop(B)
    consumer.commits[A] = 120
    await runtime.refresh_metrics()
    assert lag_of(runtime) == {"0": 0}


@pytest.mark.asyncio
async def test_lag_is_left_out_while_the_coordinator_is_away_and_before_the_consumer_starts() -> None:
    runtime = runtime_with(FakeConsumer(ends={A: 5}, commits={A: 1}, coordinator_away=True))
    await runtime.refresh_metrics()
    assert lag_of(runtime) == {}
    not_started = runtime_with(None)
    await not_started.refresh_metrics()
    assert lag_of(not_started) == {}


@pytest.mark.asyncio
async def test_http_requests_are_counted_by_route_template_not_raw_path() -> None:
    metrics = Metrics()
    app = FastAPI()

    @app.get("/companies/{company_id}")
    async def company(company_id: str) -> dict[str, str]:
        if company_id == "boom":
            raise RuntimeError("a bug")
        return {"id": company_id}

    app.add_middleware(HttpMetrics, metrics=metrics)
    transport = httpx.ASGITransport(app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for n in range(3):
            assert (await client.get(f"/companies/{n}")).status_code == 200
        assert (await client.get("/nowhere")).status_code == 404
        assert (await client.get("/companies/boom")).status_code == 500
    counted = {tuple(v for _, v in k): n for k, n in samples(metrics, "c2f_http_requests_total").items()}
    assert counted == {
        ("GET", "/companies/{company_id}", "200"): 3,
        ("GET", "unmatched", "404"): 1,
        ("GET", "/companies/{company_id}", "500"): 1,
    }
    latency = samples(metrics, "c2f_http_request_seconds_count")
    assert latency[(("method", "GET"), ("route", "/companies/{company_id}"))] == 4
