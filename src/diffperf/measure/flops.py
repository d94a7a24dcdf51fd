"""FLOPs of one pipeline call per stage, the device's dense matmul peak, and the throughput between them.

Numbers only: :mod:`diffperf.render.throughput_text` puts them into words.

* **FLOPs** (:func:`count_call_flops`): one untimed call of a variant's :class:`TimedPipeline` under
  PyTorch's own counter, ``torch.utils.flop_counter.FlopCounterMode``, read at the same stage
  boundaries the stage times use (the pipeline clock's marks), so the text encoder's, the UNet's
  and the VAE decoder's FLOPs each fall in their stage. The denoising loop's first UNet call is
  counted and multiplied by the loop's calls, unless a speed-up changes the work from step to step. The counter counts matmuls, convolutions
  and attention (QK^T and AV, 2 FLOPs per multiply-add); elementwise work, normalisation and the
  scheduler count nothing. Its formulas cover the CUDA attention kernels but not the CPU's fused
  one (``_scaled_dot_product_flash_attention_for_cpu``): :data:`EXTRA_FORMULAS` adds the same
  formula for it, so SDPA and the classic attention processor count alike on every device.
* **Peak** (:func:`measure_matmul_peak`): the best rate of a dense square matmul at the precision,
  in this process on this device, sized until one call takes 50 ms on the CPU (at most 2048: a
  0.2-second call on two cores, about a second in all) or 2 ms on CUDA (at most 8192, synchronised).
* **Datasheet** (:func:`datasheet_peak`): NVIDIA's dense (no sparsity) figure for common GPUs.
* **Throughput** (:class:`Throughput`): FLOPs / median time of each stage of the timed rounds, and
  of the whole call, with its fraction of the measured peak (and of the datasheet's).
"""

from __future__ import annotations

import contextlib
import math
import re
import time
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from diffperf.measure.timing import STAGES

# (stage, the clock mark that starts it, the mark that ends it): diffperf.measure.timing.StageClock.
STAGE_BOUNDS = (("text_encoding", "start", "encoded"), ("denoising", "encoded", "denoised"),
                ("decoding", "denoised", "end"))
CALL = "call"  # the whole call, beside the stages
PRECISIONS = {"float32": torch.float32, "tf32": torch.float32, "float16": torch.float16,
              "bfloat16": torch.bfloat16}


def attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """QK^T and AV of attention over (batch, heads, tokens, head_dim) tensors, 2 FLOPs per multiply-add
    (the formula torch.utils.flop_counter uses for its CUDA attention kernels)."""
    batch, heads, queries, head_dim = query_shape
    keys = key_shape[-2]
    return 2 * batch * heads * queries * keys * (head_dim + value_shape[-1])


_CPU_ATTENTION = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
EXTRA_FORMULAS = {_CPU_ATTENTION: attention_flops} if _CPU_ATTENTION is not None else {}


def flop_counter() -> FlopCounterMode:
    """PyTorch's counter, silent, with the CPU attention formula added."""
    return FlopCounterMode(display=False, custom_mapping=EXTRA_FORMULAS)


# --------------------------------------------------------------------------- FLOPs of a call


@dataclass(frozen=True)
class CallFlops:
    """FLOPs of one pipeline call, per stage, and how many UNet calls its denoising loop made."""

    stages: dict[str, int]
    unet_calls: int

    @property
    def total(self) -> int:
        return sum(self.stages.values())

    @property
    def unet_per_call(self) -> int | None:
        """FLOPs of one UNet call (a batch of 2 x images under classifier-free guidance)."""
        return self.stages["denoising"] // self.unet_calls if self.unet_calls else None

    def to_json(self) -> dict:
        return {**self.stages, "total": self.total, "unet_calls": self.unet_calls,
                "unet_per_call": self.unet_per_call}


class _Segments:
    """FLOPs counted only while switched on, summed over every stretch it was on."""

    def __init__(self):
        self.total = 0
        self._counter: FlopCounterMode | None = None

    def on(self) -> None:
        self._counter = flop_counter()
        self._counter.__enter__()

    def off(self) -> None:
        if self._counter is not None:
            self._counter.__exit__(None, None, None)
            self.total += self._counter.get_total_flops()
            self._counter = None


class _CountingClock:
    """A TimedPipeline's clock that switches each stage's counter at the stage boundaries.

    The denoising counter follows the stage marks only when ``whole_loop``; otherwise the UNet's
    hooks switch it (:func:`count_call_flops`).
    """

    def __init__(self, clock, whole_loop: bool):
        self.clock = clock
        self.stages = {stage: _Segments() for stage in STAGES}
        self.whole_loop = whole_loop

    def mark(self, name: str) -> None:
        self.clock.mark(name)
        for stage, start, end in STAGE_BOUNDS:
            if name == end and (stage != "denoising" or self.whole_loop):
                self.stages[stage].off()
        for stage, start, end in STAGE_BOUNDS:
            if name == start and (stage != "denoising" or self.whole_loop):
                self.stages[stage].on()

    def close(self) -> None:
        """Switch every counter off (a call that raised leaves no counter on)."""
        for segments in self.stages.values():
            segments.off()

    def durations(self) -> dict:
        return self.clock.durations()


