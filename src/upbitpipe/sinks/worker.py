"""One long-lived daemon thread that runs blocking calls for an event loop, one at a time.

The lake sink's commits (pypaimon is blocking) run here. One thread for the sink's life,
not one per commit: a new thread per commit (every 5 s at the default interval) gave each
commit a fresh stack and thread state and let glibc's malloc hand the commit's allocations
to whichever arena the new thread got. A daemon thread, unlike ``asyncio.to_thread``'s
pool: interpreter exit does not wait for a call still running at a bounded shutdown.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable

_Job = tuple[Callable[[], None], asyncio.AbstractEventLoop, "asyncio.Future[None]"]


class DaemonWorker:
    """Runs :meth:`submit`'s calls in order on one daemon thread (started at the first call).

    :meth:`close` lets the thread end after the calls already submitted, without waiting
    for them; a later :meth:`submit` starts a new thread.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, fn: Callable[[], None]) -> asyncio.Future[None]:
        """``fn()`` on the worker thread, as a future of the running loop."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._thread is None or not self._thread.is_alive():
                self._jobs = queue.SimpleQueue()
                self._thread = threading.Thread(
                    target=self._run, args=(self._jobs,), name=self.name, daemon=True
                )
                self._thread.start()
            self._jobs.put((fn, loop, future))
        return future

    def close(self) -> None:
        """The thread ends once the calls submitted so far are done (not awaited here)."""
        with self._lock:
            if self._thread is not None:
                self._jobs.put(None)
                self._thread = None

    @property
    def thread(self) -> threading.Thread | None:
        """The current worker thread (None before the first call and after :meth:`close`)."""
        return self._thread

    @staticmethod
    def _run(jobs: queue.SimpleQueue[_Job | None]) -> None:
        while (job := jobs.get()) is not None:
            fn, loop, future = job
            error: BaseException | None = None
            try:
                fn()
            except BaseException as exc:
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, future, error)
            except RuntimeError:  # the loop is closed: the process is exiting
                pass
            del job, fn, future, error


def _settle(future: asyncio.Future[None], error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(None)
