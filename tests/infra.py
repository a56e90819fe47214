"""Servers for the tests: embedded on free ports, or Apache Kafka and MongoDB in containers.

`C2F_TEST_INFRA=embedded` (default) starts Tansu, SecantusDB and the SMTP sink
with the same code `c2f up` uses; `C2F_TEST_INFRA=containers` starts the real
images with testcontainers (needs a Docker engine) and only the SMTP sink here.
"""

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from c2f_cli.config import StackConfig
from c2f_cli.stack import Stack

INFRA_CHOICES = ("embedded", "containers")
ROOT = Path(__file__).resolve().parents[1]


def docker_engine_missing() -> str | None:
    """Why no Docker engine can be used here, or None if one answers."""
    try:
        import docker

        docker.from_env(timeout=5).ping()
    except Exception as error:  # noqa: BLE001 - any failure means: no engine to use
        return f"{type(error).__name__}: {error}"
    return None


def compose_image(service: str) -> str:
    """The image docker-compose.yml pins for `service`, so tests and production run the same."""
    import yaml

    image: str = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"][service]["image"]
    return image


@contextmanager
def _containers() -> Iterator[dict[str, str]]:
    missing = docker_engine_missing()
    if missing is not None:
        pytest.skip(
            f"C2F_TEST_INFRA=containers needs a Docker engine, and none answers here ({missing}). "
            "Without it, run the default: the embedded servers."
        )
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    with ExitStack() as stack:
        # testcontainers' Kafka module knows Confluent's image (it wires the advertised port
        # that Docker maps); it is Apache Kafka in KRaft mode, as in docker-compose.yml.
        kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.9.0").with_kraft())
        # Transactions need a replica set: a one-node set without auth.
        mongo = stack.enter_context(
            DockerContainer(compose_image("mongo"))
            .with_command("--replSet rs0 --bind_ip_all")
            .with_exposed_ports(27017)
        )
        wait_for_logs(mongo, "Waiting for connections")
        host, port = mongo.get_container_host_ip(), mongo.get_exposed_port(27017)
        mongo.exec(
            "mongosh --quiet --eval \"rs.initiate({_id:'rs0',members:[{_id:0,host:'localhost:27017'}]})\""
        )
        yield {
            "external_kafka": kafka.get_bootstrap_server(),
            "external_mongo": f"mongodb://{host}:{port}/?directConnection=true",
        }


@contextmanager
def running_stack(home: Path, *, services: bool, traces: str = "off") -> Iterator[Stack]:
    """Broker, database and SMTP sink (and the four services if `services`, sending their spans
    where `traces` says), stopped after."""
    with ExitStack() as exits:
        external = {}
        choice = os.environ.get("C2F_TEST_INFRA", "embedded")
        if choice not in INFRA_CHOICES:
            raise pytest.UsageError(f"C2F_TEST_INFRA={choice!r}: choose one of {', '.join(INFRA_CHOICES)}")
        if choice == "containers":
            external = exits.enter_context(_containers())
        stack = Stack(StackConfig.on_free_ports(home, traces=traces, **external))
        exits.callback(stack.stop)
        stack.start_infrastructure()
        if services:
            stack.start_services()
        yield stack
