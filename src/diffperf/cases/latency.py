"""The latency case: one variant on one scenario, timed with pytest-benchmark.

Rounds are paired: before each timed round of the variant, pedantic's ``setup`` runs and times one
call of its reference variant (for a family's fp32 baseline, of its yardstick:
:mod:`diffperf.measure.yardstick`), and one more reference call follows the last round, so the two
alternate (R V R V ... R V R) and every variant call is bracketed by reference calls that share
its clock, thermal and neighbour-load drift (:func:`diffperf.stats.ratios.pair_ratios`). Both members of every pair are also timed here, with the same clock pytest-benchmark uses,
so the gate reads its rounds from one place whether or not pytest-benchmark keeps its own
(``--benchmark-disable``, xdist). The reference's times go to ``extra_info["reference_rounds"]``.

After the timed rounds, untimed probes: peak memory, the FLOPs of one call per stage and the
device's dense matmul peak at the variant's precision (:mod:`diffperf.measure.flops`), each once
per session, recorded in ``extra_info`` beside the stage times they divide.
"""

from __future__ import annotations

import statistics
import time

import pytest

from diffperf.gate.expectations import case_id
from diffperf.gate.verdicts import CaseResult
from diffperf.measure.flops import Throughput, precision_of
from diffperf.measure.timing import STAGES, TimedPipeline
from diffperf.measure.yardstick import Yardstick
from diffperf.models.family import YARDSTICK
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scenario
from diffperf.models.zoo import ModelNotAvailable
from diffperf.session import PerfSession, VariantOutOfMemory, out_of_memory_as_failure


def run_latency_case(benchmark, session: PerfSession, variant_name: str, scenario_name: str) -> CaseResult:
    """Benchmark ``variant_name`` on ``scenario_name``; returns what the gate needs of it.

    Skips with a one-line reason when the variant cannot run here; an out-of-memory variant or a
    missing model fails with one line.
    """
    variant = session.registry.variant(variant_name)
    reason = session.skip_reason(variant, scenario_name)
    if reason is not None:
        session.skipped[case_id(variant_name, scenario_name)] = reason
        pytest.skip(reason)
    scenario = session.scenario(variant_name, scenario_name)
    failure, reference = None, None
    try:
        with out_of_memory_as_failure(variant, session):
            subject = session.timed_pipeline(variant, scenario)
            if variant.reference is not None:
                reference = session.timed_pipeline(session.registry.variant(variant.reference), scenario)
            else:  # None when the pipeline has no UNet the yardstick can follow (it then runs alone)
                reference = session.yardstick(variant, scenario, subject.pipe)
            warm_up(session, subject, reference)
            first_timed = len(subject.stage_history)
            reference_times, variant_times = timed_rounds(benchmark, session, scenario, subject, reference)
            stages = subject.stage_history[first_timed:]
            peaks, throughput = (None, None), None
            if benchmark.disabled:  # --benchmark-disable, xdist: pedantic made one untimed call of each
                reference_times, variant_times = [], []
            else:  # after the timed rounds, so the probes' own work cannot touch them
                peaks = peak_memory(session, variant, scenario, subject, reference)
                throughput = measure_throughput(session, variant, scenario, subject, stages, variant_times)
    except (VariantOutOfMemory, ModelNotAvailable) as error:
        failure = str(error)
    if failure is not None:  # outside the except block: one line, no chained traceback
        pytest.fail(failure, pytrace=False)
    published = session.published(variant, scenario_name)
    partner = variant.reference or (YARDSTICK if reference is not None else None)
    result = CaseResult(variant.name, partner, scenario.name, variant_times, reference_times, *peaks,
                        family=variant.family, best_stack=variant.best_stack,
                        published=published.speedup if published else None,
                        published_on=published.gpu if published else None)
    yardstick = reference if isinstance(reference, Yardstick) else None
    benchmark.extra_info.update(case_info(session, variant, scenario, stages, result, throughput, yardstick))
    session.results.append(result)
    if throughput is not None:
        session.throughput.append(throughput)
    return result


def warm_up(session: PerfSession, subject: TimedPipeline, reference: TimedPipeline | Yardstick | None) -> None:
    """Untimed calls of both, paired as the timed rounds are."""
    for _ in range(session.warmup):
        if reference is not None:
            reference()
        subject()


