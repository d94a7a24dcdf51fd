"""What each timed call of a variant runs: the pipeline call's arguments and its scheduler.

A :class:`CallPlan` starts as the scenario's call (its prompt, steps, images, resolution and other
arguments, with the scheduler the scenario names) and each of the variant's speed-ups may change it in
its ``call`` stage (diffperf.models.speedups.SpeedUp.call): fewer steps, another guidance scale, given
timesteps or sigmas, another scheduler class or settings. A few-step sampler (LCM, Turbo, Lightning,
FLUX.1-schnell) is such a change. What a variant's speed-ups change is recorded in each case's
``extra_info`` (``call`` and ``call_changes``) and is part of the case's identity
(diffperf.history.identity): runs that called the pipeline differently are not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from diffperf.models.workloads import Scenario

SCHEDULE_ARGUMENTS = ("timesteps", "sigmas")
"""Call arguments that give the schedule itself: with one of them the pipeline ignores ``num_inference_steps``."""


@dataclass
class CallPlan:
    """The arguments of each timed call of a variant and the scheduler it runs with.

    ``arguments`` are the pipeline call's keyword arguments (``prompt``, ``num_inference_steps``,
    ``guidance_scale``, ``timesteps``, ...; the generator, output type and step callback are the timed
    call's own). ``scheduler`` is the scheduler class, built from the family's scheduler config
    (``Family.make_scheduler``) with ``scheduler_config``'s changes on top
    (``{"timestep_spacing": "trailing"}``).
    """

    arguments: dict
    scheduler: type
    scheduler_config: dict = field(default_factory=dict)

    @classmethod
    def of_scenario(cls, family, scenario: Scenario) -> "CallPlan":
        """The scenario's own call, before any speed-up changes it."""
        return cls(scenario.pipeline_kwargs(), family.schedulers[scenario.scheduler])

    @property
    def steps(self) -> int:
        """The denoising steps the call asks for: the given schedule's length, else ``num_inference_steps``."""
        for name in SCHEDULE_ARGUMENTS:
            if self.arguments.get(name) is not None:
                return len(self.arguments[name])
        return int(self.arguments["num_inference_steps"])

    def describe(self) -> dict:
        """The call as plain data (the prompt is the scenario's, recorded beside it)."""
        return {
            "arguments": {name: _plain(value) for name, value in self.arguments.items() if name != "prompt"},
            "scheduler": self.scheduler.__name__,
            "scheduler_config": {name: _plain(value) for name, value in self.scheduler_config.items()},
        }

    def changes(self, original: "CallPlan") -> dict:
        """What differs from ``original`` (the scenario's own call), as plain data; empty when nothing does."""
        mine, theirs = self.describe(), original.describe()
        changed = {name: value for name, value in mine["arguments"].items() if theirs["arguments"].get(name) != value}
        removed = sorted(set(theirs["arguments"]) - set(mine["arguments"]))
        found = {}
        if changed:
            found["arguments"] = changed
        if removed:
            found["removed"] = removed
        if mine["scheduler"] != theirs["scheduler"]:
            found["scheduler"] = mine["scheduler"]
        if mine["scheduler_config"]:
            found["scheduler_config"] = mine["scheduler_config"]
        return found


def _plain(value):
    """A call argument as JSON data (a tuple of timesteps as a list)."""
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return repr(value)
