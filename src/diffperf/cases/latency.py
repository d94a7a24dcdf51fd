"""The latency case: one variant on one scenario, timed with pytest-benchmark.

Rounds are paired: before each timed round of the variant, pedantic's ``setup`` runs and times one
call of its reference variant (for a family's fp32 baseline, of its yardstick:
:mod:`diffperf.measure.yardstick`), and one more reference call follows the last round, so the two
alternate (R V R V ... R V R) and every variant call is bracketed by reference calls that share
its clock, thermal and neighbour-load drift (:func:`diffperf.stats.ratios.pair_ratios`). Both members of every pair are also timed here, with the same clock pytest-benchmark uses,
so the gate reads its rounds from one place. The reference's times go to
``extra_info["reference_rounds"]``. Rounds go where they can change the verdict
(:meth:`diffperf.gate.rounds.RoundPolicy.decide`, the session's ``policy``): a case settled within its band at the
early look (``--perf-min-rounds``) stops there, and with ``--perf-max-rounds`` a case still inconclusive after its
rounds gets more, in stages.

Untimed probes, each once per session, recorded in ``extra_info`` beside the stage times they divide: peak
memory, the FLOPs of one call per stage (:mod:`diffperf.measure.flops`), both made on warm-up calls
(:class:`WarmUp`), and after the timed rounds the device's dense matmul peak at the variant's precision.
"""

from __future__ import annotations

import statistics
import time

import pytest

from diffperf.gate.expectations import Expectation, case_id
from diffperf.gate.rounds import Looks
from diffperf.gate.verdicts import CaseResult, GateRow, speedup_row
from diffperf.measure.flops import CallFlops, Throughput, precision_of
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
    started = time.perf_counter()
    variant = session.registry.variant(variant_name)
    reason = session.skip_reason(variant, scenario_name) or session.over_budget(variant_name, scenario_name)
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
            warm = WarmUp(session, variant, scenario, subject, reference, probing=not benchmark.disabled)
            warm.run()
            first_timed = len(subject.stage_history)
            rounds = PairedRounds(subject, reference)
            expectation = looked_against(session, variant, scenario, reference)
            rounds.time(benchmark, session.policy.first_rounds(expectation is not None), scenario.name)
            peaks, throughput, looks = (None, None), None, None
            if benchmark.disabled:  # --benchmark-disable: pedantic made one untimed call of each
                rounds.reference_times, rounds.variant_times = [], []
            else:
                looks = case_looks(session, variant, scenario, expectation, rounds, benchmark)
            reference_times, variant_times = rounds.reference_times, rounds.variant_times
            stages = subject.stage_history[first_timed:]
            if not benchmark.disabled:
                warm.finish()
                peaks = warm.peaks
                throughput = measure_throughput(session, variant, scenario, warm.flops, stages, variant_times)
    except (VariantOutOfMemory, ModelNotAvailable) as error:
        failure = str(error)
    if failure is not None:  # outside the except block: one line, no chained traceback
        pytest.fail(failure, pytrace=False)
    published = session.published(variant, scenario_name)
    partner = variant.reference or (YARDSTICK if reference is not None else None)
    result = CaseResult(variant.name, partner, scenario.name, variant_times, reference_times, *peaks,
                        family=variant.family, best_stack=variant.best_stack,
                        published=published.speedup if published else None,
                        published_on=published.gpu if published else None,
                        confidence=looks.confidence if looks else None, tolerance=declared_tolerance(session, variant))
    yardstick = reference if isinstance(reference, Yardstick) else None
    benchmark.extra_info.update(case_info(session, variant, scenario, stages, result, throughput, yardstick))
    if looks:
        benchmark.extra_info["looks"] = looks.to_json()
    benchmark.extra_info["case_seconds"] = time.perf_counter() - started  # its wall time: builds, probes, calls
    session.case_ran(variant.name, scenario.name, benchmark.extra_info["case_seconds"])
    session.results.append(result)
    if throughput is not None:
        session.throughput.append(throughput)
    return result


class WarmUp:
    """The untimed calls before a case's timed rounds, paired as the rounds are (R V per pair), and the probes
    that ride on them.

    Two probes need calls of their own, the FLOPs of one call of the variant and the peak memory of both
    members (each measured once per session, :class:`diffperf.session.PerfSession`); made on warm-up calls
    they cost none. The variant's first call is the one whose FLOPs are counted (the counter's Python dispatch
    slows only that untimed call) and the last pair, when it is not also the first, is the one whose peak memory
    is measured (warm calls, as the timed ones are), so the pair before the first timed round runs without the
    counter. Without ``probing`` (pytest-benchmark disabled) the calls are plain; what --perf-warmup 0 or 1
    leaves unprobed is probed after the timed rounds (:meth:`finish`).
    """

    def __init__(self, session: PerfSession, variant: Variant, scenario: Scenario, subject: TimedPipeline,
                 reference: TimedPipeline | Yardstick | None, probing: bool):
        self.session = session
        self.variant = variant
        self.scenario = scenario
        self.subject = subject
        self.reference = reference
        self.probing = probing
        self.flops: CallFlops | None = None
        self.peaks: tuple[int | None, int | None] | None = None  # (variant, reference) once probed

    def run(self) -> None:
        pairs = self.session.policy.warmup
        for index in range(pairs):
            if self.probing and 0 < index == pairs - 1:
                self._probe_memory()
                continue
            if self.reference is not None:
                self.reference()
            if self.probing and index == 0:
                self._count_flops()
            else:
                self.subject()

    def finish(self) -> None:
        """The probes the warm-up made no call for, after the timed rounds so that their work cannot touch them."""
        if self.flops is None:
            self._count_flops()
        if self.peaks is None:
            self._probe_memory()

    def _count_flops(self) -> None:
        self.flops = self.session.call_flops(self.variant, self.scenario.name, self.subject)

    def _probe_memory(self) -> None:
        """One call of each member (reference first, as in a pair); peak memory is weights + the call's peak growth."""
        peaks = {}
        for name, call in ((self.variant.reference or YARDSTICK, self.reference), (self.variant.name, self.subject)):
            if call is None:
                peaks[name] = None
                continue
            weights = call.weight_bytes() if isinstance(call, Yardstick) else \
                self.session.store.weight_bytes(self.session.registry.variant(name))
            growth = self.session.peak_memory_growth(name, self.scenario.name, call)
            peaks[name] = None if growth is None else weights + growth
        self.peaks = (peaks[self.variant.name], peaks[self.variant.reference or YARDSTICK])


