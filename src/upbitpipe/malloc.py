"""A fixed glibc mmap threshold, so a long-running collector's RSS stays flat.

glibc's malloc serves a block of at least ``M_MMAP_THRESHOLD`` bytes (128 KiB at start)
with its own ``mmap``, returned to the system when freed. But the threshold is dynamic:
each such block freed raises it to the block's size (up to 32 MiB). The collector's dedup
window keeps its keys in Python sets of up to 4 MiB that are dropped and rebuilt every
generation; after the first one is freed, the next ones come from the main heap instead,
and the holes they leave are split by small allocations, so the heap's high-water mark -
and the RSS - rose in 2-4 MiB steps (a lake collector at 200 markets, 1,000 msgs/s: heap
24 -> 40 MB in 10 minutes; with the threshold fixed, 29-31 MB). Setting the threshold
explicitly turns the dynamic adjustment off: blocks of 1 MiB or more are always mapped
and unmapped.

Only on glibc; a threshold the user set (``MALLOC_MMAP_THRESHOLD_`` or
``GLIBC_TUNABLES=glibc.malloc.mmap_threshold=...``) is left alone.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_MMAP_THRESHOLD = -3  # mallopt parameter number (malloc.h)
MMAP_THRESHOLD = 1 << 20


def user_set_threshold(env: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether the environment already sets glibc's mmap threshold."""
    return "MALLOC_MMAP_THRESHOLD_" in env or "mmap_threshold" in env.get("GLIBC_TUNABLES", "")


def fix_mmap_threshold(threshold: int = MMAP_THRESHOLD) -> bool:
    """Set glibc's mmap threshold to ``threshold`` bytes (once per process is enough;
    calling again is harmless). True if it was set."""
    if not sys.platform.startswith("linux") or user_set_threshold():
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, threshold))
