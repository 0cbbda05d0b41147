"""Real services for integration tests, started by upbitpipe's own infra code.

Session-scoped, on free loopback ports with temporary state dirs, stopped at the end:

* ``kafka_cluster`` -- 3 KRaft brokers: ``.bootstrap_servers`` (list[str]), ``.kill_broker(i)``,
  ``.start_broker(i)``, ``.stop_broker(i)`` (0-based), ``.cluster`` (the ``KafkaCluster``).
* ``s3_server`` -- MinIO: ``.endpoint``, ``.access_key``, ``.secret_key`` (plain str).
* ``tmp_topic`` -- a fresh topic (3 partitions, RF 3, min.insync 2) on ``kafka_cluster``.
* ``settings_for(tmp_path, kafka=..., s3=...)`` -- a ``Settings`` pointing at them.

Processes are spawned with ``die_with_parent``: a test run killed hard (SIGKILL, a CI timeout)
takes its services with it. Call ``start_broker`` from the test's main thread.

Artifacts come from the shared cache (``artifact_cache`` in tests/conftest.py): the first run
downloads the Kafka jars and builds MinIO; later runs are offline.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tiers import require_tool

from upbitpipe.config import InfraSettings, KafkaSettings, S3Settings, Settings, load_settings
from upbitpipe.infra.base import free_port
from upbitpipe.infra.kafka import KafkaCluster
from upbitpipe.infra.kafka_admin import TopicSpec, ensure_topics_sync, run_blocking
from upbitpipe.infra.s3server import MinioServer, minio_binary_path

KAFKA_START_TIMEOUT = 180.0
S3_START_TIMEOUT = 120.0


def free_ports(count: int) -> list[int]:
    """``count`` distinct free loopback ports."""
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in ports:
            ports.append(port)
    return ports


@dataclass
class KafkaFixture:
    cluster: KafkaCluster
    bootstrap_servers: list[str]

    def kill_broker(self, index: int) -> None:
        """SIGKILL broker ``index`` (0-based)."""
        self.cluster.kill_broker(index)

    def stop_broker(self, index: int) -> None:
        self.cluster.stop_broker(index)

    def start_broker(self, index: int, timeout: float = 90.0) -> None:
        """Start broker ``index`` again and wait until it is back in the cluster metadata."""
        self.cluster.start_broker(index, timeout)

    @property
    def settings(self) -> KafkaSettings:
        return self.cluster.kafka


@dataclass
class S3Fixture:
    server: MinioServer
    endpoint: str
    access_key: str
    secret_key: str
    state_dir: Path


@pytest.fixture(scope="session")
def kafka_cluster(
    tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path
) -> Iterator[KafkaFixture]:
    require_tool("java", "the Kafka brokers")
    ports = free_ports(6)
    kafka = KafkaSettings(bootstrap_servers=[f"127.0.0.1:{p}" for p in ports[:3]])
    infra = InfraSettings(
        state_dir=tmp_path_factory.mktemp("infra-kafka"), cache_dir=artifact_cache, kafka_brokers=3
    )
    cluster = KafkaCluster(
        kafka, infra, controller_ports=ports[3:], progress=False, die_with_parent=True
    )
    try:
        cluster.start(KAFKA_START_TIMEOUT)
        yield KafkaFixture(cluster, cluster.bootstrap_servers)
    finally:
        cluster.stop(30.0)


@pytest.fixture(scope="session")
def s3_server(
    tmp_path_factory: pytest.TempPathFactory, artifact_cache: Path
) -> Iterator[S3Fixture]:
    if not minio_binary_path(artifact_cache).exists():
        require_tool("go", "building the S3 server (MinIO) on first use")
    port = free_ports(2)[0]
    state = tmp_path_factory.mktemp("infra-s3")
    infra = InfraSettings(state_dir=state, cache_dir=artifact_cache)
    s3 = S3Settings(endpoint=f"http://127.0.0.1:{port}")  # type: ignore[arg-type]
    server = MinioServer(s3, infra, console=False, die_with_parent=True)
    try:
        server.start(S3_START_TIMEOUT)
        creds = server.credentials()
        assert creds is not None
        yield S3Fixture(server, server.endpoint, creds.access_key, creds.secret_key, state)
    finally:
        server.stop(15.0)


@pytest.fixture
def tmp_topic(kafka_cluster: KafkaFixture) -> Iterator[str]:
    """A topic of its own for one test (3 partitions, RF 3, min.insync.replicas 2)."""
    name = f"test-{uuid.uuid4().hex[:10]}"
    spec = TopicSpec(name, 3, 3, {"min.insync.replicas": "2"})
    ensure_topics_sync(kafka_cluster.bootstrap_servers, [spec], 30.0)
    yield name
    run_blocking(_delete_topic(kafka_cluster.bootstrap_servers, name), 30.0)


async def _delete_topic(bootstrap: list[str], name: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([name])
    finally:
        await admin.close()


def settings_for(
    tmp_path: Path,
    kafka: KafkaFixture | None = None,
    s3: S3Fixture | None = None,
    **overrides: Any,
) -> Settings:
    """Settings for a test: state under ``tmp_path``, pointing at the given services.

    ``overrides`` are dotted keys (``{"collector.markets": "KRW-BTC"}`` as keyword
    ``**{"collector.markets": ...}``), applied last.
    """
    flat: dict[str, Any] = {
        "infra.state_dir": str(tmp_path / "infra"),
        "infra.runtime": "native",
        "collector.state_dir": str(tmp_path / "collector"),
        "lake.warehouse": str(tmp_path / "lake"),
        "metrics.port": 0,
    }
    if kafka is not None:
        flat["kafka.bootstrap_servers"] = ",".join(kafka.bootstrap_servers)
    if s3 is not None:
        flat["s3.endpoint"] = s3.endpoint
        flat["s3.access_key"] = s3.access_key
        flat["s3.secret_key"] = s3.secret_key
    flat.update(overrides)
    return load_settings(overrides=flat, env={}).settings
