"""State files of the wrong type or shape: one line, or moved aside; never a traceback
(issue #18, #12 item 2's unusable state)."""

from __future__ import annotations

import errno
import logging
import os
import time
from pathlib import Path

import orjson
import pytest

from upbitpipe.collector.resume import ResumePoints, Tip
from upbitpipe.collector.statefiles import (
    LOCK_FILE,
    prepare_state_dir,
    state_dir_lock,
)
from upbitpipe.errors import StateFileError

NOW = int(time.time() * 1000)


def test_state_dir_that_is_a_file(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.write_text("x")
    with pytest.raises(StateFileError, match=r"collector.state_dir: .* is a file"):
        prepare_state_dir(state)


def test_state_dir_under_a_file(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StateFileError, match="collector.state_dir: cannot create"):
        prepare_state_dir(tmp_path / "f" / "state")


def test_read_only_state_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = Path.write_bytes

    def read_only(self: Path, data: bytes) -> int:  # root ignores chmod: fail like EROFS
        if self.parent == tmp_path:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", read_only)
    with pytest.raises(StateFileError, match="cannot write in .*Read-only file system"):
        prepare_state_dir(tmp_path)


@pytest.mark.parametrize("name", [LOCK_FILE, "status.json", "resume.json"])
def test_state_file_that_is_a_directory_is_refused_at_start(tmp_path: Path, name: str) -> None:
    (tmp_path / name).mkdir()
    with pytest.raises(StateFileError, match=f"{name} is a directory"):
        prepare_state_dir(tmp_path, ("status.json", "resume.json"))


def test_refused_second_collector_keeps_the_first_ones_pid(tmp_path: Path) -> None:
    lock = tmp_path / LOCK_FILE
    with state_dir_lock(tmp_path):
        assert lock.read_text() == str(os.getpid())
        with pytest.raises(StateFileError, match=f"another collector \\(pid {os.getpid()}\\)"):
            # a second lock on the same file from this process: flock is per open file
            with state_dir_lock(tmp_path):
                pass
        assert lock.read_text() == str(os.getpid()), "the refused one erased the PID"


def test_lock_file_with_garbage_is_taken_over(tmp_path: Path) -> None:
    (tmp_path / LOCK_FILE).write_text("garbage that is longer than a pid")
    with state_dir_lock(tmp_path):
        assert (tmp_path / LOCK_FILE).read_text() == str(os.getpid())


@pytest.mark.parametrize("content", [b"[1,2,3]", b"null", b'"KRW-BTC"', b"42", b"{not json"])
def test_resume_of_the_wrong_shape_is_moved_aside(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "resume.json"
    path.write_bytes(content)
    assert ResumePoints.load(path, now_ms=NOW).tips == {}
    assert not path.exists()
    aside = list(tmp_path.glob("resume.json.bad-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == content


def test_implausible_resume_entries_are_dropped_by_name(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "resume.json"
    good = NOW - 60_000
    path.write_bytes(
        orjson.dumps(
            {
                "KRW-BTC": good,
                "KRW-ETH": "abc",
                "KRW-XRP": 1.5e12,
                "KRW-SOL": NOW + 10 * 86_400_000,  # ten days ahead: would pin the backfill
                "KRW-ADA": 10**18,
                "KRW-DOT": -5,
            }
        )
    )
    with caplog.at_level(logging.WARNING):
        assert ResumePoints.load(path, now_ms=NOW).tips == {"KRW-BTC": Tip(ms=good)}
    assert "ignored 5 entries" in caplog.text and "KRW-SOL" in caplog.text
    assert path.exists(), "a file of the right shape stays"
