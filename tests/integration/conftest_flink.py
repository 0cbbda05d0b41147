"""Flink fixtures for integration tests (load with ``pytest_plugins = ["conftest_flink"]``).

* ``flink_cluster`` -- one native standalone cluster for the whole session (1 JobManager +
from conftest import S3Fixture
from upbitpipe.config import FlinkSettings, InfraSettings, S3Settings
from upbitpipe.flink.cluster import FlinkCluster
* ``flink_runtime`` -- the Flink runtime venv + jars in the shared artifact cache.
* ``flink_cluster.overrides()`` -- dotted settings that point a test at the cluster.

Tests keep parallelism small (2): the machine has 2 cores.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tiers import require_tool

from conftest import S3Fixture
from upbitpipe.config import FlinkSettings, InfraSettings, S3Settings
from upbitpipe.flink.cluster import FlinkCluster
from upbitpipe.flink.runtime import FlinkRuntime
from upbitpipe.infra.base import free_port

FLINK_START_TIMEOUT = 180.0
TEST_PARALLELISM = 2


@dataclass
class FlinkFixture:
    cluster: FlinkCluster
    rest_url: str
    start_seconds: float
    start_timeout: float = FLINK_START_TIMEOUT

    def overrides(self, **extra: Any) -> dict[str, Any]:
        """Settings keys for a job on this cluster (small parallelism, fast checkpoints)."""
        return {
            "flink.rest_url": self.rest_url,
            "flink.parallelism": TEST_PARALLELISM,
            "flink.checkpoint_interval": "5 s",
            **extra,
        }


def s3_settings(s3: S3Fixture) -> S3Settings:
    """The S3 server as the cluster's checkpoint filesystem (endpoint + keys)."""
    return S3Settings(
        endpoint=s3.endpoint,  # type: ignore[arg-type]
        access_key=s3.access_key,  # type: ignore[arg-type]
        secret_key=s3.secret_key,  # type: ignore[arg-type]
    )


@pytest.fixture(scope="session")
def flink_runtime(artifact_cache: Path) -> FlinkRuntime:
    require_tool("java", "Flink")
    runtime = FlinkRuntime.in_cache(artifact_cache)
    return runtime.ensure(artifact_cache, progress=False)


@pytest.fixture(scope="session")
def flink_cluster(
    tmp_path_factory: pytest.TempPathFactory,
    artifact_cache: Path,
    flink_runtime: FlinkRuntime,
    s3_server: S3Fixture,
) -> Iterator[FlinkFixture]:
    port = free_port()
    flink = FlinkSettings(
        rest_url=f"http://127.0.0.1:{port}",  # type: ignore[arg-type]
        parallelism=TEST_PARALLELISM,
        taskmanagers=2,
        slots_per_taskmanager=2,
        checkpoint_interval="30 s",
    )
    infra = InfraSettings(
        state_dir=tmp_path_factory.mktemp("infra-flink"), cache_dir=artifact_cache
    )
    cluster = FlinkCluster(flink, infra, progress=False, s3=s3_settings(s3_server))
    started = time.monotonic()
    try:
        cluster.start(FLINK_START_TIMEOUT)
        yield FlinkFixture(cluster, cluster.rest_url, time.monotonic() - started)
    finally:
        cluster.stop(30.0)
