"""glibc's allocator tuned for the codec's short-lived deflate states (`tune_malloc`).

Its own module, importing ctypes alone: the `yuqing` command calls it before its commands load.
"""

from __future__ import annotations

import ctypes

# glibc's mallopt parameters (malloc.h).
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def tune_malloc() -> bool:
    """perf (issue 9): glibc hands each allocation over its mmap threshold (128 KiB at first)
    to the kernel and back, and gives the heap's top back past its trim threshold (128 KiB):
    every payload the codec seals or opens allocates and frees a deflate or inflate state of a
    few hundred KiB, so the heap shrank and grew again, with page faults, for each one
    (encrypt then decrypt of a small payload, 68 -> 26 us). Kept in the heap up to 4 MiB,
    trimmed past 64 MiB. Every process `yuqing.process.run` runs does it first (the worker,
    the API and the SMTP intake all seal payloads), and so does `yuqing audit` (it opens every
    payload of a history, and its replayers inherit it); elsewhere than glibc (musl, macOS)
    nothing is changed, and the return says whether it took."""
    try:
        libc = ctypes.CDLL(None)
        if not hasattr(libc, "gnu_get_libc_version"):
            return False
        mallopt = libc.mallopt
    except Exception:  # no C library to speak of (not POSIX): nothing to tune
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    took = mallopt(_M_MMAP_THRESHOLD, 4 * 1024 * 1024) == 1
    return mallopt(_M_TRIM_THRESHOLD, 64 * 1024 * 1024) == 1 and took