def peak_memory(session: PerfSession, variant: Variant, scenario: Scenario, subject: TimedPipeline,
                reference: TimedPipeline | Yardstick | None) -> tuple[int | None, int | None]:
    """Peak memory (weights + one warm call's peak growth) of the variant and of its reference (or yardstick)."""
    peaks = []
    for name, call in ((variant.name, subject), (variant.reference or YARDSTICK, reference)):
        if call is None:
            peaks.append(None)
            continue
        weights = call.weight_bytes() if isinstance(call, Yardstick) else \
            session.store.weight_bytes(session.registry.variant(name))
        growth = session.peak_memory_growth(name, scenario.name, call)
        peaks.append(None if growth is None else weights + growth)
    return peaks[0], peaks[1]


def measure_throughput(session: PerfSession, variant: Variant, scenario: Scenario, subject: TimedPipeline,
                       timed_stages: list[dict], variant_times: list[float]) -> Throughput:
    """FLOPs of one (untimed) call per stage, over the timed rounds' median times, beside the device's peak."""
    plan = session.store.plan(variant)
    precision = precision_of(plan.dtype, plan.tf32, session.device.type)
    return Throughput(
        variant.name, scenario.name, precision,
        flops=session.call_flops(variant, scenario.name, subject),
        stage_seconds=median_stages(timed_stages),
        call_seconds=statistics.median(variant_times) if variant_times else None,
        peak=session.matmul_peak(precision),
    )


def median_stages(timed_stages: list[dict]) -> dict[str, float]:
    """Each stage's median time over the timed rounds (empty when nothing was timed)."""
    return {stage: statistics.median(entry[stage] for entry in timed_stages) for stage in STAGES} \
        if timed_stages else {}


def timed_rounds(benchmark, session: PerfSession, scenario: Scenario, subject: TimedPipeline,
                 reference: TimedPipeline | Yardstick | None) -> tuple[list[float], list[float]]:
    """The bracketed rounds: (reference times, variant times), each call timed with ``time.perf_counter``.

    With a reference there is one more reference time than variant times (R V R V ... R V R).
    """
    reference_times: list[float] = []
    variant_times: list[float] = []

    def run_reference():
        if reference is not None:
            start = time.perf_counter()
            reference()
            reference_times.append(time.perf_counter() - start)

    def run_variant():
        start = time.perf_counter()
        subject()
        variant_times.append(time.perf_counter() - start)

    benchmark.group = scenario.name
    benchmark.pedantic(run_variant, setup=run_reference, rounds=session.rounds, warmup_rounds=0, iterations=1)
    run_reference()  # closes the bracket of the last variant call
    return reference_times, variant_times


def case_info(session: PerfSession, variant: Variant, scenario: Scenario, timed_stages: list[dict],
              result: CaseResult, throughput: Throughput | None = None, yardstick: Yardstick | None = None) -> dict:
    """What the case records in pytest-benchmark's ``extra_info``; ``timed_stages`` are the timed rounds' stage times,
    ``yardstick`` the baseline's partner, whose shapes are recorded."""
    weight_bytes = session.store.weight_bytes(variant)
    return {
        "variant": variant.name,
        "family": variant.family,
        "reference": result.reference,
        "yardstick": yardstick.shape.describe() if yardstick is not None else None,
        "description": variant.describe(),
        "speedups": [speedup.name for speedup in variant.speedups],
        "best_stack": variant.best_stack,
        "profile": session.profile_name,
        **scenario.describe(),
        "scaled_from": scaling(scenario, session.registry.scenario(variant.name, scenario.name)),
        "workload_overrides": session.options.workload_overrides or None,
        "device": session.instrument.hardware()["device_name"],
        "device_type": session.device.type,
        "dtype": session.store.plan(variant).dtype,
        "stages": median_stages(timed_stages),
        "weight_bytes": weight_bytes,
        "peak_memory_growth": None if result.peak_memory is None else result.peak_memory - weight_bytes,
        "peak_memory": result.peak_memory,
        "reference_peak_memory": result.reference_peak_memory,
        "reference_rounds": result.reference_rounds,
        "compile_seconds": session.store.compile_seconds.get(variant.name),  # apart from latency
        "flops": None,
        "throughput": None,
        **(throughput.case_info() if throughput is not None else {}),
    }


def scaling(scenario: Scenario, original: Scenario) -> dict | None:
    """What the profile scaled down from the declared scenario (None when run as declared)."""
    if (original.steps, original.resolution) == (scenario.steps, scenario.resolution):
        return None
    return {"steps": original.steps, "resolution": original.resolution}
