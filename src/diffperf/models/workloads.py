"""Workloads (scenarios): what one pipeline call makes, and how a profile scales it down."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from diffperf.models.optin import OptIn


@dataclass(frozen=True)
class Scale:
    """How a small profile runs a family's scenarios: ``resolution`` pixels (None: the scenario's), a fraction of the
    steps (at least 2)."""

    resolution: int | None
    step_fraction: float


@dataclass(frozen=True)
class Scenario:
    name: str
    prompt: str
    images: int
    steps: int
    scheduler: str  # a name the family's ``schedulers`` declares
    seed: int
    resolution: int = 512
    opt_in: OptIn | None = None  # a scenario left out by default on some devices

    def scaled(self, scale: Scale | None, steps: int | None = None, resolution: int | None = None) -> "Scenario":
        """The scenario as a profile runs it (``scale``: fewer pixels and steps on small profiles).

        ``steps`` and ``resolution`` (``--perf-steps``, ``--perf-resolution``) override what the
        profile would run.
        """
        scenario = self
        if scale is not None:
            scenario = replace(self, steps=max(2, math.ceil(self.steps * scale.step_fraction)),
                               resolution=scale.resolution or self.resolution)
        if steps is not None:
            scenario = replace(scenario, steps=steps)
        if resolution is not None:
            scenario = replace(scenario, resolution=resolution)
        return scenario

    def pipeline_kwargs(self) -> dict:
        return {
            "prompt": self.prompt,
            "num_inference_steps": self.steps,
            "num_images_per_prompt": self.images,
            "height": self.resolution,
            "width": self.resolution,
        }

    def describe(self) -> dict:
        return {
            "scenario": self.name,
            "prompt": self.prompt,
            "images": self.images,
            "steps": self.steps,
            "scheduler": self.scheduler,
            "seed": self.seed,
            "resolution": self.resolution,
        }
