"""Settings that make one process measure like the next, applied before any model is built.

Processes differ in ways that move speed-up ratios by more than any within-process interval
admits (docs/gate.md, "Between processes"). What can be fixed inside the suite is fixed here, by
default, for every run:

* **The allocator.** glibc's malloc adapts its mmap threshold to the sizes a process has freed
  (from 128 KiB up to 32 MiB), so two processes serve the same tensor from the heap or from fresh,
  page-faulting mmaps depending on their history. A fixed threshold (``mallopt``) switches the
  adaptation off; a fixed trim threshold stops freed memory being handed back and faulted in
  again between calls. Off glibc (musl, macOS) nothing is changed and the run says so.
* **Kernel selection on GPUs.** cuDNN's autotuner (``torch.backends.cudnn.benchmark``) times
  candidate algorithms in each process and may pick different ones; it is switched off, so every
  process takes the same heuristic choice.

What was applied goes into the benchmark JSON's ``machine_info`` with the host fingerprint.
"""

from __future__ import annotations

import ctypes
import platform

# glibc's mallopt parameters (malloc.h) and the values the suite fixes.
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # the largest value glibc's adaptation reaches on 64-bit
TRIM_THRESHOLD = 64 * 1024 * 1024

_applied: dict | None = None


def steady_process(device_type: str) -> dict:
    """Apply the process settings once (later calls return what was applied) and describe them."""
    global _applied
    if _applied is None:
        _applied = {"allocator": fix_allocator()}
        if device_type == "cuda":
            import torch

            torch.backends.cudnn.benchmark = False
            _applied["cudnn_benchmark"] = False
    return dict(_applied)


def fix_allocator() -> dict:
    """Fix glibc's mmap and trim thresholds; what was done, as data (diffperf.render words it):
    ``{"libc": "glibc", "fixed": True, "mmap_threshold": bytes, "trim_threshold": bytes}``, or
    ``"fixed": False`` with the thresholds None where nothing was changed."""
    libc_name, _ = platform.libc_ver()
    left = {"libc": libc_name or platform.system(), "fixed": False, "mmap_threshold": None, "trim_threshold": None}
    if libc_name != "glibc":
        return left
    try:
        libc = ctypes.CDLL(None)
        fixed = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    except (OSError, AttributeError):
        fixed = 0
    if not fixed:
        return left
    return {"libc": "glibc", "fixed": True, "mmap_threshold": MMAP_THRESHOLD, "trim_threshold": TRIM_THRESHOLD}
