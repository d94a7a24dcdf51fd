"""Process settings: glibc's adaptive thresholds are fixed before models are built."""

import ctypes
import platform

import pytest

from diffperf.measure import process


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's mallopt")
def test_allocator_thresholds_are_fixed_on_glibc():
    text = process.fix_allocator()
    assert text.startswith("glibc: mmap threshold 32 MiB, trim threshold 64 MiB")
    # mallopt returns 1 for a value glibc accepts: the fixed threshold is within its limits.
    assert ctypes.CDLL(None).mallopt(process.M_MMAP_THRESHOLD, process.MMAP_THRESHOLD) == 1


def test_off_glibc_nothing_is_changed(monkeypatch):
    monkeypatch.setattr(process.platform, "libc_ver", lambda: ("musl", "1.2"))
    assert process.fix_allocator() == "not glibc (musl): allocator left as it is"


def test_settings_are_applied_once_and_described(monkeypatch):
    monkeypatch.setattr(process, "_applied", None)
    calls = []
    monkeypatch.setattr(process, "fix_allocator", lambda: calls.append(1) or "fixed")
    assert process.steady_process("cpu") == {"allocator": "fixed"}
    assert process.steady_process("cpu") == {"allocator": "fixed"}
    assert calls == [1]
