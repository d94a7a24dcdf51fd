"""``--perf-budget``: the run's plan, and the cases its budget holds, chosen before anything runs.

At the end of collection the collected cases (each variant x scenario, whether its latency case,
its similarity case or both were collected) are planned on this device's class
(:func:`diffperf.plan.devices.class_of`), with this run's rounds and the early look of each case
that has a stored expectation, and :func:`diffperf.plan.schedule.fit_budget` chooses: tier 1
whole (or the run is refused in one line), then tier 2 while it fits at its most rounds. The
left-out cases are deselected, as ``-k`` deselects, and named in one line. With
``--perf-max-rounds``, what the chosen cases leave of the budget is the time for extra rounds.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field, replace

from diffperf.gate.expectations import ExpectationsError, case_id
from diffperf.gate.rounds import RoundPolicy
from diffperf.measure.host import this_host
from diffperf.models.names import case_name
from diffperf.models.profiles import default_profile_name
from diffperf.options import PerfOptions
from diffperf.plan.costs import DeviceClass
from diffperf.plan.devices import class_of
from diffperf.plan.schedule import BudgetError, RunPlan, Selection, fit_budget, plan_run
from diffperf.render.plan_text import duration
from diffperf.run_end import run_expectations
from diffperf.wiring.ordering import variant_of


@dataclass
class BudgetClock:
    """A --perf-budget run's clock once its cases run: it leaves out a case that would take the run past the budget's
    end (``ends``, ``time.monotonic()``), predicted from each chosen case's most seconds (``most_seconds``, by
    variant and scenario) at the pace the cases before it ran (a host slower than planned leaves out sooner).
    ``left_out_when_chosen`` says why each case the budget left out when it chose did not run, by case id."""

    ends: float
    most_seconds: dict[tuple[str, str], float]
    left_out_when_chosen: dict[str, str] = field(default_factory=dict)
    pace: list[float] = field(default_factory=list)  # each budgeted case's wall time over its most predicted seconds
    left_out: list[str] = field(default_factory=list)  # the cases :meth:`over` left out, named at the end of the run

    @classmethod
    def of(cls, selection: Selection, ends: float) -> "BudgetClock":
        """The clock of the cases ``selection`` chose, until ``ends``."""
        return cls(ends,
                   {(case.variant, case.scenario): case.latency_seconds(case.most_rounds) for case in selection.chosen},
                   {case_id(case.variant, case.scenario): f"left out by --perf-budget {duration(selection.budget)} "
                                                          f"(tier {case.tier})" for case in selection.left_out})

    def ran(self, variant_name: str, scenario_name: str, seconds: float) -> None:
        """A latency case's wall time, beside its prediction."""
        predicted = self.most_seconds.get((variant_name, scenario_name))
        if predicted:
            self.pace.append(seconds / predicted)

    def over(self, variant_name: str, scenario_name: str) -> str | None:
        """Why a case is left out of a run that has come to its budget's end (one line), or None: the case's most
        predicted seconds would take the run past it."""
        # as much slower as the cases before it ran than their prediction (a host in a slow spell)
        pace = max([1.0, statistics.median(self.pace)] if self.pace else [1.0])
        needed = self.most_seconds.get((variant_name, scenario_name), 0.0) * pace
        left = self.ends - time.monotonic()
        if needed <= left:
            return None
        self.left_out.append(case_name(variant_name, scenario_name))
        return (f"left out: --perf-budget has {max(left, 0):.0f} s left and {variant_name} on {scenario_name} takes up "
                f"to {needed:.0f} s")


@dataclass(frozen=True)
class BudgetedRun:
    """What a budget chose: the selection, the items to keep and to deselect, and the clock its cases run by."""

    plan: RunPlan
    selection: Selection
    kept: list
    deselected: list
    clock: BudgetClock

    def options_for_session(self, options: PerfOptions) -> PerfOptions:
        """The run's options with --perf-max-rounds' extra rounds limited to what the chosen cases leave of the
        budget at their most rounds (none when they leave nothing)."""
        if options.max_rounds is None:
            return options
        left = self.selection.budget - self.selection.most
        if left <= 0:
            return replace(options, max_rounds=None, extra_time=None)
        return replace(options, extra_time=min(left, options.extra_time or left))


def case_of(item) -> tuple[str, str] | None:
    """(variant, scenario) of a collected diffperf case, None for another test."""
    variant = variant_of(item)
    return None if variant is None else (variant, item.callspec.params["scenario"])


def plan_of_run(options: PerfOptions, registry, cases: list[tuple[str, str]] | None = None,
                device: DeviceClass | None = None) -> RunPlan:
    """The plan of a run with ``options``: of ``cases`` (every declared one by default) on this machine's device
    class, the cases this host has stored expectations for with their early look, as its runs have; or on the
    class ``device``, which no stored expectation is known for."""
    import torch

    stored: set[str] = set()
    if device is None:
        here = options.resolved_device()
        device = class_of(here.type, torch.cuda.get_device_name(here) if here.type == "cuda" else "")
        profile = options.resolved_profile(here)
        stored = stored_cases(options, profile, here)
    else:
        profile = options.profile or default_profile_name(device.device_type == "cuda")
    policy = RoundPolicy.for_profile(profile, options.rounds, options.min_rounds, options.warmup, options.max_rounds,
                                     options.extra_time)
    return plan_run(registry, profile, device, policy, options.enabled,
                    looks=lambda variant, scenario: policy.has_looks() and case_id(variant, scenario) in stored,
                    cases=cases, scale_steps=options.steps, scale_resolution=options.resolution)


def budgeted(options: PerfOptions, registry, items: list, started: float) -> BudgetedRun:
    """Plan the collected cases and choose what ``options.budget`` holds, counted from ``started``
    (``time.monotonic()`` when the run began); raises
    :class:`diffperf.plan.schedule.BudgetError` when tier 1 does not fit."""
    collected = list(dict.fromkeys(case for case in map(case_of, items) if case is not None))
    plan = plan_of_run(options, registry, collected)
    selection = fit_budget(plan, options.budget)
    chosen = {(case.variant, case.scenario) for case in selection.chosen}
    skipped_anyway = {(case.variant, case.scenario) for case in plan.cases if not case.runs}
    kept, deselected = [], []
    for item in items:
        case = case_of(item)
        (deselected if case is not None and case not in chosen | skipped_anyway else kept).append(item)
    return BudgetedRun(plan, selection, kept, deselected, BudgetClock.of(selection, started + options.budget))


def stored_cases(options: PerfOptions, profile: str, device) -> set[str]:
    """The case ids this run would judge against a stored expectation (they have an early look)."""
    try:
        found = run_expectations(options, profile, this_host(device), [])
    except ExpectationsError:
        return set()
    return set(found.speedups) if found is not None else set()


__all__ = ["BudgetError", "BudgetedRun", "budgeted"]
