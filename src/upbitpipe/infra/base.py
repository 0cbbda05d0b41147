"""The contract every local service starter implements, and the process helper they share.

A *starter* owns one service of the local cluster (Kafka, the S3 server, Flink, ...). The CLI
(`upbitpipe infra up/down/status`) and the pytest fixtures drive starters only through
:class:`ServiceStarter`, so a native process, a docker container or a remote stand-in are
interchangeable. Native starters keep everything under ``<infra.state_dir>/<name>/``: a pid
file per process, one log file per process and the service's data.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import psutil

from upbitpipe.errors import ServiceUnavailableError

POLL_SECONDS = 0.2


@dataclass
class ServiceStatus:
    """What ``infra status`` prints for one component."""

    name: str
    address: str
    running: bool
    pids: list[int] = field(default_factory=list)
    healthy: bool = False
    version: str = ""
    detail: str = ""
    #: Service-specific facts for ``--json`` (Flink: its jobs' states and restart counts).
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class ServiceStarter(Protocol):
    """Starts, stops and reports one local service.

    Contract (every implementation, native or docker):

    * ``name`` -- short component name shown by ``infra status`` (``kafka``, ``s3``, ``flink``).
    * ``start(timeout)`` -- idempotent: a service that is already running and healthy is left
      alone (no second copy, no restart). Otherwise it fetches its pinned artifacts, spawns its
      processes and returns only once the service answers its health check (a client port
      accepts connections, a REST endpoint replies, ...). On any failure -- a crash, a port
      that never opens, ``timeout`` seconds passing -- it stops what it spawned and raises
      :class:`upbitpipe.errors.ServiceUnavailableError` whose one-line message names the log
      file to read. It never leaves half a service running.
    * ``stop(timeout)`` -- sends SIGTERM to every process of the service, waits up to
      ``timeout`` seconds, then SIGKILLs what is left (children included) and removes the pid
      files. Stopping a stopped service is a no-op. No process is left behind.
    * ``status()`` -- cheap and side-effect free: never starts anything, never raises for a
      service that is down (``running=False``), reports every pid it knows of.

    Starters receive their config sections explicitly in the constructor (no global state),
    so tests can build them with free ports and a temporary state dir.
    """

    name: str

    def start(self, timeout: float) -> None: ...

    def stop(self, timeout: float) -> None: ...

    def status(self) -> ServiceStatus: ...


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts a TCP connection on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (for tests and ephemeral services)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file ('' when it does not exist)."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(0, size - 16_384))
            data = fh.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(data.splitlines()[-lines:])


def _kill_me_with_parent() -> None:
    """Runs in the child before exec: SIGKILL it when the spawning thread dies (Linux only)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


class ManagedProcess:
    """One native process with a pid file and a log file under ``state_dir/<name>/``.

    The pid file records the pid *and* the process start time, so a stale file whose pid was
    reused by an unrelated process is recognised and never signalled. Processes run in their
    own session (process group) so ``terminate`` reaches every child a launcher script forks.

    ``die_with_parent=True`` (for test fixtures) makes the kernel SIGKILL the process when the
    *thread* that spawned it exits, so a test run killed hard leaves no service behind. Never
    use it for ``infra up``, whose services must outlive the command.
    """

    def __init__(
        self,
        name: str,
        state_dir: Path,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
        die_with_parent: bool = False,
    ) -> None:
        self.name = name
        self.dir = state_dir / name
        self.argv = list(argv)
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.die_with_parent = die_with_parent
        self.log_path = self.dir / f"{name}.log"
        self.pid_path = self.dir / f"{name}.pid"
        self._popen: subprocess.Popen[bytes] | None = None

    # -- pid bookkeeping -------------------------------------------------------------------
    def _read_pid_file(self) -> tuple[int, float] | None:
        try:
            data = json.loads(self.pid_path.read_text(encoding="utf-8"))
            return int(data["pid"]), float(data["create_time"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _process(self) -> psutil.Process | None:
        recorded = self._read_pid_file()
        if recorded is None:
            return None
        pid, created = recorded
        try:
            proc = psutil.Process(pid)
            if abs(proc.create_time() - created) > 1.0 or proc.status() == psutil.STATUS_ZOMBIE:
                return None
        except psutil.Error:
            return None
        return proc

    @property
    def pid(self) -> int | None:
        """The live pid from the pid file, or ``None`` (no file, dead, or pid reused)."""
        proc = self._process()
        return proc.pid if proc is not None else None

    def is_running(self) -> bool:
        return self._process() is not None

    def pids(self) -> list[int]:
        """The main pid plus every descendant (launcher scripts fork the real JVM)."""
        proc = self._process()
        if proc is None:
            return []
        try:
            return [proc.pid, *(child.pid for child in proc.children(recursive=True))]
        except psutil.Error:
            return [proc.pid]

    # -- lifecycle -------------------------------------------------------------------------
    def spawn(self) -> int:
        """Start the process (append to its log) unless it already runs; returns the pid."""
        current = self._process()
        if current is not None:
            return current.pid
        self.dir.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            log.write(
                f"\n=== {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} start: {self.argv[0]}\n".encode()
            )
            log.flush()
            proc = subprocess.Popen(  # noqa: S603 - argv is built by our own code
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self.env,
                cwd=self.cwd,
                start_new_session=True,
                preexec_fn=_kill_me_with_parent if self.die_with_parent else None,
            )
        self._popen = proc
        try:
            created = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            created = time.time()
        tmp = self.pid_path.with_suffix(".pid.tmp")
        tmp.write_text(json.dumps({"pid": proc.pid, "create_time": created, "argv": self.argv[:3]}))
        tmp.replace(self.pid_path)
        return proc.pid

    def terminate(self, timeout: float = 15.0) -> None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL all that is left."""
        proc = self._process()
        if proc is None:
            self.pid_path.unlink(missing_ok=True)
            return
        try:
            family = [proc, *proc.children(recursive=True)]
        except psutil.Error:
            family = [proc]
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        for member in family:
            with contextlib.suppress(psutil.Error):
                member.terminate()
        _, alive = psutil.wait_procs(family, timeout=timeout)
        if alive:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            for member in alive:
                with contextlib.suppress(psutil.Error):
                    member.kill()
            psutil.wait_procs(alive, timeout=5.0)
        self._reap(proc.pid)
        self.pid_path.unlink(missing_ok=True)

    def _reap(self, pid: int) -> None:
        """Collect the exit status if we are the parent, so no zombie lingers."""
        if self._popen is not None and self._popen.pid == pid:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._popen.wait(timeout=1.0)
            self._popen = None
            return
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)

    def kill(self) -> None:
        """SIGKILL at once (a crash, for failure tests)."""
        self.terminate(timeout=0.0)

    # -- readiness -------------------------------------------------------------------------
    def failure(self, what: str) -> ServiceUnavailableError:
        """A one-line error naming the log file (the tail goes to the log reader, not here)."""
        return ServiceUnavailableError(f"{self.name}: {what} (see {self.log_path})")

    def wait_until(self, check: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``check`` until true; raise if the process exits or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while True:
            if check():
                return
            if not self.is_running():
                msg = f"exited before {what}"
                raise self.failure(msg)
            if time.monotonic() >= deadline:
                msg = f"not {what} after {timeout:.0f} s"
                raise self.failure(msg)
            time.sleep(POLL_SECONDS)

    def wait_for_port(self, host: str, port: int, timeout: float) -> None:
        """Wait until ``host:port`` accepts connections (or the process dies)."""
        self.wait_until(lambda: port_open(host, port), timeout, f"listening on {host}:{port}")
