"""The cost model: seconds of one pipeline call on a device class, from the call's counted work.

    seconds = (FLOPs / rate[precision] + denoiser calls x step_overhead) x (classic_attention if the
              variant's attention is the classic processor) + call_overhead

``rate`` is a sustained FLOP/s per precision class (``float32``, ``tf32``, ``half`` for fp16 and
bf16); ``step_overhead`` the time of each denoising step that does not grow with its FLOPs (kernel
launches, memory-bound normalisation and elementwise work); ``classic_attention`` the factor of the
classic attention processor, which writes the whole score matrix to memory, over SDPA; and
``call_overhead`` what a call costs beside its steps (Python, the tokenizers, the scheduler: the
CPU's tiny profile is mostly this). Numbers only: :mod:`diffperf.render.plan_text` words them.

The A100's rates are fitted (:func:`fit`, least squares on the log of the times) on published
single-change times and tested on the combined ones (:data:`PUBLISHED_TIMES`, ``fitted``), whose
work is counted on meta tensors at the published workload (:mod:`diffperf.plan.work`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

PRECISION_CLASSES = ("float32", "tf32", "half")


def precision_class(precision: str) -> str:
    """``float16`` and ``bfloat16`` share a rate (the same tensor cores); the others are their own."""
    return "half" if precision in ("float16", "bfloat16") else precision


@dataclass(frozen=True)
class PublishedTime:
    """A published end-to-end time of one call, with the workload and settings it was measured at."""

    gpu: str  # a device class of DEVICE_CLASSES
    family: str
    scenario: str  # the family's scenario whose prompt and scheduler it used
    steps: int
    images: int
    precision: str  # float32, tf32, float16, bfloat16 (or "float16+tf32": counted as its half precision)
    attention: str  # "classic" or "sdpa"
    seconds: float
    source: str
    fitted: bool  # True: the rates are fitted on it; False: held out, the model is tested on it

    @property
    def label(self) -> str:
        return f"{self.family} {self.images}x{self.steps} steps, {self.precision}, {self.attention}"


_SD1 = "SD v1.5, 512 px, DDIM (the source documents' A100 table)"
_SDXL_1 = "SDXL, 1024 px, batch 1, A100-80GB (diffusers' 'accelerate inference of text-to-image models' tutorial)"
_SDXL_4 = "SDXL, 1024 px, 4 images, A100-40GB (diffusers' SDXL post with PyTorch 2)"

PUBLISHED_TIMES = (
    PublishedTime("a100", "sd1", "astronaut", 50, 1, "float32", "classic", 5.27, _SD1, True),
    PublishedTime("a100", "sd1", "astronaut", 50, 1, "tf32", "classic", 4.14, _SD1, True),
    PublishedTime("a100", "sd1", "astronaut", 50, 1, "float16", "classic", 3.51, _SD1, True),
    PublishedTime("a100", "sd1", "astronaut", 50, 1, "float16+tf32", "classic", 3.41, _SD1, False),
    PublishedTime("a100", "sdxl", "astronaut-xl", 30, 1, "float32", "classic", 7.36, _SDXL_1, True),
    PublishedTime("a100", "sdxl", "astronaut-xl", 30, 1, "bfloat16", "classic", 4.63, _SDXL_1, True),
    PublishedTime("a100", "sdxl", "astronaut-xl", 30, 1, "bfloat16", "sdpa", 3.31, _SDXL_1, False),
    PublishedTime("a100", "sdxl", "astronaut-xl", 50, 4, "float32", "classic", 72.2, _SDXL_4, True),
    PublishedTime("a100", "sdxl", "astronaut-xl", 50, 4, "float16", "classic", 14.8, _SDXL_4, True),
    PublishedTime("a100", "sdxl", "astronaut-xl", 50, 4, "float16", "sdpa", 11.4, _SDXL_4, True),
)
"""../reference section "published GPU times": fitted on the single changes (fp32, TF32, fp16 or bf16, SDPA at
batch 4), tested on the combined ones (fp16 with TF32; bf16 with SDPA at batch 1)."""


@dataclass(frozen=True)
class Rates:
    """A device class's cost model (module docstring), and where its numbers come from."""

    rates: dict[str, float]  # precision class -> sustained FLOP/s
    step_overhead: float  # seconds per denoiser call
    classic_attention: float = 1.0  # time factor of the classic attention processor
    call_overhead: float = 0.0  # seconds per call beside its steps

    def call_seconds(self, flops: float, denoiser_calls: int, precision: str, classic: bool = False) -> float:
        """Predicted seconds of one call of ``flops`` FLOPs with ``denoiser_calls`` denoising calls."""
        rate = self.rates[precision_class(precision)]
        seconds = flops / rate + denoiser_calls * self.step_overhead
        return seconds * (self.classic_attention if classic else 1.0) + self.call_overhead

    def scaled(self, compute: dict[str, float], bandwidth: float) -> "Rates":
        """Another device's model from this one's: each rate times its ratio of datasheet peaks, the overheads over
        the ratio of memory bandwidth (what bounds the work that does not grow with FLOPs)."""
        return Rates({name: rate * compute[name] for name, rate in self.rates.items()},
                     self.step_overhead / bandwidth, self.classic_attention, self.call_overhead / bandwidth)

    def to_json(self) -> dict:
        return {"rates": dict(self.rates), "step_overhead": self.step_overhead,
                "classic_attention": self.classic_attention, "call_overhead": self.call_overhead}


