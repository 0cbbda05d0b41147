"""Services that are down or answer nonsense: one line with the real cause, in seconds."""

from __future__ import annotations

import asyncio
import socket
import threading

import httpx
import pytest
from typer.testing import CliRunner

from upbitpipe.cli.main import app
from upbitpipe.config import S3Settings, Settings
from upbitpipe.errors import ServiceUnavailableError
from upbitpipe.stats import report
from upbitpipe.stats.sources import ALL_SOURCES, Section, kafka_section
from upbitpipe.storage.buckets import check_warehouse_bucket
from upbitpipe.upbit.rest import UpbitRestClient


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def test_s3_warehouse_on_a_closed_port_says_connection_refused() -> None:
    s3 = S3Settings(endpoint=f"http://127.0.0.1:{closed_port()}")  # type: ignore[arg-type]
    with pytest.raises(ServiceUnavailableError, match="connection refused"):
        check_warehouse_bucket(s3, "s3://upbit-lake/wh", "key", "secret")


def test_kafka_on_a_closed_port_says_connection_refused() -> None:
    port = closed_port()
    settings = Settings.model_validate({"kafka": {"bootstrap_servers": [f"127.0.0.1:{port}"]}})
    section = kafka_section(settings)
    assert section.state == "down"
    assert section.detail == f"127.0.0.1:{port} connection refused"


def test_stats_reports_a_source_that_does_not_answer_as_down(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    release = threading.Event()

    def stuck(settings: Settings) -> Section:
        release.wait(30)
        return Section("stuck", "ok")

    monkeypatch.setitem(ALL_SOURCES, "stuck", stuck)
    try:
        sections = report.gather(Settings(), ["stuck"], deadline=0.5)
    finally:
        release.set()
    assert [(s.name, s.state) for s in sections] == [("stuck", "down")]
    assert "no answer within" in sections[0].detail


@pytest.mark.parametrize(
    "body", [b'{"error":{"name":"server_error","message":"maintenance"}}', b'["KRW-BTC"]']
)
def test_market_list_that_is_not_a_list_of_markets_is_one_line(body: bytes) -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"Content-Type": "application/json"})

    async def main() -> None:
        async with UpbitRestClient(
            "http://upbit.test", transport=httpx.MockTransport(answer)
        ) as rest:
            await rest.list_markets()

    with pytest.raises(ServiceUnavailableError, match="did not answer a list of markets"):
        asyncio.run(main())


@pytest.mark.parametrize(
    ("flag", "value", "expected"),
    [
        ("--rate", "nan", "rate must be a finite number"),
        ("--rate", "inf", "rate must be a finite number"),
        ("--rate", "-5", "rate must be >= 0"),
    ],
)
def test_replay_serve_refuses_meaningless_numbers(flag: str, value: str, expected: str) -> None:
    result = CliRunner().invoke(app, ["replay", "serve", "--synthetic", flag, value])
    assert result.exit_code == 2, result.output
    assert expected in result.output
    assert "Traceback" not in result.output


def test_a_web_server_in_place_of_s3_is_not_reported_as_a_missing_bucket() -> None:
    """A proxy or web server answering 404 for everything is the endpoint's fault."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class NotS3(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_HEAD = _answer  # noqa: N815

        def log_message(self, *args: object) -> None:
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), NotS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{server.server_address[1]}"
        s3 = S3Settings(endpoint=endpoint)  # type: ignore[arg-type]
        with pytest.raises(ServiceUnavailableError, match="is not an S3 server"):
            check_warehouse_bucket(s3, "s3://upbit-lake/wh", "key", "secret")
    finally:
        server.shutdown()
        server.server_close()
