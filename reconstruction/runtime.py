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
import os
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


INFERENCE_DTYPE_ENV = "KNEE_INFERENCE_DTYPE"
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_fast_bfloat16(cpuinfo: str | None = None) -> bool:
    """True when the CPU multiplies bfloat16 natively (AVX512-BF16 or AMX); elsewhere torch
    emulates it, slower than float32. Reads /proc/cpuinfo (Linux); False if unreadable."""
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="ascii", errors="ignore") as handle:
                cpuinfo = handle.read()
        except OSError:
            return False
    flags = next((line for line in cpuinfo.splitlines() if line.startswith("flags")), "")
    return any(flag in flags.split() for flag in BF16_CPU_FLAGS)


def inference_dtype_name(environ: dict[str, str] | None = None) -> str:
    """ "bfloat16" or "float32" for the X-ray network's point products: the environment's
    KNEE_INFERENCE_DTYPE if set, else bfloat16 where the CPU does it natively."""
    environ = os.environ if environ is None else environ
    chosen = environ.get(INFERENCE_DTYPE_ENV, "").strip().lower()
    if chosen in ("float32", "bfloat16"):
        return chosen
    if chosen:
        raise ValueError(f"{INFERENCE_DTYPE_ENV} must be float32 or bfloat16, got {chosen!r}")
    return "bfloat16" if cpu_has_fast_bfloat16() else "float32"
