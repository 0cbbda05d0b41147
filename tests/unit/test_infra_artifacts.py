"""Pinned downloads: fetched once, checksum enforced, reused offline."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from upbitpipe.errors import ArtifactError
from upbitpipe.infra.artifacts import Artifact, fetch, fetch_all, maven_artifact

PAYLOAD = b"not really a jar\n" * 1000


class _Handler(BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:
        type(self).hits += 1
        if self.path != "/a.jar":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(PAYLOAD)))
        self.end_headers()
        self.wfile.write(PAYLOAD)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    _Handler.hits = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _artifact(base: str, sha: str | None = None, path: str = "/a.jar") -> Artifact:
    digest = sha or hashlib.sha256(PAYLOAD).hexdigest()
    return Artifact(name="test:a:1", url=base + path, sha256=digest, filename="a-1.jar")


def test_fetch_downloads_once_then_reuses(server: str, tmp_path: Path) -> None:
    art = _artifact(server)
    first = fetch(art, tmp_path, progress=False)
    assert first.read_bytes() == PAYLOAD
    assert first == tmp_path / "artifacts" / "a-1.jar"
    # second call: offline (a dead URL) and still fine
    offline = Artifact(art.name, "http://127.0.0.1:9/none", art.sha256, art.filename)
    assert fetch(offline, tmp_path, progress=False) == first
    assert _Handler.hits == 1


def test_checksum_mismatch_is_one_line_and_leaves_nothing(server: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="checksum mismatch") as info:
        fetch(_artifact(server, sha="0" * 64), tmp_path, progress=False)
    assert "\n" not in str(info.value)
    assert list((tmp_path / "artifacts").iterdir()) == []


def test_http_error_and_unreachable(server: str, tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="HTTP 404"):
        fetch(_artifact(server, path="/missing.jar"), tmp_path, progress=False)
    with pytest.raises(ArtifactError, match="download from"):
        fetch(_artifact("http://127.0.0.1:9"), tmp_path, progress=False)


def test_corrupted_cache_is_replaced(server: str, tmp_path: Path) -> None:
    art = _artifact(server)
    path = fetch(art, tmp_path, progress=False)
    path.write_bytes(b"tampered")
    assert fetch_all([art], tmp_path, progress=False) == [path]
    assert path.read_bytes() == PAYLOAD


def test_maven_url_layout() -> None:
    art = maven_artifact("org.apache.kafka", "kafka_2.13", "4.3.1", "ab" * 32)
    assert art.url == (
        "https://repo1.maven.org/maven2/org/apache/kafka/kafka_2.13/4.3.1/kafka_2.13-4.3.1.jar"
    )
    assert art.filename == "kafka_2.13-4.3.1.jar"
