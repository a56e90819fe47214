"""`c2f-create-topics`: create the platform's Kafka topics with their partitions and settings.

Run once per Kafka cluster before the services start (Compose runs it as the `topics`
job, Kubernetes as a Job); running it again changes nothing and says so. Partitions
bound how many instances of one service share the work (see docs/operations.md).
"""

import argparse
import asyncio
import os
import sys

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, TopicAlreadyExistsError

from c2f_shared import topics
from c2f_shared.service.settings import EMBEDDED_KAFKA

DAY_MS = 24 * 3600 * 1000
# Matching and reporting rebuild their read models by replaying these topics, so they keep
# every event; dead letters and sent-mail receipts only need to outlive an investigation.
RETENTION_MS: dict[str, int] = {
    topics.NOTIFICATIONS_SENT: 30 * DAY_MS,
    topics.DEAD_LETTERS: 90 * DAY_MS,
}


def topic_configs(topic: str, replication_factor: int) -> dict[str, str]:
    """Kafka topic settings: retention, and writes acknowledged by a majority of replicas."""
    return {
        "retention.ms": str(RETENTION_MS.get(topic, -1)),
        "min.insync.replicas": str(max(1, min(2, replication_factor - 1))),
    }


async def create_topics(bootstrap: str, partitions: int, replication_factor: int) -> dict[str, str]:
    """Create every topic in `topics.ALL` that does not exist; returns topic → 'created' or 'exists'."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(t, partitions, replication_factor, topic_configs=topic_configs(t, replication_factor))
            for t in topics.ALL
            if t not in existing
        ]
        created = set()
        for topic in wanted:  # one at a time: a topic made meanwhile by another run is no failure
            try:
                await admin.create_topics([topic])
                created.add(topic.name)
            except TopicAlreadyExistsError:
                pass
    finally:
        await admin.close()
    return {t: "created" if t in created else "exists" for t in topics.ALL}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="c2f-create-topics",
        description="Create C2Future Match's Kafka topics. Idempotent: existing topics are left as they are.",
    )
    parser.add_argument(
        "--bootstrap",
        default=None,
        help="Kafka bootstrap servers (default: $C2F_KAFKA_BOOTSTRAP, else the embedded broker's address)",
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=topics.PARTITIONS,
        help="partitions per topic: the most instances of one service that can share work "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--replication-factor",
        type=int,
        default=1,
        help="copies of each partition; 3 on a cluster of 3 or more brokers (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    bootstrap = args.bootstrap or os.environ.get("C2F_KAFKA_BOOTSTRAP") or EMBEDDED_KAFKA
    if args.partitions < 1 or args.replication_factor < 1:
        parser.error("--partitions and --replication-factor must be at least 1")
    try:
        result = asyncio.run(create_topics(bootstrap, args.partitions, args.replication_factor))
    except KafkaConnectionError as error:
        sys.exit(f"c2f-create-topics: cannot reach Kafka at {bootstrap}: {error}")
    for topic, what in result.items():
        print(f"{what:<8} {topic}")


if __name__ == "__main__":
    main()