@contextlib.contextmanager
def _eager():
    """Compiled modules run their Python code (torch.compile's force_eager stance), so the counter sees every op."""
    set_stance = getattr(torch.compiler, "set_stance", None)
    with set_stance("force_eager") if set_stance is not None else contextlib.nullcontext():
        yield


@contextlib.contextmanager
def _first_call_counted(unet: torch.nn.Module, segments: _Segments):
    """Count the first call of ``unet`` in ``segments``; yields the list of calls made (one entry each)."""
    calls: list[int] = []

    def before(module, args):
        if not calls:
            segments.on()

    def after(module, args, output):
        if not calls:
            segments.off()
        calls.append(1)

    handles = [unet.register_forward_pre_hook(before), unet.register_forward_hook(after)]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def count_call_flops(timed, every_step: bool = False) -> CallFlops:
    """FLOPs of one call of ``timed`` (a :class:`diffperf.measure.timing.TimedPipeline`), per stage.

    The call is untimed: its stage times are not kept. The text encoder and the decoder are counted
    whole. The denoising loop makes the same UNet call at every step (same shapes, same work; the
    scheduler's arithmetic counts nothing), so only the loop's first UNet call is counted and
    multiplied by the number of calls: the counter dispatches every operator through Python, which
    on the CPU profile's small models costs several times the work itself. ``every_step`` counts
    the whole loop instead, for speed-ups whose steps differ (``SpeedUp.same_every_step``:
    DeepCache); so does a pipeline without a ``unet`` module.
    """
    unet = getattr(timed.pipe, "unet", None)
    whole_loop = every_step or not isinstance(unet, torch.nn.Module)
    clock = timed.clock
    timed.clock = counting = _CountingClock(clock, whole_loop)
    denoising = counting.stages["denoising"]
    try:
        with _eager(), contextlib.nullcontext([]) if whole_loop else _first_call_counted(unet, denoising) as calls:
            timed()
    finally:
        counting.close()
        timed.clock = clock
    timed.stage_history.pop()  # not a timed round
    stages = {stage: segments.total for stage, segments in counting.stages.items()}
    if not whole_loop:
        stages["denoising"] *= len(calls)
    return CallFlops(stages, int(timed.pipe.num_timesteps))


# --------------------------------------------------------------------------- the peak beside it

# Dense (no sparsity) peak TFLOP/s. NVIDIA's datasheets give the tensor-core figures with 2:4
# sparsity; the dense figure is half of it. A10G: AWS's variant of the A10, with no NVIDIA
# datasheet: the figures of Baseten's A10 vs A10G comparison (baseten.co/blog/nvidia-a10-vs-a10g-
# for-ml-model-inference).
DATASHEET_TFLOPS: dict[str, dict[str, float]] = {
    "H100 SXM": {"float32": 67.0, "tf32": 494.5, "float16": 989.5, "bfloat16": 989.5},
    "H100 PCIe": {"float32": 51.0, "tf32": 378.0, "float16": 756.5, "bfloat16": 756.5},
    "H200 SXM": {"float32": 67.0, "tf32": 494.5, "float16": 989.5, "bfloat16": 989.5},
    "A100": {"float32": 19.5, "tf32": 156.0, "float16": 312.0, "bfloat16": 312.0},
    "L40S": {"float32": 91.6, "tf32": 183.0, "float16": 362.05, "bfloat16": 362.05},
    "L4": {"float32": 30.3, "tf32": 60.0, "float16": 121.0, "bfloat16": 121.0},
    "A10G": {"float32": 35.0, "tf32": 35.0, "float16": 70.0, "bfloat16": 70.0},
}
# How CUDA names them (torch.cuda.get_device_properties().name), first match wins; None: a
# variant the table leaves out (the NVL boards run at other clocks and powers).
_DEVICE_PATTERNS = (
    (r"H100.*NVL", None), (r"H100.*PCIe", "H100 PCIe"), (r"H100", "H100 SXM"),
    (r"H200.*NVL", None), (r"H200", "H200 SXM"), (r"A100", "A100"), (r"L40S", "L40S"), (r"\bL4\b", "L4"),
    (r"A10G", "A10G"),
)


