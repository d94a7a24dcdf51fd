"""Process settings: glibc's adaptive thresholds are fixed before models are built."""

import ctypes
import platform

import pytest

from diffperf.measure import process
from diffperf.render.machine_text import allocator_text


class RecordingLibc:
    """Stands in for the C library diffperf opens: records each ``mallopt(param, value)`` and accepts it."""

    def __init__(self, calls: list):
        self.calls = calls

    def mallopt(self, param: int, value: int) -> int:
        self.calls.append((param, value))
        return 1


def test_allocator_thresholds_are_fixed_by_the_process_settings(monkeypatch):
    """What diffperf's entry point calls, not what the test calls: without diffperf's mallopt calls this fails."""
    calls = []
    monkeypatch.setattr(process, "_applied", None)
    monkeypatch.setattr(process.platform, "libc_ver", lambda: ("glibc", "2.39"))
    monkeypatch.setattr(process.ctypes, "CDLL", lambda name: RecordingLibc(calls))
    settings = process.steady_process("cpu")
    assert calls == [(-3, 32 * 1024 * 1024), (-1, 64 * 1024 * 1024)]  # M_MMAP_THRESHOLD, M_TRIM_THRESHOLD (malloc.h)
    assert settings["allocator"] == {"libc": "glibc", "fixed": True, "mmap_threshold": 32 * 1024 * 1024,
                                     "trim_threshold": 64 * 1024 * 1024}
    assert allocator_text(settings["allocator"]) == "glibc: mmap threshold 32 MiB, trim threshold 64 MiB (fixed)"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_glibc_accepts_the_thresholds():
    # mallopt returns 1 for a value glibc accepts: the fixed thresholds are within its limits.
    libc = ctypes.CDLL(None)
    assert libc.mallopt(process.M_MMAP_THRESHOLD, process.MMAP_THRESHOLD) == 1
    assert libc.mallopt(process.M_TRIM_THRESHOLD, process.TRIM_THRESHOLD) == 1


def test_off_glibc_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(process.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert process.fix_allocator() == {"libc": "musl", "fixed": False, "mmap_threshold": None,
                                       "trim_threshold": None}
    assert allocator_text(process.fix_allocator()) == "musl: allocator left as it is"


def test_settings_are_applied_once_and_described(monkeypatch):
    monkeypatch.setattr(process, "_applied", None)
    calls = []
    monkeypatch.setattr(process, "fix_allocator", lambda: calls.append(1) or "fixed")
    assert process.steady_process("cpu") == {"allocator": "fixed"}
    assert process.steady_process("cpu") == {"allocator": "fixed"}
    assert calls == [1]
