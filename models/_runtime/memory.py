"""Freed memory kept in the process for the next batch (glibc), so a forward pass does not fault its pages in again.

glibc serves a block over 128 KiB-32 MiB with its own ``mmap`` and gives it back to the system when freed, and
trims the heap's free top: every batch then maps its activations afresh (tens of MB: ResNet-50's first block in
bf16 is 51 MB at batch 32) and the kernel zeroes and faults in every page of them again. OpenVINO keeps its own
pool and does not pay this; torch's CPU allocator is plain ``malloc``. On the report's machine (2 cores under KVM)
it made the torch paths' forward 1.1x (int8, uint8 activations) to 2.1x (bf16 eager) slower.

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve every block from its heap (``M_MMAP_MAX`` 0) and to keep
what is freed (``M_TRIM_THRESHOLD`` 2 GiB): the process keeps its peak footprint for reuse, as jemalloc and
tcmalloc do. Once per process, when the first CPU runner is built; ``TOP5HUB_KEEP_MEMORY=0`` leaves glibc's
defaults. Elsewhere (macOS, Windows, musl) it does nothing.
"""

from __future__ import annotations

import ctypes
import logging
import sys

from ...settings import KEEP_MEMORY

logger = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
_M_MMAP_MAX = -4
_TRIM_THRESHOLD = 2**31 - 1  # the largest an int holds: freed memory is kept up to 2 GiB at the heap's top

_applied: bool | None = None  # None: not asked yet in this process


def keep_freed_memory() -> bool:
    """Keep freed memory for reuse (see the module), once per process; whether it is in effect."""
    global _applied
    if _applied is not None:
        return _applied
    _applied = False
    if not KEEP_MEMORY.get() or not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the C library this process runs on
    except (OSError, AttributeError):
        return False
    # musl and other C libraries answer 0 (not supported): nothing changes, nothing to undo.
    _applied = mallopt(_M_MMAP_MAX, 0) == 1 and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD) == 1
    if _applied:
        logger.debug("freed memory kept for reuse (mallopt: no mmap, trim threshold 2 GiB)")
    return _applied
