"""Process-wide memory behaviour for the large-volume science paths.

Every numpy/torch temporary of a clinical CT is tens to hundreds of MB. glibc serves such
blocks with mmap and returns them to the kernel on free, so the next one is faulted in again,
page by page. In a VM whose memory the host backs lazily, a fault costs tens of
microseconds: on this 2-core machine the teacher path on a 512 x 512 x 300 CT took 26.1 s
with 1.72 M page faults; keeping freed memory in the heap for reuse took it to 17.6 s and
0.64 M faults, for a peak RSS of 3.8 GB instead of 2.2 GB (benchmarks/bench_segment_ct.py).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

# mallopt parameters (malloc.h)
M_TRIM_THRESHOLD = -1
M_TOP_PAD = -2
M_MMAP_THRESHOLD = -3
LARGEST_HEAP_BLOCK = 2**31 - 1  # bytes; blocks above this still use mmap
TOP_PAD = 512 * 2**20  # grow the heap in large steps


def keep_freed_memory() -> bool:
    """Ask glibc to serve large blocks from the heap and keep freed memory for reuse.
    Returns False where that is not possible (not glibc); nothing changes then."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    settings = (
        (M_MMAP_THRESHOLD, LARGEST_HEAP_BLOCK),
        (M_TRIM_THRESHOLD, LARGEST_HEAP_BLOCK),
        (M_TOP_PAD, TOP_PAD),
    )
    return all(mallopt(parameter, value) == 1 for parameter, value in settings)
