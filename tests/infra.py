"""Servers for the tests: embedded on free ports, or Apache Kafka and MongoDB in containers.

`C2F_TEST_INFRA=embedded` (default) starts Tansu, SecantusDB and the SMTP sink
with the same code `c2f up` uses; `C2F_TEST_INFRA=containers` starts the real
images with testcontainers (needs a Docker engine) and only the SMTP sink here.
"""

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from c2f_cli.config import StackConfig
from c2f_cli.stack import Stack


@contextmanager
def _containers() -> Iterator[dict[str, str]]:
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.waiting_utils import wait_for_logs

    with ExitStack() as stack:
        kafka = stack.enter_context(KafkaContainer("confluentinc/cp-kafka:7.6.0").with_kraft())
        # Transactions need a replica set: a one-node set without auth.
        mongo = stack.enter_context(
            DockerContainer("mongo:7.0").with_command("--replSet rs0 --bind_ip_all").with_exposed_ports(27017)
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
def running_stack(home: Path, *, services: bool) -> Iterator[Stack]:
    """Broker, database and SMTP sink (and the four services if `services`), stopped after."""
    with ExitStack() as exits:
        external = {}
        if os.environ.get("C2F_TEST_INFRA", "embedded") == "containers":
            external = exits.enter_context(_containers())
        stack = Stack(StackConfig.on_free_ports(home, **external))
        exits.callback(stack.stop)
        stack.start_infrastructure()
        if services:
            stack.start_services()
        yield stack
