"""Machine facts in words: what diffperf recorded of a process's settings, as data, put into sentences."""

from __future__ import annotations

from typing import Mapping


def allocator_text(allocator: Mapping | str) -> str:
    """diffperf.measure.process.fix_allocator's record as one line (a line already, in runs saved before it was data)."""
    if isinstance(allocator, str):
        return allocator
    if not allocator.get("fixed"):
        return f"{allocator.get('libc') or 'unknown libc'}: allocator left as it is"
    return (f"{allocator['libc']}: mmap threshold {allocator['mmap_threshold'] >> 20} MiB, "
            f"trim threshold {allocator['trim_threshold'] >> 20} MiB (fixed)")


def process_settings(run) -> list[str]:
    """The process settings a run recorded (diffperf.measure.process), in words; empty when it recorded none."""
    info = run.machine_info.get("diffperf")
    settings = info.get("process") if isinstance(info, Mapping) else None
    if not isinstance(settings, Mapping):
        return []
    words = [f"allocator: {allocator_text(settings['allocator'])}"] if settings.get("allocator") else []
    if "cudnn_benchmark" in settings:
        words.append(f"cuDNN autotuner {'on' if settings['cudnn_benchmark'] else 'off'}")
    return words
