"""How ``infra up`` shows its preparation: the plan first, then progress while it runs.

On a terminal a live block with one line per step (spinner, latest progress, elapsed); in a
pipe or a file, a plain line when a step starts, finishes or fails, and a heartbeat with each
running step's latest progress every :data:`HEARTBEAT_SECONDS`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from types import TracebackType

from rich.console import Console
from rich.markup import escape
from rich.progress import Progress, SpinnerColumn, TaskID, TextColumn, TimeElapsedColumn

from upbitpipe.prepare import Step, estimate

HEARTBEAT_SECONDS = 30.0


def duration(seconds: int) -> str:
    return f"{seconds} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def span(low: int, high: int) -> str:
    if high < 90:
        return f"{low}-{high} s"
    return f"{duration(low)}-{duration(high)}".replace(" min-", "-")


def plan_lines(steps: Sequence[Step]) -> list[str]:
    """What will be fetched or built, and about how long, before anything starts."""
    low, high = estimate(steps)
    what = f"{len(steps)} steps in parallel" if len(steps) > 1 else "1 step"
    lines = [f"preparing once (cached afterwards): {what}, about {span(low, high)} on 2 cores:"]
    lines += [f"  {s.name:<13} {s.what}  (~{span(*s.estimate)})" for s in steps]
    return lines


class PrepareView:
    """A thread-safe :class:`~upbitpipe.prepare.StepEvents` printing to ``console``."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.live = console.is_terminal
        self.began = time.monotonic()
        self.lock = threading.Lock()
        self.latest: dict[str, str] = {}
        self.running: set[str] = set()
        self.stop = threading.Event()
        self.bar: Progress | None = None
        self.tasks: dict[str, TaskID] = {}
        self.heartbeat: threading.Thread | None = None

    def __enter__(self) -> PrepareView:
        if self.live:
            self.bar = Progress(
                SpinnerColumn(finished_text=" "),
                TextColumn("{task.description:<13}"),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                console=self.console,
            )
            self.bar.start()
        else:
            self.heartbeat = threading.Thread(target=self._beat, daemon=True)
            self.heartbeat.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop.set()
        if self.bar is not None:
            self.bar.stop()
        if self.heartbeat is not None:
            self.heartbeat.join(timeout=5)

    def _line(self, text: str) -> None:
        stamp = f"[{time.monotonic() - self.began:5.0f}s]"
        self.console.print(f"{stamp} {text}", markup=False, highlight=False)

    def _beat(self) -> None:
        while not self.stop.wait(HEARTBEAT_SECONDS):
            with self.lock:
                busy = sorted(self.running)
                for name in busy:
                    self._line(f"{name}: {self.latest.get(name, 'working')}")

    # -- StepEvents ------------------------------------------------------------------------
    def started(self, step: Step) -> None:
        with self.lock:
            self.running.add(step.name)
            if self.bar is not None:
                self.tasks[step.name] = self.bar.add_task(step.name, total=None, detail="starting")

    def progress(self, step: Step, text: str) -> None:
        with self.lock:
            self.latest[step.name] = text
            if self.bar is not None:
                self.bar.update(self.tasks[step.name], detail=f"[dim]{escape(text)}[/]")

    def finished(self, step: Step, seconds: float) -> None:
        self._end(step, f"done in {seconds:.0f} s", "[green]✓[/]")

    def failed(self, step: Step, error: BaseException, seconds: float) -> None:
        self._end(step, f"FAILED after {seconds:.0f} s: {error}", "[red]✗[/]")

    def _end(self, step: Step, text: str, mark: str) -> None:
        with self.lock:
            self.running.discard(step.name)
            if self.bar is not None:
                task = self.tasks[step.name]
                self.bar.update(task, detail=f"{mark} {escape(text)}", total=1, completed=1)
                self.bar.stop_task(task)
            else:
                self._line(f"{step.name}: {text}")
