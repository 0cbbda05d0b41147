"""Keep a set of native processes alive: restart one that died, log it, count it.

A starter that wants its processes supervised writes a :class:`SupervisorSpec` (names, argv,
working dirs and the environment entries that differ between them - never the inherited
environment, which may hold secrets) and spawns ``python -m upbitpipe.infra.supervisor SPEC``
as one more :class:`~upbitpipe.infra.base.ManagedProcess`. The supervisor:

* adopts processes that already run (their pid files say so) and spawns the missing ones;
* checks every ``interval`` seconds; a process that is gone is spawned again, with a WARNING
  line in the supervisor's log and ``restarts`` + 1 in ``restarts.json`` next to the spec
  (``infra status`` reads it);
* backs off when a process keeps dying (1 s, 2 s, 4 s ... up to 60 s between attempts; the
  delay resets once a process has stayed up for a minute);
* stops on SIGTERM without touching the processes it watches (the starter stops those).

It never starts anything the spec does not name and never restarts a process that runs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from upbitpipe.infra.base import ManagedProcess

log = logging.getLogger("upbitpipe.supervisor")

SPEC_FILE = "supervisor.json"
RESTARTS_FILE = "restarts.json"
MAX_BACKOFF_SECONDS = 60.0
STABLE_SECONDS = 60.0


@dataclass(frozen=True)
class ProcessSpec:
    """One supervised process: how :class:`ManagedProcess` spawns it."""

    name: str
    argv: list[str]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)  # entries added to the inherited env


@dataclass(frozen=True)
class SupervisorSpec:
    """What the supervisor watches. ``state_dir`` is the parent of each process's own dir."""

    state_dir: str
    processes: list[ProcessSpec]
    interval: float = 1.0
    die_with_parent: bool = False

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), encoding="utf-8")
        tmp.replace(path)

    @classmethod
    def read(cls, path: Path) -> SupervisorSpec:
        data = json.loads(path.read_text(encoding="utf-8"))
        procs = [ProcessSpec(**p) for p in data.pop("processes")]
        return cls(processes=procs, **data)


@dataclass
class RestartRecord:
    """Per process: how often the supervisor restarted it, and when last."""

    restarts: int = 0
    last_restart: float | None = None
    last_pid: int | None = None


def read_restarts(path: Path) -> dict[str, RestartRecord]:
    """The counters a supervisor wrote (empty when it never restarted anything)."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return {str(k): RestartRecord(**v) for k, v in data.items()}
    except (OSError, ValueError, TypeError):
        return {}


def write_restarts(path: Path, records: Mapping[str, RestartRecord]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({k: asdict(v) for k, v in records.items()}), encoding="utf-8")
    tmp.replace(path)


class Supervisor:
    """The restart loop (runs in the supervisor process; tests may drive :meth:`check`)."""

    def __init__(
        self,
        spec: SupervisorSpec,
        restarts_path: Path,
        *,
        base_env: Mapping[str, str] | None = None,
    ) -> None:
        self.spec = spec
        self.restarts_path = restarts_path
        env = dict(os.environ if base_env is None else base_env)
        self.processes = [
            ManagedProcess(
                p.name,
                Path(spec.state_dir),
                p.argv,
                env={**env, **p.env},
                cwd=Path(p.cwd) if p.cwd else None,
                die_with_parent=spec.die_with_parent,
            )
            for p in spec.processes
        ]
        self.records = read_restarts(restarts_path)
        self._next_try: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._started: dict[str, float] = {}

    def check(self, now: float | None = None) -> list[str]:
        """Spawn every process that is not running (and due); returns the names restarted."""
        now = time.monotonic() if now is None else now
        restarted: list[str] = []
        for proc in self.processes:
            if proc.is_running():
                if now - self._started.get(proc.name, now) >= STABLE_SECONDS:
                    self._backoff.pop(proc.name, None)
                self._started.setdefault(proc.name, now)
                continue
            if now < self._next_try.get(proc.name, 0.0):
                continue
            delay = min(MAX_BACKOFF_SECONDS, self._backoff.get(proc.name, 0.5) * 2)
            self._backoff[proc.name] = delay
            self._next_try[proc.name] = now + delay
            try:
                pid = proc.spawn()
            except OSError as exc:
                log.error("could not restart %s: %s (next try in %.0f s)", proc.name, exc, delay)
                continue
            self._started[proc.name] = now
            record = self.records.setdefault(proc.name, RestartRecord())
            record.restarts += 1
            record.last_restart = time.time()
            record.last_pid = pid
            write_restarts(self.restarts_path, self.records)
            log.warning(
                "%s was not running: restarted it (pid %d, restart #%d)",
                proc.name,
                pid,
                record.restarts,
            )
            restarted.append(proc.name)
        return restarted

    def run(self, stop: threading.Event) -> None:
        names = ", ".join(p.name for p in self.processes)
        log.info("supervising %s every %.1f s", names, self.spec.interval)
        while not stop.is_set():
            _reap_children()  # only here: this process exists to supervise
            self.check()
            stop.wait(self.spec.interval)
        log.info("supervisor stopped (the supervised processes keep running)")


def _reap_children() -> None:
    """Collect exit statuses of children that died, so they do not linger as zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        sys.stderr.write("usage: python -m upbitpipe.infra.supervisor SPEC.json\n")
        return 2
    spec_path = Path(args[0])
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)-5s supervisor - %(message)s",
        stream=sys.stdout,
    )
    spec = SupervisorSpec.read(spec_path)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    with contextlib.suppress(KeyboardInterrupt):
        Supervisor(spec, spec_path.with_name(RESTARTS_FILE)).run(stop)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
