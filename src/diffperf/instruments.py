"""Measurement back-ends: one small interface, one class per device type.

An instrument synchronises the device (so a timed call ends when the work ends), names the
hardware, and measures a call's peak memory growth.
"""

from __future__ import annotations

import ctypes
import gc
import platform
import resource
from pathlib import Path

import torch


class CpuInstrument:
    """The CPU: nothing to synchronise; peak memory is the process's peak resident-set growth."""

    def __init__(self, device: torch.device):
        self.device = device

    def synchronize(self) -> None:
        pass

    def hardware(self) -> dict:
        return {
            "device_type": "cpu",
            "device_name": cpu_model(),
            "device_count": 1,
            "threads": torch.get_num_threads(),
        }

    def peak_memory_growth(self, call) -> int | None:
        """Peak RSS during ``call`` minus RSS before it (Linux resets the peak via clear_refs).

        Freed heap is handed back to the system first (glibc's malloc_trim), so the growth counts
        what the call needs rather than what earlier calls left cached.
        """
        gc.collect()
        _malloc_trim()
        try:
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current VmRSS
        except OSError:
            return None
        before = _status_kib("VmRSS")
        call()
        return (_status_kib("VmHWM") - before) * 1024


class CudaInstrument:
    """A CUDA GPU: synchronise before reading a clock; peak allocated memory from the allocator."""

    def __init__(self, device: torch.device):
        self.device = device

    def synchronize(self) -> None:
        torch.cuda.synchronize(self.device)

    def hardware(self) -> dict:
        properties = torch.cuda.get_device_properties(self.device)
        return {
            "device_type": "cuda",
            "device_name": properties.name,
            "device_count": torch.cuda.device_count(),
            "total_memory": properties.total_memory,
            "capability": f"{properties.major}.{properties.minor}",
            "cuda": torch.version.cuda,
        }

    def peak_memory_growth(self, call) -> int:
        """max_memory_allocated during ``call`` minus what was allocated before it."""
        self.synchronize()
        torch.cuda.reset_peak_memory_stats(self.device)
        before = torch.cuda.memory_allocated(self.device)
        call()
        self.synchronize()
        return torch.cuda.max_memory_allocated(self.device) - before


def make_instrument(device: torch.device):
    return CudaInstrument(device) if device.type == "cuda" else CpuInstrument(device)


def cpu_model() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what the platform module says."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _malloc_trim() -> None:
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