@dataclass(frozen=True)
class Observation:
    """One measured (or published) call: its work and settings, and its seconds."""

    flops: float
    denoiser_calls: int
    precision: str
    classic: bool
    seconds: float


def fit(observations: list[Observation], call_overhead: bool = False) -> Rates:
    """Least squares on the log of the times: the rate of every precision class the observations use, the step
    overhead, the classic-attention factor when both kinds are observed, and (``call_overhead``) a fixed cost per
    call. Raises a one-line ValueError with too few observations for the parameters."""
    from scipy.optimize import least_squares

    classes = sorted({precision_class(item.precision) for item in observations})
    both_attentions = len({item.classic for item in observations}) == 2
    parameters = len(classes) + 1 + both_attentions + call_overhead
    if len(observations) < parameters:
        raise ValueError(f"{len(observations)} observations cannot fit {parameters} parameters of the cost model")

    def model(vector) -> Rates:
        values = iter(vector)
        rates = {name: math.exp(next(values)) for name in classes}
        step = math.exp(next(values))
        classic = math.exp(next(values)) if both_attentions else 1.0
        fixed = math.exp(next(values)) if call_overhead else 0.0
        return Rates(rates, step, classic, fixed)

    def residuals(vector):
        rates = model(vector)
        return [math.log(rates.call_seconds(item.flops, item.denoiser_calls, item.precision, item.classic)
                         / item.seconds) for item in observations]

    largest = max(item.flops / item.seconds for item in observations)
    start = [math.log(largest)] * len(classes) + [math.log(0.01)] + [0.0] * both_attentions \
        + [math.log(0.01)] * call_overhead
    return model(least_squares(residuals, start).x)


@dataclass(frozen=True)
class DeviceClass:
    """A kind of device the plan predicts for: its cost model and the times beside the calls."""

    name: str  # a100, h100, h200, cpu
    description: str
    device_type: str  # cuda or cpu
    model: Rates
    origin: str  # how the model's numbers were obtained
    startup_seconds: float  # imports, collection, device initialisation and the end of the run
    build_seconds_per_parameter: float  # building a component with random weights (and casting it)
    case_overhead: float = 0.0  # per latency case beside its calls (probes, matmul peak), in calls of its variant
    continued_share: float = 0.5  # of the cases with an early look, those that go on to their most rounds
    compile_seconds: float = 0.0  # the first compiled call's compilation, per compiled variant and workload
    memory_bytes: int | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
