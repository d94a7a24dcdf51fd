"""A run's untimed probes, each made once: a case's peak memory growth and FLOPs per call, the device's matmul peak.

The latency case makes the first two on warm-up calls (diffperf.cases.latency.WarmUp): each probe makes one call
of what it is given every time it is asked, and measures it the first time only, so a case whose variant or
reference was probed before (another scenario's case, a variant's reference) still gets its warm-up call.
"""

from __future__ import annotations

import torch

from diffperf.measure.flops import CallFlops, MatmulPeak, count_call_flops, datasheet_peak, measure_matmul_peak


class Probes:
    """The probes of one run on ``device``, through its ``instrument`` (diffperf.measure.instruments)."""

    def __init__(self, device: torch.device, instrument):
        self.device = device
        self.instrument = instrument
        self._peak_memory: dict[tuple[str, str], int | None] = {}
        self._flops: dict[tuple[str, str], CallFlops] = {}
        self._matmul_peaks: dict[str, MatmulPeak] = {}  # by precision

    def peak_memory_growth(self, name: str, scenario_name: str, call) -> int | None:
        """Peak memory growth of one warm call of ``name`` (a variant, or the yardstick) on a scenario.

        Makes one call of ``call`` each time, measured the first time."""
        key = (name, scenario_name)
        if key not in self._peak_memory:
            self._peak_memory[key] = self.instrument.peak_memory_growth(call)
        else:
            call()
        return self._peak_memory[key]

    def call_flops(self, variant_name: str, scenario_name: str, pipeline, every_step: bool) -> CallFlops:
        """FLOPs of one call of a variant's timed ``pipeline`` on a scenario, per stage (``every_step``: the variant's
        work changes from step to step, so every UNet call is counted).

        Makes one call of ``pipeline`` each time, counted the first time."""
        key = (variant_name, scenario_name)
        if key not in self._flops:
            self._flops[key] = count_call_flops(pipeline, every_step=every_step)
        else:
            pipeline()
        return self._flops[key]

    def matmul_peak(self, precision: str) -> MatmulPeak:
        """The device's dense matmul peak at ``precision``, measured once (and its datasheet figure)."""
        if precision not in self._matmul_peaks:
            datasheet = None
            if self.device.type == "cuda":
                datasheet = datasheet_peak(self.instrument.hardware()["device_name"], precision)
            self._matmul_peaks[precision] = measure_matmul_peak(self.device, precision, self.instrument.synchronize,
                                                                datasheet)
        return self._matmul_peaks[precision]

    def matmul_peaks_json(self) -> dict:
        """The matmul peaks measured so far, by precision, for the run's ``machine_info``."""
        return {precision: peak.to_json() for precision, peak in self._matmul_peaks.items()}
