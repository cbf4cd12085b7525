"""Process-level settings the trackers run best with (no ROS, no torch imports).

Memory allocator. glibc's malloc serves blocks above M_MMAP_THRESHOLD (128 KiB at
start; it rises only after such a block has been freed) with a fresh mmap and
gives them back with munmap, and it returns a freed heap top above
M_TRIM_THRESHOLD to the system. A tracker allocates the same multi-megabyte
tensors every frame (search crops, feature maps), N times larger when targets or
search tiles go through the network as one batch, so by default each frame pays
page faults for memory it had a moment ago. Holding both thresholds at 32 MiB
(glibc's largest mmap threshold on 64-bit) keeps that memory in the process:
batched targets then run faster per target than one by one instead of within
the noise (docs/benchmarks/multi_target.md has the runs before and after). The
price is up to 32 MiB of freed memory kept in the heap, a constant, not a
growth (docs/benchmarks/soak.md).

`tune_malloc()` is called by every Tracker (core/tracking/base.py), once per
process; SIAM_TRACKER_MALLOC_TUNING=0 in the environment leaves the allocator as
it is. Other C libraries (musl) or systems: nothing is changed.
"""
from __future__ import annotations

import ctypes
import os
import sys
from typing import Optional

M_TRIM_THRESHOLD = -1       # glibc mallopt parameter numbers (malloc.h)
M_MMAP_THRESHOLD = -3
THRESHOLD_MIB = 32

_result: Optional[bool] = None


def tune_malloc(threshold_mib: int = THRESHOLD_MIB) -> bool:
    """Set glibc's mmap and trim thresholds (once per process). True when they were
    set, False when switched off, not glibc, or refused."""
    global _result
    if _result is not None:
        return _result
    _result = False
    if os.environ.get("SIAM_TRACKER_MALLOC_TUNING", "1").strip().lower() in ("0", "false", "no", "off"):
        return _result
    if not sys.platform.startswith("linux"):
        return _result
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return _result
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    size = int(threshold_mib) << 20
    _result = bool(mallopt(M_MMAP_THRESHOLD, size)) and bool(mallopt(M_TRIM_THRESHOLD, size))
    return _result