def measure_throughput(session: PerfSession, variant: Variant, scenario: Scenario, flops: CallFlops,
                       timed_stages: list[dict], variant_times: list[float]) -> Throughput:
    """FLOPs of one (untimed) call per stage, over the timed rounds' median times, beside the device's peak."""
    plan = session.store.plan(variant)
    precision = precision_of(plan.dtype, plan.tf32, session.device.type)
    return Throughput(
        variant.name, scenario.name, precision,
        flops=flops,
        stage_seconds=median_stages(timed_stages),
        call_seconds=statistics.median(variant_times) if variant_times else None,
        peak=session.matmul_peak(precision),
    )


def median_stages(timed_stages: list[dict]) -> dict[str, float]:
    """Each stage's median time over the timed rounds (empty when nothing was timed)."""
    return {stage: statistics.median(entry[stage] for entry in timed_stages) for stage in STAGES} \
        if timed_stages else {}


class PairedRounds:
    """The bracketed rounds of one case (R V R V ... R V R), each call timed with ``time.perf_counter``.

    With a reference there is one more reference time than variant times.
    """

    def __init__(self, subject: TimedPipeline, reference: TimedPipeline | Yardstick | None):
        self.subject = subject
        self.reference = reference
        self.reference_times: list[float] = []
        self.variant_times: list[float] = []

    def run_reference(self) -> None:
        if self.reference is not None:
            start = time.perf_counter()
            self.reference()
            self.reference_times.append(time.perf_counter() - start)

    def run_variant(self) -> None:
        start = time.perf_counter()
        self.subject()
        self.variant_times.append(time.perf_counter() - start)

    def time(self, benchmark, rounds: int, group: str) -> None:
        """The base rounds, through pytest-benchmark's pedantic (which records the variant's times)."""
        benchmark.group = group
        benchmark.pedantic(self.run_variant, setup=self.run_reference, rounds=rounds, warmup_rounds=0, iterations=1)
        self.run_reference()  # closes the bracket of the last variant call

    def extend(self, benchmark, rounds: int) -> float:
        """``rounds`` more pairs (V R: the bracket stays closed); the variant's times also go to pytest-benchmark's
        statistics of the case. Returns the seconds they took."""
        start = time.perf_counter()
        for _ in range(rounds):
            self.run_variant()
            benchmark.stats.stats.update(self.variant_times[-1])
            self.run_reference()
        return time.perf_counter() - start


def looked_against(session: PerfSession, variant: Variant, scenario: Scenario,
                   reference: TimedPipeline | Yardstick | None) -> Expectation | None:
    """The stored expectation a case's looks judge against; None when it has no looks (neither an early look nor
    --perf-max-rounds, no reference, or nothing stored to decide against): it then gets its rounds, all timed
    by pytest-benchmark's pedantic."""
    if reference is None or not session.policy.has_looks():
        return None
    return session.expectation(variant.name, scenario.name)


def declared_tolerance(session: PerfSession, variant: Variant) -> float | None:
    """The speed-up band the variant declares, else its family (None: the calibration's)."""
    if variant.tolerance is not None:
        return variant.tolerance
    return session.registry.family_of(variant).tolerance


def case_looks(session: PerfSession, variant: Variant, scenario: Scenario, expectation: Expectation | None,
               rounds: PairedRounds, benchmark) -> Looks | None:
    """The case's looks at its speed-up after its first rounds, each judged against ``expectation`` as the gate will
    judge it, and the rounds the session's policy adds between them (:meth:`diffperf.gate.rounds.RoundPolicy.decide`);
    None when the case has no looks (:func:`looked_against`)."""
    if expectation is None:
        return None
    partner = variant.reference or YARDSTICK

    def judge(count: int, confidence: float) -> GateRow:
        result = CaseResult(variant.name, partner, scenario.name, rounds.variant_times[:count],
                            rounds.reference_times[:count + 1], None, None,
                            tolerance=declared_tolerance(session, variant))
        return speedup_row(result, expectation, confidence)

    return session.policy.decide(len(rounds.variant_times), judge, lambda count: rounds.extend(benchmark, count))


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
