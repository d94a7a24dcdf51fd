"""A device class's cost model fitted on a saved ``pytest perf`` run of that device (``diffperf plan --fit-run``).

Each latency case of the run gives one observation: the FLOPs and denoiser calls of its variant's
call (``extra_info["flops"]``, counted by the run) against the median of its timed calls. The fit
(:func:`diffperf.plan.costs.fit`) gives the rates, the step overhead and the fixed cost per call;
then, from each case's wall time (``extra_info["case_seconds"]``), the probes' cost in calls of the
variant (the median over the cases of what their wall time holds beyond their calls), the share of
the cases with an early look that went on past it (``extra_info["looks"]``), and from the
run's wall time (``machine_info["diffperf"]["wall_seconds"]``) the start-up: what the run took beyond
its latency cases and one call per similarity case.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from diffperf.plan.costs import Observation, Rates, fit


@dataclass(frozen=True)
class FittedDevice:
    """What a run tells of its device: the cost model, the probes' cost per case and the start-up."""

    model: Rates
    case_overhead: float  # in calls of the case's variant
    continued_share: float | None  # of the cases with an early look, those that went on (None: none had one)
    startup_seconds: float | None  # None: the run does not record its wall time
    cases: int


def fit_run(run: dict) -> FittedDevice:
    """Fit on a pytest-benchmark JSON document of ``pytest perf``; a one-line ValueError when it holds too few
    timed cases with counted FLOPs."""
    cases = [benchmark for benchmark in run.get("benchmarks", [])
             if (benchmark.get("extra_info") or {}).get("flops") and benchmark.get("stats", {}).get("data")]
    if not cases:
        raise ValueError("the run has no timed latency case with counted FLOPs: fit on a `pytest perf` run's JSON "
                         "(--benchmark-json) made without --benchmark-disable")
    observations = [Observation(info["flops"]["total"], info["flops"]["unet_calls"], info["dtype"],
                                "attention-classic" in (info.get("speedups") or []),
                                statistics.median(benchmark["stats"]["data"]))
                    for benchmark in cases for info in [benchmark["extra_info"]]]
    model = fit(observations, call_overhead=True)
    warmup = (run.get("machine_info", {}).get("diffperf") or {}).get("warmup", 0)
    overheads, latency_total = [], 0.0
    for benchmark in cases:
        info = benchmark["extra_info"]
        variant = statistics.median(benchmark["stats"]["data"])
        reference = info.get("reference_rounds") or []
        partner = statistics.median(reference) if reference else 0.0
        rounds = len(benchmark["stats"]["data"])
        calls = (warmup + rounds) * (variant + partner) + partner
        if info.get("case_seconds") is not None:
            overheads.append((info["case_seconds"] - calls) / variant)
            latency_total += info["case_seconds"]
    case_overhead = max(statistics.median(overheads), 0.0) if overheads else 1.0
    looked = [benchmark["extra_info"]["looks"]["rounds"] for benchmark in cases if benchmark["extra_info"].get("looks")]
    continued = sum(len(rounds) > 1 for rounds in looked) / len(looked) if looked else None
    wall = (run.get("machine_info", {}).get("diffperf") or {}).get("wall_seconds")
    startup = None
    if wall is not None and overheads:
        similarity = sum(statistics.median(benchmark["stats"]["data"]) for benchmark in cases)
        startup = max(wall - latency_total - similarity, 0.0)
    return FittedDevice(model, case_overhead, continued, startup, len(cases))
