"""The typed collector status: one writer, one reader, one line for a file of the wrong shape."""

from __future__ import annotations

import socket
import urllib.request
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.collector.status import (
    STATUS_FILE,
    CollectorStatus,
    ConnectionStatus,
    read_status,
    serve_metrics,
    write_status,
)
from upbitpipe.errors import ConfigError, StateFileError


def status() -> CollectorStatus:
    return CollectorStatus(
        instance_id="host-1",
        pid=123,
        updated_at=1_800_000_000.0,
        started_at=1_799_999_000.0,
        markets=["KRW-BTC", "KRW-ETH"],
        types=["trade"],
        frames=10,
        events={"trade": 7},
        backfilled={"KRW-BTC": 3, "KRW-ETH": 2},
        dead_letters={"malformed": 2, "unsubscribed_market": 1},
        dead_letter_write_failures=1,
        connections=[
            ConnectionStatus(shard=0, markets=2, connected=True, connects=2, disconnects=1)
        ],
        sinks={"lake": {"commits": 4, "written": 7}},
    )


def test_write_then_read_is_the_same_status(tmp_path: Path) -> None:
    path = tmp_path / STATUS_FILE
    write_status(path, status())
    assert read_status(path) == status()
    assert read_status(tmp_path / "absent.json") is None
    snap = status()
    assert (snap.backfilled_total, snap.dead_letters_total, snap.disconnects) == (5, 3, 1)


@pytest.mark.parametrize(
    "content",
    [b'"a string"', b"[]", b"{}", b'{"pid": "x"}', b"\x00garbage", b""],
)
def test_wrong_shape_is_one_line(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / STATUS_FILE
    path.write_bytes(content)
    with pytest.raises(StateFileError) as info:
        read_status(path)
    assert str(info.value).startswith(f"status file {path}")
    assert "\n" not in str(info.value)


def test_a_directory_is_one_line(tmp_path: Path) -> None:
    (tmp_path / STATUS_FILE).mkdir()
    with pytest.raises(StateFileError, match="cannot read it"):
        read_status(tmp_path / STATUS_FILE)


def test_newer_fields_are_ignored(tmp_path: Path) -> None:
    path = tmp_path / STATUS_FILE
    data = orjson.loads(status().model_dump_json())
    path.write_bytes(orjson.dumps({**data, "added_later": {"x": 1}}))
    assert read_status(path) == status()


@pytest.mark.parametrize("args", [["stats", "--only", "collector"], ["stats", "--json"]])
def test_stats_on_a_wrong_shape_status_is_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    (tmp_path / STATUS_FILE).write_bytes(b'{"events": "not a mapping"}')
    monkeypatch.setenv("UPBITPIPE_COLLECTOR__STATE_DIR", str(tmp_path))
    if "--json" in args:  # every part, none running: each must answer within its timeout
        for key, value in {
            "KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9",
            "FLINK__REST_URL": "http://127.0.0.1:9",
            "CLICKHOUSE__PORT": "9",
            "S3__ENDPOINT": "http://127.0.0.1:9",
            "LAKE__WAREHOUSE": str(tmp_path / "nolake"),
        }.items():
            monkeypatch.setenv(f"UPBITPIPE_{key}", value)
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    assert "is not a collector status" in result.output
    if "--json" in args:
        collector = orjson.loads(result.output)["collector"]
        assert collector["state"] == "down"
        assert "\n" not in collector["detail"]


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        body: bytes = response.read()
    return body.decode()


def test_metrics_read_the_typed_status() -> None:
    port, shutdown = serve_metrics(status, "127.0.0.1", 0)
    try:
        text = _scrape(port)
    finally:
        shutdown()
    assert 'upbitpipe_events_total{type="trade"} 7.0' in text
    assert 'upbitpipe_dead_letters_total{kind="unsubscribed_market"} 1.0' in text
    assert "upbitpipe_dead_letter_write_failures_total 1.0" in text
    assert 'upbitpipe_backfilled_trades_total{market="KRW-BTC"} 3.0' in text


def test_metrics_port_in_use_names_the_key() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ConfigError, match=f"metrics.port: 127.0.0.1:{port} is in use"):
            serve_metrics(status, "127.0.0.1", port)


@pytest.mark.parametrize("host", ["no-such-host.invalid", "999.1.1.1"])
def test_metrics_host_that_cannot_be_used_names_the_key(host: str) -> None:
    with pytest.raises(ConfigError, match="metrics.host"):
        serve_metrics(status, host, 0)
