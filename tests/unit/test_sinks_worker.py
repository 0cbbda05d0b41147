"""The lake sink's commit thread: one long-lived daemon thread runs every call, in order."""

from __future__ import annotations

import asyncio
import threading

import pytest

from upbitpipe.sinks.worker import DaemonWorker


async def test_calls_run_in_order_on_one_daemon_thread() -> None:
    worker = DaemonWorker("test-worker")
    seen: list[tuple[int, int | None]] = []
    for i in range(5):
        await worker.submit(lambda i=i: seen.append((i, threading.get_ident())))
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()
    thread = worker.thread
    assert thread is not None and thread.daemon and thread.name == "test-worker"
    worker.close()
    thread.join(5)
    assert not thread.is_alive()


async def test_an_error_reaches_the_caller_and_the_thread_goes_on() -> None:
    worker = DaemonWorker("test-worker")

    def fail() -> None:
        msg = "disk full"
        raise OSError(msg)

    with pytest.raises(OSError, match="disk full"):
        await worker.submit(fail)
    ran = threading.Event()
    await worker.submit(ran.set)
    assert ran.is_set()
    worker.close()


async def test_close_does_not_wait_for_a_running_call_and_a_new_call_starts_a_thread() -> None:
    worker = DaemonWorker("test-worker")
    release = threading.Event()
    stuck = worker.submit(lambda: release.wait(10) and None)
    first = worker.thread
    worker.close()  # returns at once: the call is still running
    assert not stuck.done() and first is not None and first.is_alive()
    await worker.submit(lambda: None)  # a new thread, not queued behind the stuck call
    assert worker.thread is not first
    release.set()
    await asyncio.wait_for(stuck, 10)
    first.join(5)
    assert not first.is_alive()
    worker.close()
