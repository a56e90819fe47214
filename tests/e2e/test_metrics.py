"""/metrics on the running platform: Prometheus text that a scraper parses, counting what
the services really did (a cluster registered over HTTP, its event consumed by each)."""

import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from c2f_cli.config import SERVICES
from c2f_cli.stack import Stack
from c2f_shared import topics
from tests.support import as_operator, eventually

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="session")]

Samples = list[tuple[str, dict[str, str], float]]


async def scrape(stack: Stack, service: str) -> Samples:
    async with httpx.AsyncClient(base_url=stack.config.service_url(service), timeout=10) as client:
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return [
        (s.name, s.labels, s.value) for f in text_string_to_metric_families(response.text) for s in f.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    return sum(v for n, ls, v in samples if n == name and labels.items() <= ls.items())


async def test_each_service_counts_what_it_handled_and_reports_its_lag(platform: Stack) -> None:
    before = {s: await scrape(platform, s) for s in SERVICES}
    consumers = ("matching", "notifications", "reporting")
    run = uuid.uuid4().hex[:6]
    async with as_operator(platform) as registration:
        response = await registration.post(
            "/clusters",
            json={
                "name": f"Metrics Cluster {run}",
                "short_name": f"M{run}",
                "country": "GR",
                "sectors": ["ict"],
            },
        )
        assert response.status_code == 201, response.text

    def processed(samples: Samples) -> float:
        return total(samples, "c2f_messages_total", topic=topics.CLUSTERS, outcome="processed")

    async def all_consumed() -> bool:
        now = {s: await scrape(platform, s) for s in consumers}
        return all(processed(now[s]) > processed(before[s]) for s in consumers)

    await eventually(all_consumed, within=30)

    after = {s: await scrape(platform, s) for s in SERVICES}
    created = total(
        after["registration"], "c2f_http_requests_total", method="POST", route="/clusters", status="201"
    )
    assert (
        created
        == total(before["registration"], "c2f_http_requests_total", route="/clusters", status="201") + 1
    )
    assert (
        total(after["registration"], "c2f_http_request_seconds_count", method="POST", route="/clusters") >= 1
    )
    # FastStream's Prometheus middleware: the record registration's relay published, and each
    # consumer's receipt of it.
    published = "faststream_published_messages_total"
    assert total(after["registration"], published, destination=topics.CLUSTERS, status="success") > total(
        before["registration"], published, destination=topics.CLUSTERS, status="success"
    )
    for service in consumers:
        samples = after[service]
        assert total(samples, "c2f_handler_seconds_count", topic=topics.CLUSTERS) >= 1
        assert total(samples, "faststream_received_messages_total", app_name=f"c2f-{service}") >= 1
        lags = [(ls, v) for n, ls, v in samples if n == "c2f_consumer_lag"]
        # Each instance reports the partitions it holds, labelled with its consumer group.
        assert {ls["group"] for ls, _ in lags} == {f"c2f-{service}"}, service
        assert {ls["partition"] for ls, _ in lags if ls["topic"] == topics.CLUSTERS} == {
            str(p) for p in range(topics.PARTITIONS)
        }
        assert all(v >= 0 for _, v in lags)
        assert total(samples, "c2f_outbox_pending") >= 0

    # Once consumed and committed, the cluster topic's lag is back to nothing.
    async def caught_up() -> bool:
        now = {s: await scrape(platform, s) for s in consumers}
        return all(total(now[s], "c2f_consumer_lag", topic=topics.CLUSTERS) == 0 for s in consumers)

    await eventually(caught_up, within=30)


async def test_metrics_is_in_every_services_openapi(platform: Stack) -> None:
    async with httpx.AsyncClient(timeout=10) as client:
        for service in SERVICES:
            spec = (await client.get(f"{platform.config.service_url(service)}/openapi.json")).json()
            assert (
                "text/plain; version=1.0.0; charset=utf-8"
                in spec["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
            )
