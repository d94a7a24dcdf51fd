"""Measurement back-ends: one small interface, one class per device type.

An instrument synchronises the device (so a timed call ends when the work ends), names the
hardware, and measures a call's peak memory growth.
"""

from __future__ import annotations

import platform
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

    def peak_memory_growth(self, call) -> int:
        """Peak bytes of tensor memory live during ``call`` beyond what was live before it.

        Read from PyTorch's own record of every allocation and release of the call, in order
        (``torch.profiler`` with ``profile_memory``; the event tree its memory profiler reads), so
        the peak is exact and the same in every process, like CUDA's ``max_memory_allocated``. It
        neither trims the heap nor reads the resident set, which depend on the allocator's history.
        """
        from torch._C._profiler import _EventType
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as profiler:
            call()
        changes = []
        pending = list(profiler.profiler.kineto_results.experimental_event_tree())
        while pending:
            node = pending.pop()
            if node.tag == _EventType.Allocation:
                changes.append((node.start_time_ns, node.extra_fields.alloc_size))
            pending.extend(node.children)
        live = peak = 0
        for _, change in sorted(changes):
            live += change
            peak = max(peak, live)
        return peak


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
