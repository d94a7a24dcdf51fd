"""What one ``pytest perf`` run's cases share: device, host, rounds, model store, probes, what was measured and skipped.

Each case is resolved once (:meth:`PerfSession.case`: its variant, reference and scenario as objects) and
returns what it measured to the session (:meth:`PerfSession.add`); at the end of the run
:meth:`PerfSession.measured` is what the gate judges (diffperf.run_end).
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass

import pytest
import torch

from diffperf.gate.expectations import Expectation, ExpectationsError, case_id, known_keys
from diffperf.gate.rounds import RoundPolicy
from diffperf.gate.verdicts import CaseResult
from diffperf.history.identity import SCHEMA
from diffperf.measure.flops import Throughput
from diffperf.measure.host import this_host
from diffperf.measure.instruments import make_instrument
from diffperf.measure.probes import Probes
from diffperf.measure.process import steady_process
from diffperf.measure.timing import TimedPipeline
from diffperf.measure.yardstick import Yardstick, denoiser_of, pipeline_shape
from diffperf.models import zoo
from diffperf.models.family import YARDSTICK
from diffperf.models.plants import EVERY_VARIANT
from diffperf.models.profiles import PUBLISHED_WORKLOADS
from diffperf.models.registry import Registry
from diffperf.models.store import PipelineStore
from diffperf.models.variants import Published, Variant
from diffperf.models.workloads import Scenario
from diffperf.options import PerfOptions
from diffperf.run_end import Measured, run_expectations


@dataclass(frozen=True)
class Case:
    """One variant on one scenario as this run runs it, resolved once for everything its case does."""

    variant: Variant
    reference: Variant | None  # the variant it is measured against; None: a family's fp32 baseline (its yardstick)
    scenario: Scenario  # as this run runs it: scaled by the profile, with --perf-steps and --perf-resolution
    declared: Scenario  # as its family declares it
    published: Published | None  # its published figure, where this run measures what it was published for
    tolerance: float | None  # the speed-up band the variant, else its family, declares (None: the calibration's)

    @property
    def id(self) -> str:
        return case_id(self.variant.name, self.scenario.name)

    @property
    def paired_with(self) -> str:
        """The name of what the variant is timed against: its reference, or a family's fp32 baseline's yardstick."""
        return self.variant.reference or YARDSTICK

    def result(self, partner: str | None, variant_rounds: list[float], reference_rounds: list[float],
               peaks: tuple[int | None, int | None] = (None, None), confidence: float | None = None) -> CaseResult:
        """What the gate judges of the case: these rounds against ``partner`` (the reference variant's name, the
        yardstick, or None when the variant ran alone) and the peak memory of both (variant, partner)."""
        published = self.published
        return CaseResult(self.variant.name, partner, self.scenario.name, list(variant_rounds), list(reference_rounds),
                          *peaks, family=self.variant.family, best_stack=self.variant.best_stack,
                          published=published.speedup if published else None,
                          published_on=published.gpu if published else None, confidence=confidence,
                          tolerance=self.tolerance)


@dataclass(frozen=True)
class Measurement:
    """What one latency case measured, returned to the session (:meth:`PerfSession.add`)."""

    case: Case
    result: CaseResult
    throughput: Throughput | None  # None: nothing was timed (--benchmark-disable)
    seconds: float  # the case's wall time: builds, probes, calls


class PerfSession:
    """Builds variants lazily on first use and releases them after their last case.

    ``budget`` is --perf-budget's clock of the chosen cases (diffperf.cases.budget.BudgetClock), None without a
    budget.
    """

    def __init__(self, options: PerfOptions, registry: Registry, plan: list[str | None] | None = None, budget=None):
        options.check()
        options.check_names(registry)
        self.options = options
        self.registry = registry
        self.device = options.resolved_device()
        self.process_settings = steady_process(self.device.type)  # before any model is built
        self.profile_name = options.resolved_profile(self.device)
        # the rounds of every latency case: the early look, --perf-max-rounds' looks and --perf-extra-time
        self.policy = RoundPolicy.for_profile(self.profile_name, rounds=options.rounds, min_rounds=options.min_rounds,
                                              warmup=options.warmup, max_rounds=options.max_rounds,
                                              extra_time=options.extra_time)
        self.instrument = make_instrument(self.device)
        self.host = this_host(self.device)
        self.store = PipelineStore(registry, zoo.make_source(self.profile_name, self.device, options.hub_models),
                                   self.device, plants=options.plants, synchronize=self.instrument.synchronize)
        self.probes = Probes(self.device, self.instrument)
        self.plan = plan if plan is not None else []  # the variant of each collected case, in run order
        self.budget = budget
        self.image_baselines = None  # diffperf.images.baselines.ImageBaselines, once a similarity case runs
        # What the latency cases measured and why the others did not run, for the gate; only :meth:`add` and
        # :meth:`latency_case` write them.
        self.results: list[CaseResult] = []
        self.skipped: dict[str, str] = dict(budget.left_out_when_chosen) if budget is not None else {}
        self.throughput: list[Throughput] = []

    def check_run(self) -> None:
        """Before anything is measured, what the run's cases (``plan``) would otherwise find out late, or never: a
        variant named in --perf-variants that does not run here, a change planted in a variant no case builds, a
        --perf-baseline-key that names no record, and stored expectations that cannot be read.

        A one-line ValueError; :class:`diffperf.gate.expectations.ExpectationsError` for the expectations (the
        gate's own line says what to do about it, with its exit status: diffperf.run_end)."""
        for name in self.options.variants:
            reason = self.skip_reason(self.registry.variant(name))
            if reason is not None:
                raise ValueError(f"--perf-variants names {name}, which does not run here: {reason}")
        built = self.built_variants()
        for plant in self.options.plants.plants:
            if plant.where != EVERY_VARIANT and plant.where not in built:
                why = self.skip_reason(self.registry.variant(plant.where)) or (
                    f"no selected case runs {plant.where} or measures against it (-k or --perf-budget left them out)")
                raise ValueError(f"{plant.describe()}: {plant.where} does not run in this run, so nothing would be "
                                 f"planted: {why}")
        if not self.options.no_gate:  # --perf-no-gate reads no speedups.json
            if self.options.baseline_key is not None:
                check_forced_key(self.options.baselines_dir, self.profile_name, self.options.baseline_key)
            self.stored_expectations  # an unreadable speedups.json stops the run before anything is measured

    def built_variants(self) -> set[str]:
        """The variants this run's cases (``plan``) build: the variant of each case that runs here, and the variants
        it is measured against."""
        return {name for variant in dict.fromkeys(filter(None, self.plan))
                if self.skip_reason(self.registry.variant(variant)) is None
                for name in self.registry.reference_chain(variant)}

    def selected(self, variant_name: str) -> bool:
        return not self.options.variants or variant_name in self.options.variants

    def skip_reason(self, variant: Variant, scenario: str | None = None) -> str | None:
        if not self.selected(variant.name):
            return f"{variant.name} is not in --perf-variants"
        return self.registry.skip_reason(variant, scenario, self.device, self.options.enabled)

    def case(self, variant_name: str, scenario_name: str) -> Case:
        """The case of ``variant_name`` on ``scenario_name`` as this run runs it."""
        variant = self.registry.variant(variant_name)
        family = self.registry.family_of(variant)
        return Case(variant=variant,
                    reference=self.registry.variant(variant.reference) if variant.reference is not None else None,
                    scenario=self.scenario(variant_name, scenario_name),
                    declared=self.registry.scenario(variant_name, scenario_name),
                    published=self.published(variant, scenario_name),
                    tolerance=variant.tolerance if variant.tolerance is not None else family.tolerance)

    def latency_case(self, variant_name: str, scenario_name: str) -> Case:
        """The case a latency case measures; skipped with a one-line reason, which the gate lists, when it cannot
        run here or would take a --perf-budget run past its end."""
        case = self.case(variant_name, scenario_name)
        reason = self.skip_reason(case.variant, scenario_name)
        if reason is None and self.budget is not None:
            reason = self.budget.over(variant_name, scenario_name)
        if reason is not None:
            self.skipped[case.id] = reason
            pytest.skip(reason)
        return case

    def add(self, measurement: Measurement) -> Measurement:
        """Keep what a latency case measured, for the gate and the summaries; under --perf-budget its wall time sets
        the pace the later cases are predicted at."""
        self.results.append(measurement.result)
        if measurement.throughput is not None:
            self.throughput.append(measurement.throughput)
        if self.budget is not None:
            self.budget.ran(measurement.case.variant.name, measurement.case.scenario.name, measurement.seconds)
        return measurement

    def measured(self) -> Measured:
        """What the run's latency cases measured so far, for the gate at its end."""
        return Measured(list(self.results), dict(self.skipped), [record.case_info() for record in self.throughput],
                        self.host, self.profile_name)

    def published(self, variant: Variant, scenario_name: str) -> Published | None:
        """The figure published for the case, where this run measures what it was published for: the
        ``full`` architecture (``full`` or ``hub``) at the scenario's own workload on a CUDA device."""
        if self.device.type != "cuda" or self.profile_name not in PUBLISHED_WORKLOADS or self.options.workload_overrides:
            return None
        return next((figure for figure in variant.published if figure.scenario == scenario_name), None)

    def scenario(self, variant: str, name: str) -> Scenario:
        """The variant's scenario as this run runs it: scaled by the profile, with --perf-steps and --perf-resolution."""
        family = self.registry.family_of(variant)
        return family.scenario(name).scaled(family.scale(self.profile_name), self.options.steps,
                                            self.options.resolution)

    @property
    def device_name(self) -> str:
        return self.instrument.hardware()["device_name"]

    def timed_pipeline(self, variant: Variant, scenario: Scenario) -> TimedPipeline:
        pipe = self.store.pipeline(variant, scenario)
        return TimedPipeline(pipe, scenario, self.instrument, lambda: self.store.during_calls(variant),
                             self.store.call_plan(variant, scenario).arguments)

    def partner(self, case: Case, subject: TimedPipeline) -> TimedPipeline | Yardstick | None:
        """What ``case``'s variant (timed as ``subject``) is paired with: its reference's timed pipeline, or for a
        family's fp32 baseline its yardstick (None: a pipeline the yardstick cannot follow, which runs alone)."""
        if case.reference is not None:
            return self.timed_pipeline(case.reference, case.scenario)
        return self.yardstick(case.variant, case.scenario, subject.pipe)

    def yardstick(self, variant: Variant, scenario: Scenario, pipe) -> Yardstick | None:
        """The partner of a family's fp32 baseline ``variant`` on ``scenario``: torch calls at the shapes of
        ``pipe``'s denoiser (its UNet's or transformer's config, as built or loaded) for the variant's call (its
        steps, guidance scale and text length: diffperf.models.calls.CallPlan) at the scenario's images and
        resolution, in the denoiser's dtype, under the variant's runtime switches
        (diffperf.measure.yardstick.pipeline_shape). None for a denoiser the yardstick cannot follow."""
        call = self.store.call_plan(variant, scenario)
        shape = pipeline_shape(pipe, call.arguments, scenario.images, scenario.resolution, call.steps)
        if shape is None:
            return None
        return Yardstick(shape, denoiser_of(pipe)[1].dtype, self.device, self.instrument.synchronize,
                         settings=lambda: self.store.during_calls(variant))

    def expectation(self, case: Case) -> Expectation | None:
        """The expectation of ``case``'s speed-up, the one the gate will judge it against (diffperf.run_end.
        run_expectations); None when there is none or ``speedups.json`` cannot be read (the gate says so at the end)."""
        try:
            found = self.stored_expectations or run_expectations(self.options, self.profile_name, self.host,
                                                                 [case.result(case.paired_with, [], [])])
        except ExpectationsError:
            return None
        return found.speedups.get(case.id) if found is not None else None

    @functools.cached_property
    def stored_expectations(self):
        """The run's expectations that need no case (diffperf.run_end.run_expectations of none): the stored record,
        read once per session; None when the cases' published figures are all there could be."""
        return run_expectations(self.options, self.profile_name, self.host, [])

    def finished_case(self, index: int) -> None:
        """Release what the cases after ``index`` no longer need."""
        self.store.keep_only(name for name in self.plan[index + 1 :] if name)

    def describe(self) -> dict:
        """Profile, device, host fingerprint, process settings and software, for the JSON's machine_info."""
        import diffusers
        import transformers

        return {
            "schema": SCHEMA,  # what a saved run's identity is read from (diffperf.history.identity)
            "profile": self.profile_name,
            **self.instrument.hardware(),
            **self.host.describe(),
            "process": self.process_settings,
            "rounds": self.policy.rounds,
            "min_rounds": self.policy.min_rounds,
            "warmup": self.policy.warmup,
            "workload_overrides": self.options.workload_overrides or None,
            # --perf-plant-*: what was changed on purpose (a run with a planted slowdown or memory is never calibrated
            # from)
            **self.options.plants.record(),
            "matmul_peaks": self.probes.matmul_peaks_json(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
            "cuda": torch.version.cuda,
        }


def check_forced_key(baselines_dir: str, profile: str, key: str) -> None:
    """Before anything is measured: --perf-baseline-key must name a stored record (one-line ValueError);
    ExpectationsError when ``speedups.json`` cannot be read."""
    known = known_keys(baselines_dir, profile)
    if key not in known:
        raise ValueError(f"--perf-baseline-key {key}: no such record for profile {profile} in {baselines_dir} "
                         f"(recorded: {', '.join(known) or 'none'})")


@contextlib.contextmanager
def out_of_memory_as_failure(variant: Variant, session: PerfSession):
    """Turn an out-of-memory error into one line; release the variant so the others still run."""
    try:
        yield
    except (torch.OutOfMemoryError, MemoryError) as error:
        session.store.keep_only([])
        first_line = (str(error).splitlines() or [type(error).__name__])[0]
        raise VariantOutOfMemory(
            f"{variant.name} ran out of memory on {session.device_name}: "
            f"{first_line[:200]}; its memory was released and the other variants still run"
        ) from None


class VariantOutOfMemory(RuntimeError):
    pass
