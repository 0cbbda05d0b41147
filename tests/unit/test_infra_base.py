"""ManagedProcess: pid files, log files, readiness waits and a clean stop."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psutil
import pytest

from upbitpipe.errors import ServiceUnavailableError
from upbitpipe.infra.base import ManagedProcess, ServiceStarter, ServiceStatus, free_port


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def test_spawn_is_idempotent_and_terminate_kills_children(tmp_path: Path) -> None:
    # the parent forks a child that ignores SIGTERM: terminate must still leave nothing
    code = (
        "import subprocess,sys,time;"
        "subprocess.Popen([sys.executable,'-c','import signal,time;"
        "signal.signal(signal.SIGTERM,signal.SIG_IGN);time.sleep(60)']);"
        "print('up',flush=True);time.sleep(60)"
    )
    proc = ManagedProcess("svc", tmp_path, _python(code))
    pid = proc.spawn()
    assert proc.spawn() == pid
    proc.wait_until(lambda: "up" in proc.log_path.read_text(), 10, "printing up")
    deadline = time.monotonic() + 10
    while len(proc.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    family = proc.pids()
    assert len(family) == 2
    proc.terminate(timeout=1.0)
    assert not proc.is_running()
    assert not proc.pid_path.exists()
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != "zombie" for p in family)


def test_wait_for_port_reports_exit_with_log_path(tmp_path: Path) -> None:
    proc = ManagedProcess("dies", tmp_path, _python("raise SystemExit(3)"))
    proc.spawn()
    with pytest.raises(ServiceUnavailableError, match=r"dies: exited before .*dies\.log"):
        proc.wait_for_port("127.0.0.1", free_port(), timeout=10)


def test_wait_times_out(tmp_path: Path) -> None:
    proc = ManagedProcess("slow", tmp_path, _python("import time; time.sleep(30)"))
    proc.spawn()
    try:
        with pytest.raises(ServiceUnavailableError, match="not listening"):
            proc.wait_for_port("127.0.0.1", free_port(), timeout=0.5)
    finally:
        proc.terminate(timeout=2)


def test_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    proc = ManagedProcess("stale", tmp_path, _python("pass"))
    proc.dir.mkdir(parents=True)
    proc.pid_path.write_text('{"pid": 1, "create_time": 12345.0}')
    assert not proc.is_running()
    proc.terminate(timeout=0.1)  # must not signal pid 1
    assert not proc.pid_path.exists()


def test_status_dataclass_and_protocol() -> None:
    class Dummy:
        name = "dummy"

        def start(self, timeout: float) -> None: ...

        def stop(self, timeout: float) -> None: ...

        def status(self) -> ServiceStatus:
            return ServiceStatus("dummy", "-", running=False)

    assert isinstance(Dummy(), ServiceStarter)
    assert Dummy().status().pids == []


def test_die_with_parent_kills_when_the_spawning_thread_ends(tmp_path: Path) -> None:
    import threading

    proc = ManagedProcess(
        "orphan", tmp_path, _python("import time; time.sleep(60)"), die_with_parent=True
    )
    spawner = threading.Thread(target=proc.spawn)
    spawner.start()
    spawner.join()
    deadline = time.monotonic() + 10
    while proc.is_running() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not proc.is_running()
    proc.terminate(timeout=1)
