"""Pipeline variants: a family plus a list of speed-ups, measured against a reference variant.

A :class:`Variant` is plain data: its family, its speed-ups in the order they are applied (a stack
is just a longer list), the variant its speed-up is measured against, the image check it must
pass, where it runs and whether it is opt-in. The variants the suite ships are declared in
:mod:`diffperf.models.sd1`, :mod:`diffperf.models.sdxl`, :mod:`diffperf.models.flux` and
:mod:`diffperf.models.sd3` with the same API users declare theirs with (docs/extending.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch

from diffperf.models.calls import CallPlan
from diffperf.models.family import YARDSTICK, Family, check_tolerance
from diffperf.models.names import check_name
from diffperf.models.optin import OptIn
from diffperf.models.speedups import NOT_COMPARED, OTHER_MODEL, BuildPlan, SpeedUp, check_speedup, unavailable_reason
from diffperf.models.workloads import Scenario

AUTO = "auto"
"""``Variant.image_check`` default: the check follows from the speed-ups (:meth:`Variant.fp32_check`)."""

OWN_CHECKS = ("same", "int8", "half")
"""Kinds of a variant's check against its own baseline, loosest last."""

DEVICE_TYPES = ("cpu", "cuda")



@dataclass(frozen=True)
class Published:
    """A speed-up someone published for a variant: on which GPU, for which scenario, and where.

    ``speedup`` is against the variant's own reference (convert a figure published against
    another variant: the documents' "distilled + tiny autoencoder x1.66" over fp16 SD is x1.09
    over fp16 BK-SDM-small, the reference of ``distilled-taesd-fp16``). The figure holds for the
    ``full`` profile's workload only.
    """

    scenario: str
    speedup: float
    gpu: str  # as the device name shows it, e.g. "A100"
    source: str  # where it was published, in a few words
    note: str = ""  # how it was converted, when it was


