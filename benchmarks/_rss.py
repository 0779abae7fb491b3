"""Process memory as the benchmarks read it: resident set size from /proc, optionally after
``malloc_trim(0)`` (live memory rather than what the allocator keeps cached)."""
from __future__ import annotations

import ctypes
import gc
import os
from typing import Optional

_PAGE = os.sysconf("SC_PAGE_SIZE")
try:
    _LIBC: Optional[ctypes.CDLL] = ctypes.CDLL("libc.so.6")
except OSError:
    _LIBC = None


def rss() -> int:
    """Resident set size (bytes)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def trimmed_rss() -> int:
    """RSS after a GC pass and ``malloc_trim(0)``."""
    gc.collect()
    if _LIBC is not None:
        try:
            _LIBC.malloc_trim(0)
        except AttributeError:
            pass
    return rss()