def datasheet_device(device_name: str) -> str | None:
    """The :data:`DATASHEET_TFLOPS` entry of a CUDA device name, or None."""
    for pattern, entry in _DEVICE_PATTERNS:
        if re.search(pattern, device_name, re.IGNORECASE):
            return entry
    return None


def datasheet_peak(device_name: str, precision: str) -> float | None:
    """The datasheet's dense peak in FLOP/s of the device at ``precision``, or None when not in the table."""
    entry = datasheet_device(device_name)
    return None if entry is None else DATASHEET_TFLOPS[entry][precision] * 1e12


def precision_of(dtype: str, tf32_matmul: bool, device_type: str) -> str:
    """The matmul precision a variant computes at: its dtype, or ``tf32`` for fp32 with TF32 matmuls on CUDA."""
    return "tf32" if dtype == "float32" and tf32_matmul and device_type == "cuda" else dtype


@dataclass(frozen=True)
class MatmulPeak:
    """The best rate of a dense ``size`` x ``size`` matmul at ``precision``, measured in this process."""

    precision: str
    flops_per_second: float
    size: int
    datasheet: float | None = None  # FLOP/s, dense (CUDA devices in DATASHEET_TFLOPS)

    def to_json(self) -> dict:
        return {"precision": self.precision, "measured": self.flops_per_second, "matmul_size": self.size,
                "datasheet": self.datasheet}


def measure_matmul_peak(device: torch.device, precision: str, synchronize, datasheet: float | None = None,
                        repeats: int = 3) -> MatmulPeak:
    """Time dense square matmuls at ``precision`` on ``device``: the best of ``repeats`` timings.

    The size doubles from 256 until one call takes at least 50 ms on the CPU (2 ms on CUDA) or
    reaches 2048 (8192 on CUDA); each timing then runs enough calls for that time, between
    synchronisations. TF32 is switched on for ``tf32`` only, and restored.
    """
    cuda = device.type == "cuda"
    min_seconds, max_size = (2e-3, 8192) if cuda else (50e-3, 2048)
    generator = torch.Generator(device=device).manual_seed(0)
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    try:
        size = 256
        while True:
            a, b = (torch.rand(size, size, generator=generator, device=device).to(PRECISIONS[precision])
                    for _ in range(2))
            seconds = _best_seconds(lambda: torch.mm(a, b), synchronize, repeats=1, calls=1)
            if seconds >= min_seconds or size >= max_size:
                break
            size *= 2
        calls = max(1, math.ceil(min_seconds / seconds))
        seconds = _best_seconds(lambda: torch.mm(a, b), synchronize, repeats=repeats, calls=calls)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous
    return MatmulPeak(precision, 2 * size ** 3 / seconds, size, datasheet)


def _best_seconds(call, synchronize, repeats: int, calls: int) -> float:
    """The shortest time per call over ``repeats`` timings of ``calls`` calls, after one untimed call."""
    call()
    best = math.inf
    for _ in range(repeats):
        synchronize()
        start = time.perf_counter()
        for _ in range(calls):
            call()
        synchronize()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


# --------------------------------------------------------------------------- throughput


@dataclass(frozen=True)
class Throughput:
    """A variant's FLOPs on a scenario against its timed rounds' median times, and the peak beside them."""

    variant: str
    scenario: str
    precision: str
    flops: CallFlops
    stage_seconds: dict[str, float]  # median of the timed rounds, per stage
    call_seconds: float | None  # median of the timed rounds
    peak: MatmulPeak | None

    def achieved(self) -> dict[str, float | None]:
        """FLOP/s per stage and of the whole call (``"call"``); None without a time or a FLOP."""
        pairs = [(stage, self.flops.stages[stage], self.stage_seconds.get(stage)) for stage in STAGES]
        pairs.append((CALL, self.flops.total, self.call_seconds))
        return {name: flops / seconds if flops and seconds else None for name, flops, seconds in pairs}

    def fraction_of(self, peak: float | None) -> dict[str, float | None] | None:
        """Each achieved rate over ``peak`` (FLOP/s); None without a peak."""
        if not peak:
            return None
        return {name: None if rate is None else rate / peak for name, rate in self.achieved().items()}

    def case_info(self) -> dict:
        """The ``extra_info`` keys a latency case records (what diffperf.render.throughput_text reads)."""
        return {"variant": self.variant, "scenario": self.scenario, "flops": self.flops.to_json(),
                "throughput": self.to_json()}

    def to_json(self) -> dict:
        """What a case records in ``extra_info["throughput"]`` (FLOP/s and fractions)."""
        peak = self.peak
        return {
            "precision": self.precision,
            "achieved": self.achieved(),
            "peak": peak.to_json() if peak is not None else None,
            "fraction_of_peak": self.fraction_of(peak.flops_per_second if peak else None),
            "fraction_of_datasheet": self.fraction_of(peak.datasheet if peak else None),
        }
