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

Untimed probes, each once per session (:class:`diffperf.measure.probes.Probes`), recorded in ``extra_info`` beside
the stage times they divide: peak memory, the FLOPs of one call per stage (:mod:`diffperf.measure.flops`), both made
on warm-up calls (:class:`WarmUp`), and after the timed rounds the device's dense matmul peak at the variant's
precision.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import pytest

from diffperf.gate.expectations import Expectation
from diffperf.gate.rounds import Looks
from diffperf.gate.verdicts import CaseResult, GateRow, speedup_row
from diffperf.measure.flops import CallFlops, Throughput, precision_of
from diffperf.measure.probes import Probes
from diffperf.measure.timing import STAGES, TimedPipeline
from diffperf.measure.yardstick import Yardstick
from diffperf.models.calls import CallPlan
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scenario
from diffperf.models.zoo import ModelNotAvailable
from diffperf.session import Case, Measurement, PerfSession, VariantOutOfMemory, out_of_memory_as_failure


def run_latency_case(benchmark, session: PerfSession, variant_name: str, scenario_name: str) -> Measurement:
    """Benchmark ``variant_name`` on ``scenario_name``; returns what it measured, for the session to keep
    (:meth:`diffperf.session.PerfSession.add`).

    Skips with a one-line reason when the variant cannot run here (:meth:`diffperf.session.PerfSession.latency_case`);
    an out-of-memory variant or a missing model fails with one line.
    """
    started = time.perf_counter()
    case = session.latency_case(variant_name, scenario_name)
    failure, reference = None, None
    try:
        with out_of_memory_as_failure(case.variant, session):
            subject = session.timed_pipeline(case.variant, case.scenario)
            reference = session.partner(case, subject)
            warm = WarmUp(session.probes, session.store.weight_bytes, case, subject, reference, session.policy.warmup,
                          probing=not benchmark.disabled)
            warm.run()
            first_timed = len(subject.stage_history)
            rounds = PairedRounds(subject, reference)
            expectation = looked_against(session, case, reference)
            rounds.time(benchmark, session.policy.first_rounds(expectation is not None), case.scenario.name)
            peaks, throughput, looks = (None, None), None, None
            if benchmark.disabled:  # --benchmark-disable: pedantic made one untimed call of each
                rounds.reference_times, rounds.variant_times = [], []
            else:
                looks = case_looks(session, case, expectation, rounds, benchmark)
            stages = subject.stage_history[first_timed:]
            if not benchmark.disabled:
                warm.finish()
                peaks = warm.peaks
                throughput = measure_throughput(session, case, warm.flops, stages, rounds.variant_times)
    except (VariantOutOfMemory, ModelNotAvailable) as error:
        failure = str(error)
    if failure is not None:  # outside the except block: one line, no chained traceback
        pytest.fail(failure, pytrace=False)
    result = case.result(case.paired_with if reference is not None else None, rounds.variant_times,
                         rounds.reference_times, peaks, confidence=looks.confidence if looks else None)
    yardstick = reference if isinstance(reference, Yardstick) else None
    benchmark.extra_info.update(case_info(session, case, stages, result, throughput, yardstick))
    if looks:
        benchmark.extra_info["looks"] = looks.to_json()
    benchmark.extra_info["case_seconds"] = time.perf_counter() - started  # its wall time: builds, probes, calls
    return Measurement(case, result, throughput, benchmark.extra_info["case_seconds"])


