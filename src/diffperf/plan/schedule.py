"""A run's plan before anything runs: its cases, their rounds and calls, and the predicted wall time.

:func:`plan_run` lists every case of a registry (variant x scenario) with whether it runs on the
device, its tier, its rounds (from the run's :class:`diffperf.gate.rounds.RoundPolicy`), its calls
and their predicted seconds (:mod:`diffperf.plan.costs`, on the work :mod:`diffperf.plan.work`
counts). :func:`fit_budget` chooses the cases a time budget holds: tier 1 first (each family's fp32
baseline, its best stack, its students and tiny autoencoders, the variants with published figures),
then tier 2 in declared order while they fit; what is left out is returned, never dropped.

A latency case's time is its warm-up pairs, its timed pairs and the partner's closing call, plus
its probes (``case_overhead`` calls of the variant: the counted call and the memory probe); a
similarity case's is one call of the variant. A run adds its start-up, the building of each
component it uses (once per dtype) and each compiled variant's compilation.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import torch

from diffperf.gate.rounds import RoundPolicy
from diffperf.measure.flops import precision_of
from diffperf.measure.yardstick import DENOISERS, FOLLOWED_CONFIG
from diffperf.models.family import YARDSTICK
from diffperf.models.names import case_name
from diffperf.models.registry import Registry
from diffperf.models.speedups import Attention, Compile
from diffperf.models.variants import Variant
from diffperf.plan.costs import DeviceClass
from diffperf.plan.work import WorkCounter


@dataclass(frozen=True)
class CasePlan:
    """One variant on one scenario: what it runs and what it is predicted to take."""

    variant: str
    scenario: str
    family: str
    tier: int
    partner: str | None  # the reference variant, the yardstick, or None
    why_not: str | None  # why it does not run on the device (one line), or None
    warmup: int
    fewest_rounds: int  # the early look's when it has one
    most_rounds: int
    rounds: float  # expected: the fewest, and the rest for the device's share of looked cases that go on
    variant_seconds: float  # one call
    partner_seconds: float
    probe_seconds: float
    compile_seconds: float
    components: frozenset = field(default_factory=frozenset)  # (family, component, dtype, parameters) it builds

    @property
    def case_id(self) -> str:
        return case_name(self.variant, self.scenario)

    @property
    def runs(self) -> bool:
        return self.why_not is None

    def latency_seconds(self, rounds: float | None = None) -> float:
        """Warm-up pairs, ``rounds`` timed pairs (the expected ones by default), the closing partner call, probes."""
        pairs = self.warmup + (self.rounds if rounds is None else rounds)
        closing = self.partner_seconds if self.partner else 0.0
        return pairs * (self.variant_seconds + self.partner_seconds) + closing + self.probe_seconds

    @property
    def calls(self) -> int:
        """Pipeline (and yardstick) calls at the expected rounds: the latency case's and the similarity case's."""
        pairs = self.warmup + self.rounds
        return round(pairs * (2 if self.partner else 1) + (1 if self.partner else 0) + 1)

    def seconds(self, rounds: float | None = None) -> float:
        """Both of its cases (latency and similarity) and its compilation, without the builds."""
        return self.latency_seconds(rounds) + self.variant_seconds + self.compile_seconds


@dataclass(frozen=True)
class RunPlan:
    """Every case of a run on a device class, and the run's fixed costs."""

    device: DeviceClass
    profile: str
    cases: tuple[CasePlan, ...]

    @property
    def running(self) -> list[CasePlan]:
        return [case for case in self.cases if case.runs]

    def build_seconds(self, cases: list[CasePlan]) -> float:
        """Building each component the cases use, once per dtype."""
        built = set().union(*(case.components for case in cases)) if cases else set()
        return sum(parameters for *_, parameters in built) * self.device.build_seconds_per_parameter

    def predicted(self, cases: list[CasePlan] | None = None, most: bool = False) -> float:
        """Wall seconds of a run of ``cases`` (the running ones by default): expected, or at most (every case
        taking its most rounds)."""
        cases = self.running if cases is None else cases
        per_case = sum(case.seconds(case.most_rounds if most else None) for case in cases)
        return self.device.startup_seconds + self.build_seconds(cases) + per_case


@dataclass(frozen=True)
class BudgetError(Exception):
    """A budget that cannot hold the run's first tier: the budget, what tier 1 needs, its cases, on which device
    (:func:`diffperf.render.plan_text.budget_error_line` words it)."""

    budget: float
    needed: float
    cases: int
    device: str


@dataclass(frozen=True)
class Selection:
    """What a budget holds: the chosen cases, those left out (each named), and the predicted wall."""

    budget: float
    chosen: tuple[CasePlan, ...]
    left_out: tuple[CasePlan, ...]
    predicted: float
    most: float


