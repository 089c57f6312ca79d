"""Keep large numpy temporaries in the process heap (glibc malloc settings).

A golden training step (and, less so, a float one) makes hundreds of int64 temporaries of 0.1 to 2 MB
(an Adam update of the 400-300 networks works on vectors of ~130 000
weights). glibc serves blocks that size with mmap, or gives the freed top of
the heap back to the kernel, so each temporary is fresh memory and every page
of it faults on first touch: in one measurement the Adam unit's moment
updates spent over 80 % of their time in page faults. Raising the mmap and
trim thresholds lets freed blocks be reused instead.

Process-wide and idempotent; the memory kept is bounded by the largest
working set (tens of MB here). Skipped where libc is not glibc, and where the
user has set glibc's own MALLOC_* variables (their choice wins).
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3
_MMAP_THRESHOLD = 32 << 20      # glibc's largest allowed value on 64-bit
_TRIM_THRESHOLD = 512 << 20
_TOP_PAD = 64 << 20
_done: bool | None = None


def keep_temporaries_in_heap() -> bool:
    """Apply the settings once; True when they are in effect."""
    global _done
    if _done is not None:
        return _done
    _done = False
    if any(k.startswith("MALLOC_") for k in os.environ):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):   # not glibc (musl, macOS, Windows): nothing to tune
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    _done = all(mallopt(param, value) == 1 for param, value in
                ((_M_MMAP_THRESHOLD, _MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD), (_M_TOP_PAD, _TOP_PAD)))
    return _done
