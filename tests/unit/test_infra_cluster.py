"""Which components `infra up` starts, in which order, on which runtime (no services)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from upbitpipe.config import S3Settings
from upbitpipe.errors import ConfigError
from upbitpipe.stack import (
    DOCKER_ONLY_MESSAGE,
    check_native,
    normalize_components,
    resolve_runtime,
)
from upbitpipe.storage.credentials import credentials_file, local_credentials


def test_default_components_per_runtime() -> None:
    assert normalize_components([], "native") == ["kafka", "s3", "flink"]
    assert normalize_components([], "docker") == ["kafka", "s3", "flink", "clickhouse", "grafana"]


def test_aliases_and_dependency_order() -> None:
    assert normalize_components(["flink", "MinIO", "kafka"], "native") == ["kafka", "s3", "flink"]


def test_unknown_component() -> None:
    with pytest.raises(ConfigError, match="unknown component 'zookeeper'"):
        normalize_components(["zookeeper"], "native")


def test_clickhouse_native_is_refused_with_the_one_line() -> None:
    with pytest.raises(ConfigError) as info:
        check_native(["kafka", "grafana"])
    assert str(info.value) == DOCKER_ONLY_MESSAGE
    check_native(["kafka", "s3", "flink"])


def test_explicit_runtime_is_kept() -> None:
    assert resolve_runtime("native") == "native"
    assert resolve_runtime("docker") == "docker"


def test_auto_runtime_without_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("upbitpipe.stack.docker_available", lambda: False)
    assert resolve_runtime("auto") == "native"
    monkeypatch.setattr("upbitpipe.stack.docker_available", lambda: True)
    assert resolve_runtime("auto") == "docker"


def test_generated_credentials_are_private_and_stable(tmp_path: Path) -> None:
    s3 = S3Settings()
    assert local_credentials(s3, tmp_path, create=False) is None
    creds = local_credentials(s3, tmp_path, create=True)
    assert creds is not None and len(creds.secret_key) >= 30
    path = credentials_file(tmp_path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert local_credentials(s3, tmp_path, create=True) == creds
    assert creds.secret_key not in repr(creds)
    assert json.loads(path.read_text())["access_key"] == creds.access_key


def test_configured_credentials_win(tmp_path: Path) -> None:
    s3 = S3Settings(access_key="ak-from-config", secret_key="sk-from-config")  # type: ignore[arg-type]
    creds = local_credentials(s3, tmp_path, create=True)
    assert creds is not None and creds.access_key == "ak-from-config"
    assert not credentials_file(tmp_path).exists()
    with pytest.raises(ConfigError, match="together"):
        local_credentials(S3Settings(access_key="only-half"), tmp_path, create=True)  # type: ignore[arg-type]
