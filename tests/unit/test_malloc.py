"""glibc's mmap threshold, fixed: a large block freed no longer moves the next ones into
the heap (where their holes made the RSS of a long-running collector creep up)."""

from __future__ import annotations

import ctypes
import subprocess
import sys

import pytest

from upbitpipe.malloc import user_set_threshold

PROBE = """
import ctypes, sys
libc = ctypes.CDLL(None)
class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]
libc.mallinfo2.restype = Info
if sys.argv[1] == "fix":
    from upbitpipe.malloc import fix_mmap_threshold
    assert fix_mmap_threshold()
big = bytearray(3 << 20)
del big  # a mapped block freed: glibc's dynamic threshold rises to its size
before = libc.mallinfo2().hblks
block = bytearray(2 << 20)
print(libc.mallinfo2().hblks - before)
"""


def _has_mallinfo2() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "mallinfo2")
    except OSError:
        return False


@pytest.mark.skipif(not _has_mallinfo2(), reason="needs glibc >= 2.33 (mallinfo2)")
@pytest.mark.parametrize(("mode", "mapped"), [("default", "0"), ("fix", "1")])
def test_a_fixed_threshold_keeps_large_blocks_out_of_the_heap(mode: str, mapped: str) -> None:
    env = {"PATH": "/usr/bin:/bin"}  # no MALLOC_* / GLIBC_TUNABLES from the caller
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # 2 MiB after a 3 MiB block was freed: in the heap by default, mapped once fixed
    assert done.stdout.split()[-1] == mapped


def test_a_threshold_the_user_set_is_left_alone() -> None:
    assert user_set_threshold({"MALLOC_MMAP_THRESHOLD_": "65536"})
    assert user_set_threshold({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536"})
    assert not user_set_threshold({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2"})
    assert not user_set_threshold({})