def fit_budget(plan: RunPlan, budget: float, whole_first_tier: bool = True) -> Selection:
    """The running cases that fit ``budget`` seconds (at their most rounds): all of tier 1, then tier 2 in declared
    order while each fits. Raises :class:`BudgetError` when tier 1 alone does not fit, or, without
    ``whole_first_tier`` (an A/B comparison, which compares whatever both sides ran), takes tier 1's cases in
    declared order while each fits too, and raises only when not even the first fits."""
    running = plan.running
    first = [case for case in running if case.tier == 1]
    needed = plan.predicted(first, most=True)
    if whole_first_tier and needed > budget:
        raise BudgetError(budget, needed, len(first), plan.device.name)
    chosen = list(first) if whole_first_tier else []
    for case in sorted(running, key=lambda case: case.tier):
        if case not in chosen and plan.predicted(chosen + [case], most=True) <= budget:
            chosen.append(case)
    if not chosen and running:
        raise BudgetError(budget, plan.predicted(running[:1], most=True), 1, plan.device.name)
    order = {case.case_id: index for index, case in enumerate(running)}
    chosen.sort(key=lambda case: order[case.case_id])
    left_out = tuple(case for case in running if case not in chosen)
    return Selection(budget, tuple(chosen), left_out, plan.predicted(chosen), plan.predicted(chosen, most=True))


def plan_run(registry: Registry, profile: str, device: DeviceClass, policy: RoundPolicy,
             enabled: frozenset[str] = frozenset(), looks=lambda variant, scenario: False,
             counter: WorkCounter | None = None, cases: list[tuple[str, str]] | None = None,
             scale_steps: int | None = None, scale_resolution: int | None = None) -> RunPlan:
    """The plan of ``cases`` (every case of the registry by default) on ``device`` under ``profile``.

    ``looks(variant, scenario)`` says whether a case has an early look (a stored expectation to stop against);
    ``enabled`` are the opt-in flags given. Whether a case runs is decided as the run decides it, for the
    device class's device type (a speed-up's missing package on this machine counts as missing there).
    """
    counter = counter or WorkCounter(profile)
    torch_device = torch.device(device.device_type)
    planned = []
    for variant_name, scenario_name in cases if cases is not None else registry.cases():
        variant = registry.variant(variant_name)
        family = registry.family(variant.family)
        scenario = family.scenario(scenario_name).scaled(family.scale(profile), scale_steps, scale_resolution)
        why_not = registry.skip_reason(variant, scenario_name, torch_device, enabled)
        seconds = call_seconds(counter, device, registry, variant, scenario)
        partner, partner_seconds = None, 0.0
        if variant.reference is not None:
            partner = variant.reference
            partner_seconds = call_seconds(counter, device, registry, registry.variant(partner), scenario)
        elif yardstick_follows(family):  # a family's fp32 baseline, timed against its denoiser's yardstick
            partner, partner_seconds = YARDSTICK, yardstick_seconds(counter, device, registry, variant, scenario)
        fewest, most = policy.planned_rounds(looks(variant_name, scenario_name) and partner is not None)
        expected = fewest + device.continued_share * (most - fewest)
        components = built_components(counter, registry, variant)
        if variant.reference is not None:
            components |= built_components(counter, registry, registry.variant(variant.reference))
        compiles = any(isinstance(speedup, Compile) for speedup in variant.speedups)
        planned.append(CasePlan(
            variant_name, scenario_name, family.name, variant.planned_tier, partner, why_not, policy.warmup,
            fewest, most, expected, seconds, partner_seconds, device.case_overhead * seconds,
            device.compile_seconds if compiles else 0.0, frozenset(components)))
    return RunPlan(device, profile, tuple(planned))


def call_seconds(counter: WorkCounter, device: DeviceClass, registry: Registry, variant: Variant, scenario) -> float:
    """Predicted seconds of one call of ``variant`` on ``scenario`` (as the profile runs it)."""
    family = registry.family(variant.family)
    work = counter.work(family, variant, scenario)
    plan = variant.plan(family)
    precision = precision_of(plan.dtype, plan.tf32, device.device_type)
    classic = any(isinstance(speedup, Attention) and speedup.backend == "classic" for speedup in variant.speedups)
    return device.model.call_seconds(work.flops.total, work.flops.unet_calls, precision, classic)


def yardstick_seconds(counter: WorkCounter, device: DeviceClass, registry: Registry, variant: Variant,
                      scenario) -> float:
    """The yardstick's call: torch calls at the shapes of the denoiser (UNet or transformer), counted as the denoising
    stage's work without the pipeline."""
    work = counter.work(registry.family(variant.family), variant, scenario)
    model = device.model
    return model.call_seconds(work.denoiser_flops, work.flops.unet_calls, variant.plan(
        registry.family(variant.family)).dtype) - model.call_overhead


def yardstick_follows(family) -> bool:
    """Whether ``family``'s denoiser is one the yardstick follows: its class takes the config keys of
    diffperf.measure.yardstick.FOLLOWED_CONFIG (a diffusers model's config holds every argument of its class, given
    or default), so that its fp32 baseline is timed against a yardstick (else alone)."""
    for slot in DENOISERS:
        if slot in family.slots:
            return FOLLOWED_CONFIG[slot] <= set(inspect.signature(family.component(slot).cls.__init__).parameters)
    return False


def built_components(counter: WorkCounter, registry: Registry, variant: Variant) -> set[tuple]:
    """(family, component, dtype, parameters) of each module the variant's pipeline builds."""
    family = registry.family(variant.family)
    plan = variant.plan(family)
    return {(family.name, name, plan.dtype, counter.parameters(family, name)) for name in plan.components.values()}
