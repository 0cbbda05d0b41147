"""Kafka node planning and server.properties (pure functions, no JVM)."""

from __future__ import annotations

from pathlib import Path

import pytest

from upbitpipe.config import KafkaSettings
from upbitpipe.errors import ConfigError
from upbitpipe.infra.kafka import plan_nodes, server_properties, topic_specs
from upbitpipe.infra.kafka_artifacts import KAFKA_JARS, KAFKA_VERSION


def _props(text: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in text.splitlines() if line)


def test_default_plan_is_the_seed_ports() -> None:
    nodes = plan_nodes(KafkaSettings(), "127.0.0.1", 3)
    assert [n.client_port for n in nodes] == [29092, 29093, 29094]
    assert [n.controller_port for n in nodes] == [29192, 29193, 29194]
    assert [n.node_id for n in nodes] == [1, 2, 3]
    assert nodes[0].bootstrap == "127.0.0.1:29092"  # localhost advertised as the bind address


def test_more_brokers_than_listed_ports_extend_the_range() -> None:
    kafka = KafkaSettings(bootstrap_servers=["localhost:40000"])
    assert [n.client_port for n in plan_nodes(kafka, "127.0.0.1", 3)] == [40000, 40001, 40002]


def test_overlapping_ports_are_refused() -> None:
    kafka = KafkaSettings(bootstrap_servers=["localhost:40000", "localhost:40001"])
    with pytest.raises(ConfigError, match="overlap"):
        plan_nodes(kafka, "127.0.0.1", 2, controller_ports=[40001, 40002])


def test_three_node_properties(tmp_path: Path) -> None:
    kafka = KafkaSettings()
    nodes = plan_nodes(kafka, "127.0.0.1", 3)
    props = _props(server_properties(nodes[1], nodes, "127.0.0.1", tmp_path, kafka))
    assert props["node.id"] == "2"
    assert props["process.roles"] == "broker,controller"
    assert props["controller.quorum.voters"] == (
        "1@127.0.0.1:29192,2@127.0.0.1:29193,3@127.0.0.1:29194"
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:29093,CONTROLLER://127.0.0.1:29193"
    assert props["default.replication.factor"] == "3"
    assert props["min.insync.replicas"] == "2"
    assert props["num.partitions"] == "3"
    assert props["offsets.topic.replication.factor"] == "3"


def test_single_broker_caps_replication(tmp_path: Path) -> None:
    kafka = KafkaSettings()
    nodes = plan_nodes(kafka, "127.0.0.1", 1)
    props = _props(server_properties(nodes[0], nodes, "127.0.0.1", tmp_path, kafka))
    assert props["default.replication.factor"] == "1"
    assert props["min.insync.replicas"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    specs = topic_specs(kafka, 1)
    assert [s.name for s in specs] == ["upbit-ticker", "upbit-trade", "upbit-orderbook"]
    assert all(s.replication_factor == 1 and s.configs["min.insync.replicas"] == "1" for s in specs)


def test_jar_pins_are_complete() -> None:
    names = {a.filename for a in KAFKA_JARS}
    assert f"kafka_2.13-{KAFKA_VERSION}.jar" in names
    assert f"kafka-clients-{KAFKA_VERSION}.jar" in names
    assert any(n.startswith("log4j-core-") for n in names)
    assert any(n.startswith("slf4j-api-2.") for n in names)
    assert all(
        len(a.sha256) == 64 and a.url.startswith("https://repo1.maven.org/") for a in KAFKA_JARS
    )
    assert len(names) == len(KAFKA_JARS)


def test_cluster_id_never_starts_with_a_dash() -> None:
    """kafka-storage reads `-t -abc...` as an option: a leading dash made formatting fail."""
    import base64
    import uuid

    from upbitpipe.infra.kafka import new_cluster_id

    ids = [new_cluster_id() for _ in range(2000)]
    assert not [i for i in ids if i.startswith("-")]
    assert all(len(base64.urlsafe_b64decode(i + "==")) == len(uuid.uuid4().bytes) for i in ids)
