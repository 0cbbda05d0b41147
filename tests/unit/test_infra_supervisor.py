"""The supervisor loop on a real short-lived process: adopt, restart, count, back off."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from upbitpipe.infra.supervisor import (
    ProcessSpec,
    Supervisor,
    SupervisorSpec,
    read_restarts,
)


@pytest.fixture
def supervisor(tmp_path: Path) -> Iterator[Supervisor]:
    spec = SupervisorSpec(
        state_dir=str(tmp_path),
        processes=[ProcessSpec("sleeper", ["sleep", "60"], env={"SLEEPER": "1"})],
        die_with_parent=True,
    )
    spec_path = tmp_path / "supervisor" / "supervisor.json"
    spec.write(spec_path)
    sup = Supervisor(SupervisorSpec.read(spec_path), tmp_path / "restarts.json")
    yield sup
    for proc in sup.processes:
        proc.terminate(2.0)


def _wait_dead(pid: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                return
        except psutil.NoSuchProcess:
            return
        time.sleep(0.05)


def test_spec_round_trips(tmp_path: Path) -> None:
    spec = SupervisorSpec(str(tmp_path), [ProcessSpec("a", ["true"], "/x", {"K": "v"})], 0.5)
    spec.write(tmp_path / "s.json")
    assert SupervisorSpec.read(tmp_path / "s.json") == spec


def test_restarts_a_dead_process_counts_and_backs_off(supervisor: Supervisor) -> None:
    (proc,) = supervisor.processes
    assert supervisor.check(now=0.0) == ["sleeper"]  # nothing ran yet: started
    first = proc.pid
    assert first is not None
    assert supervisor.check(now=0.5) == []  # running: left alone
    assert proc.pid == first

    os.kill(first, signal.SIGKILL)
    _wait_dead(first)
    assert supervisor.check(now=0.6) == []  # restarted 0.6 s ago: backing off
    assert supervisor.check(now=1.5) == ["sleeper"]
    second = proc.pid
    assert second not in (None, first)
    record = read_restarts(supervisor.restarts_path)["sleeper"]
    assert record.restarts == 2 and record.last_pid == second

    os.kill(second, signal.SIGKILL)  # dies again at once: the delay doubles
    _wait_dead(second)
    assert supervisor.check(now=2.5) == []
    assert supervisor.check(now=3.6) == ["sleeper"]
    assert read_restarts(supervisor.restarts_path)["sleeper"].restarts == 3


def test_adopts_a_running_process(tmp_path: Path, supervisor: Supervisor) -> None:
    (proc,) = supervisor.processes
    proc.spawn()
    pid = proc.pid
    fresh = Supervisor(supervisor.spec, supervisor.restarts_path)
    assert fresh.check(now=0.0) == []
    assert fresh.processes[0].pid == pid
    assert read_restarts(supervisor.restarts_path) == {}


def test_missing_counter_file_reads_empty(tmp_path: Path) -> None:
    assert read_restarts(tmp_path / "nope.json") == {}
