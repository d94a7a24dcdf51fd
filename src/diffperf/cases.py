"""The latency case: one variant on one scenario, timed with pytest-benchmark.

Rounds are paired: before each timed round of the variant, pedantic's ``setup`` runs and times one
call of its reference variant, so the two alternate (R V R V ...) and share clock and thermal
drift. The reference's times go to ``extra_info["reference_rounds"]`` beside the variant's own
raw rounds (``stats.data``), for the speed-up gate to pair them.
"""

from __future__ import annotations

import statistics
import time

import pytest

from diffperf.expectations import case_id
from diffperf.gate import CaseResult
from diffperf.session import PerfSession, VariantOutOfMemory, out_of_memory_as_failure
from diffperf.timing import STAGES
from diffperf.variants import VARIANT_NAMES, get_variant
from diffperf.workloads import SCENARIO_NAMES, get_scenario
from diffperf.zoo import ModelNotAvailable


def latency_cases() -> list:
    """Every (variant, scenario) pair, variant by variant, so each variant's models can go early."""
    return [
        pytest.param(variant, scenario, id=f"{variant}-{scenario}")
        for variant in VARIANT_NAMES
        for scenario in SCENARIO_NAMES
    ]


def run_latency_case(benchmark, session: PerfSession, variant_name: str, scenario_name: str) -> dict:
    """Benchmark ``variant_name`` on ``scenario_name``; returns the extra_info it recorded.

    Skips with a one-line reason when the variant cannot run here; an out-of-memory variant or a
    missing model fails with one line.
    """
    variant = get_variant(variant_name)
    reason = session.skip_reason(variant)
    if reason is not None:
        session.skipped[case_id(variant_name, scenario_name)] = reason
        pytest.skip(reason)
    try:
        return _measure(benchmark, session, variant, session.scenario(scenario_name), scenario_name)
    except (VariantOutOfMemory, ModelNotAvailable) as error:
        pytest.fail(str(error), pytrace=False)


def _measure(benchmark, session: PerfSession, variant, scenario, scenario_name: str) -> dict:
    with out_of_memory_as_failure(variant, session):
        subject = session.timed_pipeline(variant, scenario)
        reference = None
        if variant.reference is not None:
            reference = session.timed_pipeline(get_variant(variant.reference), scenario)

        for _ in range(session.warmup):
            if reference is not None:
                reference()
            subject()
        peak_growth = session.peak_memory_growth(variant.name, scenario.name, subject)
        reference_peak_growth = None
        if reference is not None:
            reference_peak_growth = session.peak_memory_growth(variant.reference, scenario.name, reference)

        reference_rounds: list[float] = []

        def run_reference_round():
            if reference is not None:
                start = time.perf_counter()
                reference()
                reference_rounds.append(time.perf_counter() - start)

        benchmark.group = scenario.name
        first_timed = len(subject.stage_history)
        benchmark.pedantic(subject, setup=run_reference_round, rounds=session.rounds, warmup_rounds=0, iterations=1)

    timed_stages = subject.stage_history[first_timed:]
    weight_bytes = session.store.weight_bytes(variant)
    info = {
        "variant": variant.name,
        "reference": variant.reference,
        "description": variant.description,
        "profile": session.profile_name,
        **scenario.describe(),
        "scaled_from": _scaling(scenario_name, scenario),
        "device": session.instrument.hardware()["device_name"],
        "device_type": session.device.type,
        "dtype": variant.dtype,
        "stages": {stage: statistics.median(entry[stage] for entry in timed_stages) for stage in STAGES},
        "weight_bytes": weight_bytes,
        "peak_memory_growth": peak_growth,
        "peak_memory": None if peak_growth is None else weight_bytes + peak_growth,
        "reference_rounds": reference_rounds,
    }
    if reference is not None:
        reference_weights = session.store.weight_bytes(get_variant(variant.reference))
        info["reference_peak_memory"] = (
            None if reference_peak_growth is None else reference_weights + reference_peak_growth
        )
    benchmark.extra_info.update(info)
    if benchmark.stats is not None:  # None under --benchmark-disable
        session.results.append(CaseResult(
            variant=variant.name,
            reference=variant.reference,
            scenario=scenario.name,
            variant_rounds=list(benchmark.stats.stats.data),
            reference_rounds=reference_rounds,
            peak_memory=info["peak_memory"],
            reference_peak_memory=info.get("reference_peak_memory"),
        ))
    return info


def _scaling(scenario_name: str, scenario) -> dict | None:
    """What the profile scaled down from the documents' scenario (None when run as documented)."""
    original = get_scenario(scenario_name)
    if (original.steps, original.resolution) == (scenario.steps, scenario.resolution):
        return None
    return {"steps": original.steps, "resolution": original.resolution}