@dataclass(frozen=True)
class Variant:
    """One pipeline variant of a family.

    ``reference`` is the variant its speed-up is measured against, paired in the same process
    (None only for a family's fp32 baseline, which has no speed-ups: it is paired with the
    :data:`YARDSTICK`). ``image_check`` is how its
    image compares with the family's fp32 baseline: :data:`AUTO` (from its speed-ups), a kind of
    diffperf.images.similarity.THRESHOLDS, or None (not compared: another model).
    """

    name: str
    family: str
    speedups: tuple[SpeedUp, ...] = ()
    reference: str | None = None
    description: str = ""
    image_check: str | None = AUTO
    devices: tuple[str, ...] = DEVICE_TYPES  # the device types it is meant for (best-cpu: the CPU)
    opt_in: OptIn | None = None
    best_stack: bool = False  # the fastest stack of a device type: its rows come first
    published: tuple[Published, ...] = ()  # figures published for it (shown beside CUDA runs of ``full``)
    tier: int | None = None  # what a time budget keeps first (1) or fits in after (2); None: :attr:`planned_tier`
    tolerance: float | None = None  # its speed-up's band (0.05: +-5%); None: its family's, else the calibration's

    def __post_init__(self):
        check_name("variant", self.name)
        object.__setattr__(self, "speedups", self._checked_speedups())
        object.__setattr__(self, "published", tuple(self.published))
        if self.name == YARDSTICK:
            raise ValueError(f"variant name {YARDSTICK!r} is the fp32 baseline's partner's: choose another name")
        if self.reference is None and self.speedups:
            raise ValueError(f"variant {self.name} has speed-ups but no reference: name the variant its speed-up "
                             "is measured against (e.g. reference='baseline')")
        unknown = set(self.devices) - set(DEVICE_TYPES)
        if unknown:
            raise ValueError(f"variant {self.name}: unknown device types {sorted(unknown)}; use {DEVICE_TYPES}")
        if self.tier not in (None, 1, 2):
            raise ValueError(f"variant {self.name}: tier {self.tier!r}: use 1 (kept first under a time budget), 2 "
                             "or None (from what it is)")
        check_tolerance(f"variant {self.name}", self.tolerance)
        if self.image_check == AUTO:
            self.fp32_check()  # raises when the speed-ups' effects cannot be combined

    def _checked_speedups(self) -> tuple[SpeedUp, ...]:
        """Its speed-ups as a tuple (one SpeedUp alone is a tuple of one); one-line ValueError for anything else."""
        speedups = self.speedups
        if isinstance(speedups, (SpeedUp, type)):  # one speed-up, or a class given for one (said below)
            speedups = (speedups,)
        elif isinstance(speedups, (str, bytes)) or not isinstance(speedups, Iterable):
            raise ValueError(f"variant {self.name}: speedups {speedups!r} is a {type(speedups).__name__}, not a list "
                             "of speed-ups: give SpeedUp objects, e.g. [Attention('sdpa')]")
        speedups = tuple(speedups)
        for speedup in speedups:
            try:
                check_speedup(speedup)
            except ValueError as error:
                raise ValueError(f"variant {self.name}: {error}") from None
        return speedups

    def describe(self) -> str:
        """What it changes: its description, else its speed-ups' descriptions."""
        if self.description:
            return self.description
        return "; ".join(speedup.describe() for speedup in self.speedups) or "fp32 weights, default attention"

    def plan(self, family: Family) -> BuildPlan:
        """What its pipeline is built from: the family's components, changed by each speed-up in turn."""
        plan = BuildPlan.default(family)
        for speedup in self.speedups:
            speedup.plan(plan)
        return plan

    def call_plan(self, family: Family, scenario: Scenario) -> CallPlan:
        """What each of its timed calls on ``scenario`` runs: the scenario's call, changed by each speed-up in turn."""
        call = CallPlan.of_scenario(family, scenario)
        for speedup in self.speedups:
            speedup.call(call)
        return call

    def unsupported(self, family: Family) -> str | None:
        """Why one of its speed-ups cannot change ``family``'s pipeline (one line), or None."""
        for speedup in self.speedups:
            reason = speedup.unsupported(family)
            if reason is not None:
                if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
                    raise ValueError(f"variant {self.name}: speed-up {speedup.name}: unsupported({family.name}) "
                                     f"returned {reason!r}: return None where it works, else one line saying why not")
                return f"{self.name}: {speedup.name} {reason}"
        return None

    @property
    def planned_tier(self) -> int:
        """Its tier under a time budget (``--perf-budget``): the declared ``tier``, else 1 for what the suite exists
        to hold (a family's fp32 baseline, a best stack, another model in a slot: a student or a tiny autoencoder,
        a variant with a published figure) and 2 for the rest."""
        if self.tier is not None:
            return self.tier
        other_model = any(speedup.image_effect == OTHER_MODEL for speedup in self.speedups)
        return 1 if self.reference is None or self.best_stack or self.published or other_model else 2

    @property
    def same_every_step(self) -> bool:
        """Whether its UNet does the same work at every denoising step (``SpeedUp.same_every_step``)."""
        return all(speedup.same_every_step for speedup in self.speedups)

    def fp32_check(self) -> str | None:
        """The comparison kind of its image against the family's fp32 baseline, or None for none.

        Another model (a student, a tiny autoencoder) or another sampler (fewer steps): none. Otherwise the
        one bounded effect of its speed-ups (``half``, ``tome``, ``cache``, ...), or ``fp32`` when they keep the
        numbers equal.
        """
        if self.image_check != AUTO:
            return self.image_check
        effects = {speedup.image_effect for speedup in self.speedups} - {None}
        if effects & set(NOT_COMPARED):
            return None
        if len(effects) > 1:
            raise ValueError(f"variant {self.name} combines speed-ups that change the image in several ways "
                             f"({', '.join(sorted(effects))}): declare its image_check")
        return effects.pop() if effects else "fp32"

    def own_check(self) -> str:
        """The comparison kind of its image against its own stored baseline: the loosest of its speed-ups'."""
        kinds = [speedup.own_check for speedup in self.speedups] + ["same"]
        return max(kinds, key=lambda kind: OWN_CHECKS.index(kind) if kind in OWN_CHECKS else len(OWN_CHECKS))

    def requirement(self, device: torch.device, enabled: frozenset[str] = frozenset()) -> str | None:
        """Why it does not run on ``device`` by itself (one line), or None: opt-in, or it cannot run there."""
        if self.opt_in is not None:
            reason = self.opt_in.reason(self.name, device.type, enabled)
            if reason:
                return reason
        return self.unavailable(device)

    def unavailable(self, device: torch.device) -> str | None:
        """Why it cannot run on ``device`` at all (one line), or None; its opt-in and reference are not looked at."""
        if device.type not in self.devices:
            return f"{self.name} is meant for {' and '.join(self.devices)} (running on {device.type})"
        for speedup in self.speedups:
            try:
                reason = unavailable_reason(speedup, device)
            except ValueError as error:
                raise ValueError(f"variant {self.name}: {error}") from None
            if reason:
                return f"{self.name} {reason}"
        return None
