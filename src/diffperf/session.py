"""The state of one ``pytest perf`` run: device, host, model store, what was measured and skipped."""

from __future__ import annotations

import contextlib
import statistics
import time

import torch

from diffperf.gate.expectations import Expectation, Expectations, ExpectationsError, case_id, known_keys, lookup
from diffperf.gate.rounds import RoundPolicy
from diffperf.gate.verdicts import CaseResult
from diffperf.history.identity import SCHEMA
from diffperf.measure.flops import CallFlops, MatmulPeak, Throughput, count_call_flops, datasheet_peak, \
    measure_matmul_peak
from diffperf.measure.host import this_host
from diffperf.measure.instruments import make_instrument
from diffperf.measure.process import steady_process
from diffperf.measure.timing import TimedPipeline
from diffperf.measure.yardstick import FOLLOWED_CONFIG, Yardstick, shape_of
from diffperf.models import zoo
from diffperf.models.profiles import PUBLISHED_WORKLOADS
from diffperf.models.registry import Registry
from diffperf.models.plants import EVERY_VARIANT
from diffperf.models.store import PipelineStore
from diffperf.models.variants import Published, Variant
from diffperf.models.workloads import Scenario
from diffperf.options import PerfOptions


class PerfSession:
    """Builds variants lazily on first use and releases them after their last case."""

    def __init__(self, options: PerfOptions, registry: Registry, plan: list[str | None] | None = None):
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
        self._expectations: Expectations | None | bool = False  # False: not looked up yet
        self.instrument = make_instrument(self.device)
        self.host = this_host(self.device)
        self.store = PipelineStore(
            registry,
            zoo.make_source(self.profile_name, self.device, options.hub_models),
            self.device,
            plants=options.plants,
            synchronize=self.instrument.synchronize,
        )
        self.plan = plan if plan is not None else []  # the variant of each collected case, in run order
        self.results: list[CaseResult] = []  # what the latency cases measured, for the gate
        self.skipped: dict[str, str] = {}  # case id -> why it did not run
        self.image_baselines = None  # diffperf.images.baselines.ImageBaselines, once a similarity case runs
        self._peak_memory: dict[tuple[str, str], int | None] = {}
        self._flops: dict[tuple[str, str], CallFlops] = {}
        self._matmul_peaks: dict[str, MatmulPeak] = {}  # by precision
        self.throughput: list[Throughput] = []  # what the latency cases achieved, for the summaries
        # --perf-budget: when the run's budget ends (time.monotonic()), and each case's most predicted seconds
        self.budget_end: float | None = None
        self.case_most_seconds: dict[tuple[str, str], float] = {}
        self.left_out_by_budget: list[str] = []  # the cases over_budget left out, named at the end of the run
        self.budget_pace: list[float] = []  # each budgeted case's wall time over its most predicted seconds

    def check_run(self) -> None:
        """Before anything is measured, what the run's cases (``plan``) would otherwise find out late, or never: a
        variant named in --perf-variants that does not run here, a change planted in a variant no case builds, a
        --perf-baseline-key that names no record, and stored expectations that cannot be read.

        A one-line ValueError; :class:`diffperf.gate.expectations.ExpectationsError` for the expectations (the
        gate's own line says what to do about it, with its exit status: diffperf.cases.outcome)."""
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
            self.read_expectations()

    def built_variants(self) -> set[str]:
        """The variants this run's cases (``plan``) build: the variant of each case that runs here, and the variants
        it is measured against."""
        return {name for variant in dict.fromkeys(filter(None, self.plan))
                if self.skip_reason(self.registry.variant(variant)) is None
                for name in self.registry.reference_chain(variant)}

    def case_ran(self, variant_name: str, scenario_name: str, seconds: float) -> None:
        """A latency case's wall time, beside its prediction under --perf-budget (:meth:`over_budget` reads it)."""
        predicted = self.case_most_seconds.get((variant_name, scenario_name))
        if predicted:
            self.budget_pace.append(seconds / predicted)

    def over_budget(self, variant_name: str, scenario_name: str) -> str | None:
        """Why a case is left out of a --perf-budget run that has come to its end (one line), or None: the case's
        most predicted seconds would take the run past the budget (``budget_end``, ``case_most_seconds``)."""
        if self.budget_end is None:
            return None
        # as much slower as the cases before it ran than their prediction (a host in a slow spell)
        pace = max([1.0, statistics.median(self.budget_pace)] if self.budget_pace else [1.0])
        needed = self.case_most_seconds.get((variant_name, scenario_name), 0.0) * pace
        left = self.budget_end - time.monotonic()
        if needed <= left:
            return None
        self.left_out_by_budget.append(f"{variant_name}-{scenario_name}")
        return (f"left out: --perf-budget has {max(left, 0):.0f} s left and {variant_name} on {scenario_name} takes up "
                f"to {needed:.0f} s")

    def selected(self, variant_name: str) -> bool:
        return not self.options.variants or variant_name in self.options.variants

    def skip_reason(self, variant: Variant, scenario: str | None = None) -> str | None:
        if not self.selected(variant.name):
            return f"{variant.name} is not in --perf-variants"
        return self.registry.skip_reason(variant, scenario, self.device, self.options.enabled)

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

    def timed_pipeline(self, variant: Variant, scenario: Scenario) -> TimedPipeline:
        pipe = self.store.pipeline(variant, scenario)
        return TimedPipeline(pipe, scenario, self.instrument, lambda: self.store.during_calls(variant))

    def yardstick(self, variant: Variant, scenario: Scenario, pipe) -> Yardstick | None:
        """The partner of a family's fp32 baseline ``variant`` on ``scenario``: torch calls at the shapes of
        ``pipe``'s UNet (its config, as built or loaded), for the scenario's latents with classifier-free guidance, in
        the UNet's dtype, under the variant's runtime switches. None for a pipeline without a
        ``UNet2DConditionModel``-like UNet (a transformer-based family)."""
        unet = getattr(pipe, "unet", None)
        config = getattr(unet, "config", None)
        if config is None or not FOLLOWED_CONFIG <= set(config) or not hasattr(pipe, "vae_scale_factor"):
            return None
        latent = scenario.resolution // pipe.vae_scale_factor
        shape = shape_of(config, 2 * scenario.images, latent, latent, scenario.steps)
        return Yardstick(shape, unet.dtype, self.device, self.instrument.synchronize,
                         settings=lambda: self.store.during_calls(variant))

    def read_expectations(self) -> None:
        """Look up the stored expectations the gate will judge this run against
        (:func:`diffperf.gate.expectations.lookup`), kept for :meth:`expectation` unless --perf-steps or
        --perf-resolution changed the workload; ExpectationsError when ``speedups.json`` cannot be used."""
        self._expectations = None
        found = lookup(self.options.baselines_dir, self.profile_name, self.host, self.options.baseline_key)
        if not self.options.workload_overrides:
            self._expectations = found

    def expectation(self, variant_name: str, scenario_name: str) -> Expectation | None:
        """The stored expectation of a case's speed-up, as the gate will judge it; None when there is none, the
        file cannot be read (the gate says so at the end) or the run is not gated."""
        if self._expectations is False:
            self._expectations = None
            if not self.options.no_gate:
                try:
                    self.read_expectations()
                except ExpectationsError:
                    pass
        found = self._expectations
        return found.speedups.get(case_id(variant_name, scenario_name)) if found is not None else None

    def peak_memory_growth(self, variant_name: str, scenario_name: str, call) -> int | None:
        """Peak memory growth of one warm call of a variant on a scenario, measured once per session.

        Makes one call of ``call`` each time (a warm-up call: :class:`diffperf.cases.latency.WarmUp`), measured the
        first time."""
        key = (variant_name, scenario_name)
        if key not in self._peak_memory:
            self._peak_memory[key] = self.instrument.peak_memory_growth(call)
        else:
            call()
        return self._peak_memory[key]

    def call_flops(self, variant: Variant, scenario_name: str, pipeline: TimedPipeline) -> CallFlops:
        """FLOPs of one call of a variant on a scenario, per stage, counted once per session.

        Makes one call of ``pipeline`` each time (a warm-up call), counted the first time."""
        key = (variant.name, scenario_name)
        if key not in self._flops:
            self._flops[key] = count_call_flops(pipeline, every_step=not variant.same_every_step)
        else:
            pipeline()
        return self._flops[key]

    def matmul_peak(self, precision: str) -> MatmulPeak:
        """The device's dense matmul peak at ``precision``, measured once per session (and its datasheet figure)."""
        if precision not in self._matmul_peaks:
            datasheet = None
            if self.device.type == "cuda":
                datasheet = datasheet_peak(self.instrument.hardware()["device_name"], precision)
            self._matmul_peaks[precision] = measure_matmul_peak(self.device, precision, self.instrument.synchronize,
                                                                datasheet)
        return self._matmul_peaks[precision]

    def finished_case(self, index: int) -> None:
        """Release what the cases after ``index`` no longer need."""
        self.store.keep_only(name for name in self.plan[index + 1 :] if name)

    def commit_image_baselines(self, completed: bool) -> str | None:
        """Write the image baselines this run recorded; one line saying how many and where.

        A similarity case stages its image only once its checks passed (diffperf.cases.similarity), so a run that
        did not complete (``completed`` False: a case failed, or the run was stopped) still writes what its passing
        cases recorded: a failed neighbour discards nothing."""
        staged = self.image_baselines.staged if self.image_baselines is not None else {}
        if not staged:
            return None
        line = f"image baselines: recorded {self.image_baselines.commit()} in {self.image_baselines.directory}"
        if not completed:
            line += " (the run failed or was interrupted: the cases that failed or did not run recorded nothing)"
        return line

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
            "matmul_peaks": {precision: peak.to_json() for precision, peak in self._matmul_peaks.items()},
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
            f"{variant.name} ran out of memory on {session.instrument.hardware()['device_name']}: "
            f"{first_line[:200]}; its memory was released and the other variants still run"
        ) from None


class VariantOutOfMemory(RuntimeError):
    pass
