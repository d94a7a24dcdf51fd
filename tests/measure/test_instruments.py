"""The CPU instrument's peak memory: exact, from PyTorch's own allocation events."""

import torch

from diffperf.measure.instruments import CpuInstrument


def test_cpu_peak_memory_is_the_most_tensor_memory_live_at_once():
    def call():
        a = torch.empty(1_000_000, dtype=torch.float32)  # 4 MB
        b = torch.empty(2_000_000, dtype=torch.float32)  # 8 MB: 12 MB live
        del a
        c = torch.empty(500_000, dtype=torch.float32)  # 2 MB: 10 MB live
        return b.numel() + c.numel()

    instrument = CpuInstrument(torch.device("cpu"))
    peaks = {instrument.peak_memory_growth(call) for _ in range(3)}
    assert len(peaks) == 1  # the same in every call: no allocator history in it
    (peak,) = peaks
    assert 12_000_000 <= peak < 12_100_000


def test_memory_live_before_the_call_does_not_count():
    kept = torch.empty(5_000_000)  # 20 MB allocated before the call and still live
    peak = CpuInstrument(torch.device("cpu")).peak_memory_growth(lambda: torch.empty(250_000).sum())
    assert 1_000_000 <= peak < 1_100_000
    assert kept.numel() == 5_000_000
