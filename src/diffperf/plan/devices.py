"""The device classes a plan predicts for, as plain data: each one's cost model and the times beside its calls.

``a100`` is fitted on published times (:data:`diffperf.plan.costs.PUBLISHED_TIMES`; refitted by
``tests/plan/test_costs.py``, which also tests it on the held-out ones). ``h100`` and ``h200`` are
the A100's model scaled by datasheet ratios: each rate by the ratio of dense peaks at its precision,
the overheads by the ratio of memory bandwidth. No published H100 or H200 time tested them: a run
on one replaces them with a fit (``diffperf plan --fit-run``). ``cpu`` is fitted on a saved
``pytest perf`` run of a 2-core Intel Xeon host (the ``tiny`` profile), with ``--fit-run``; its start-up
holds the tiny components' builds (a fraction of a second), so it builds at no further cost.

On GPUs the times beside the calls are assumptions, each named in ``notes``; ``diffperf plan
--fit-run`` fits a device's own from a saved run.
"""

from __future__ import annotations

from diffperf.measure.flops import DATASHEET_TFLOPS
from diffperf.plan.costs import PRECISION_CLASSES, DeviceClass, Rates

# Memory bandwidth, TB/s (NVIDIA's datasheets): what scales the overheads between GPUs.
BANDWIDTH_TBPS = {"A100": 2.039, "H100 SXM": 3.35, "H200 SXM": 4.8}

A100_RATES = Rates(
    rates={"float32": 73.36e12, "tf32": 148.49e12, "half": 303.72e12},
    step_overhead=0.04715,
    classic_attention=1.4201,
)
"""Fitted on the published A100 times marked ``fitted`` (tests/plan/test_costs.py refits it)."""

_GPU_NOTES = (
    "build: components made with random weights on the GPU, about 1 s per billion parameters (assumed)",
    "start-up: imports, CUDA initialisation and the end of the run, 30 s (assumed)",
    "compile: 90 s per compiled variant and workload (assumed; torch.compile's default mode)",
    "early look: half the cases that have one go on to their most rounds (assumed)",
)


def _ratio(name: str) -> dict[str, float]:
    sheet, a100 = DATASHEET_TFLOPS[name], DATASHEET_TFLOPS["A100"]
    precision = {"float32": "float32", "tf32": "tf32", "half": "float16"}
    return {cls: sheet[precision[cls]] / a100[precision[cls]] for cls in PRECISION_CLASSES}


def _gpu(name: str, description: str, model: Rates, origin: str, memory: int) -> DeviceClass:
    return DeviceClass(name, description, "cuda", model, origin, startup_seconds=30.0,
                       build_seconds_per_parameter=1e-9, case_overhead=1.0, compile_seconds=90.0,
                       memory_bytes=memory, notes=_GPU_NOTES)


def _scaled(sheet: str) -> Rates:
    return A100_RATES.scaled(_ratio(sheet), BANDWIDTH_TBPS[sheet] / BANDWIDTH_TBPS["A100"])


DEVICE_CLASSES: dict[str, DeviceClass] = {
    "a100": _gpu("a100", "NVIDIA A100 80GB", A100_RATES,
                 "fitted on 8 published A100 times, tested on 2 held out (docs/getting-started.md)", 80 * 2**30),
    "h100": _gpu("h100", "NVIDIA H100 SXM", _scaled("H100 SXM"),
                 "the A100's model scaled by datasheet peaks and memory bandwidth (not fitted)", 80 * 2**30),
    "h200": _gpu("h200", "NVIDIA H200 SXM", _scaled("H200 SXM"),
                 "the A100's model scaled by datasheet peaks and memory bandwidth (not fitted)", 141 * 2**30),
    "cpu": DeviceClass(
        "cpu", "2-core x86-64 CPU (Intel Xeon, AVX-512)", "cpu",
        Rates(rates={"float32": 128e9, "half": 113e9}, step_overhead=0.00240, classic_attention=1.359,
              call_overhead=0.0611),
        "fitted on a saved pytest perf run of a 2-core Intel Xeon host (tiny profile, 15 latency cases; "
        "diffperf plan --fit-run)",
        startup_seconds=7.7, build_seconds_per_parameter=0.0, case_overhead=3.14, continued_share=0.4,
    ),
}


def device_class(name: str) -> DeviceClass:
    """The device class called ``name``; a one-line ValueError listing them otherwise."""
    try:
        return DEVICE_CLASSES[name.lower()]
    except KeyError:
        raise ValueError(f"unknown device class {name!r}: choose one of {', '.join(DEVICE_CLASSES)}") from None


def class_of(device_type: str, device_name: str = "") -> DeviceClass:
    """The class that predicts for a device of this type and name: the GPU named, else the A100's (the model
    fitted on published times), and ``cpu`` for any CPU."""
    if device_type != "cuda":
        return DEVICE_CLASSES["cpu"]
    for key in ("h200", "h100", "a100"):
        if key in device_name.lower():
            return DEVICE_CLASSES[key]
    return DEVICE_CLASSES["a100"]
