"""`c2f-create-topics` against a broker of its own: every topic made with the partitions asked
for, a second run changes nothing, an unreachable broker is a readable error."""

import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from c2f_cli.processes import free_port
from c2f_cli.stack import start_broker
from c2f_shared import topics

CREATE_TOPICS = str(Path(sys.executable).with_name("c2f-create-topics"))


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CREATE_TOPICS, *args], capture_output=True, text=True, timeout=60, check=False)


@pytest.mark.asyncio
async def test_topics_are_created_once_with_their_partitions(tmp_path: Path) -> None:
    port = free_port()
    broker = start_broker("kafka-topics", "127.0.0.1", port, tmp_path)
    try:
        bootstrap = f"127.0.0.1:{port}"
        first = run(f"--bootstrap={bootstrap}", "--partitions=5")
        assert first.returncode == 0, first.stderr
        assert first.stdout.split() == [w for t in topics.ALL for w in ("created", t)]

        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await consumer.start()
        try:
            assert await consumer.topics() >= set(topics.ALL)  # also loads their metadata
            for topic in topics.ALL:
                assert consumer.partitions_for_topic(topic) == set(range(5)), topic
        finally:
            await consumer.stop()

        again = run(f"--bootstrap={bootstrap}", "--partitions=5")
        assert again.returncode == 0, again.stderr
        assert again.stdout.split() == [w for t in topics.ALL for w in ("exists", t)]
    finally:
        broker.stop()


def test_an_unreachable_broker_and_bad_arguments_are_explained() -> None:
    nowhere = run(f"--bootstrap=127.0.0.1:{free_port()}")
    assert nowhere.returncode == 1
    assert "cannot reach Kafka at 127.0.0.1:" in nowhere.stderr
    assert "Traceback" not in nowhere.stderr
    bad = run("--partitions=0")
    assert bad.returncode == 2 and "--partitions" in bad.stderr
    helped = run("--help")
    assert "partitions per topic" in helped.stdout