class WarmUp:
    """The untimed calls before a case's timed rounds, paired as the rounds are (R V per pair), and the probes
    that ride on them.

    Two probes need calls of their own, the FLOPs of one call of the variant and the peak memory of both
    members (each measured once per run, :class:`diffperf.measure.probes.Probes`); made on warm-up calls
    they cost none. The variant's first call is the one whose FLOPs are counted (the counter's Python dispatch
    slows only that untimed call) and the last pair, when it is not also the first, is the one whose peak memory
    is measured (warm calls, as the timed ones are), so the pair before the first timed round runs without the
    counter. Without ``probing`` (pytest-benchmark disabled) the calls are plain; what --perf-warmup 0 or 1
    leaves unprobed is probed after the timed rounds (:meth:`finish`). ``weight_bytes`` gives the bytes of a
    variant's weights (diffperf.models.store.PipelineStore.weight_bytes).
    """

    def __init__(self, probes: Probes, weight_bytes: Callable[[Variant], int], case: Case, subject: TimedPipeline,
                 reference: TimedPipeline | Yardstick | None, pairs: int, probing: bool):
        self.probes = probes
        self.weight_bytes = weight_bytes
        self.case = case
        self.subject = subject
        self.reference = reference
        self.pairs = pairs
        self.probing = probing
        self.flops: CallFlops | None = None
        self.peaks: tuple[int | None, int | None] | None = None  # (variant, reference) once probed

    def run(self) -> None:
        for index in range(self.pairs):
            if self.probing and 0 < index == self.pairs - 1:
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
        variant = self.case.variant
        self.flops = self.probes.call_flops(variant.name, self.case.scenario.name, self.subject,
                                            every_step=not variant.same_every_step)

    def _probe_memory(self) -> None:
        """One call of each member (reference first, as in a pair); peak memory is weights + the call's peak growth."""
        reference_peak = None
        if self.reference is not None:
            weights = self.reference.weight_bytes() if isinstance(self.reference, Yardstick) else \
                self.weight_bytes(self.case.reference)
            reference_peak = self._peak(self.case.paired_with, self.reference, weights)
        variant_peak = self._peak(self.case.variant.name, self.subject, self.weight_bytes(self.case.variant))
        self.peaks = (variant_peak, reference_peak)

    def _peak(self, name: str, call, weights: int) -> int | None:
        growth = self.probes.peak_memory_growth(name, self.case.scenario.name, call)
        return None if growth is None else weights + growth


def measure_throughput(session: PerfSession, case: Case, flops: CallFlops, timed_stages: list[dict],
                       variant_times: list[float]) -> Throughput:
    """FLOPs of one (untimed) call per stage, over the timed rounds' median times, beside the device's peak."""
    plan = session.store.plan(case.variant)
    precision = precision_of(plan.dtype, plan.tf32, session.device.type)
    return Throughput(
        case.variant.name, case.scenario.name, precision,
        flops=flops,
        stage_seconds=median_stages(timed_stages),
        call_seconds=statistics.median(variant_times) if variant_times else None,
        peak=session.probes.matmul_peak(precision),
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


def looked_against(session: PerfSession, case: Case, reference: TimedPipeline | Yardstick | None) -> Expectation | None:
    """The expectation a case's looks judge against, the gate's (:meth:`diffperf.session.PerfSession.expectation`);
    None when it has no looks (neither an early look nor --perf-max-rounds, no reference, a run that is not gated,
    whose cases all get their rounds, or nothing to decide against): it then gets its rounds, all timed by
    pytest-benchmark's pedantic."""
    if reference is None or not session.policy.has_looks() or session.options.no_gate:
        return None
    return session.expectation(case)


def case_looks(session: PerfSession, case: Case, expectation: Expectation | None, rounds: PairedRounds,
               benchmark) -> Looks | None:
    """The case's looks at its speed-up after its first rounds, each judged against ``expectation`` as the gate will
    judge it, and the rounds the session's policy adds between them (:meth:`diffperf.gate.rounds.RoundPolicy.decide`);
    None when the case has no looks (:func:`looked_against`)."""
    if expectation is None:
        return None

    def judge(count: int, confidence: float) -> GateRow:
        result = case.result(case.paired_with, rounds.variant_times[:count], rounds.reference_times[:count + 1])
        return speedup_row(result, expectation, confidence)

    return session.policy.decide(len(rounds.variant_times), judge, lambda count: rounds.extend(benchmark, count))


def case_info(session: PerfSession, case: Case, timed_stages: list[dict], result: CaseResult,
              throughput: Throughput | None = None, yardstick: Yardstick | None = None) -> dict:
    """What the case records in pytest-benchmark's ``extra_info``; ``timed_stages`` are the timed rounds' stage times,
    ``yardstick`` the baseline's partner, whose shapes are recorded."""
    variant, scenario = case.variant, case.scenario
    weight_bytes = session.store.weight_bytes(variant)
    family = session.registry.family(variant.family)
    call = session.store.call_plan(variant, scenario)
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
        "call": call.describe(),  # what each timed call ran: its arguments and scheduler
        "call_changes": call.changes(CallPlan.of_scenario(family, scenario)) or None,  # what the speed-ups changed
        "scaled_from": scaling(scenario, case.declared),
        "workload_overrides": session.options.workload_overrides or None,
        "device": session.device_name,
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
