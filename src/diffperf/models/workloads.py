"""The source documents' two workloads, and how a profile scales them down."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from diffperf.models.profiles import Profile


@dataclass(frozen=True)
class Scenario:
    name: str
    prompt: str
    images: int
    steps: int
    scheduler: str
    seed: int
    resolution: int = 512

    def scaled(self, profile: Profile | None, steps: int | None = None, resolution: int | None = None) -> "Scenario":
        """The scenario as ``profile`` runs it (synthetic small profiles use fewer pixels and steps).

        ``steps`` and ``resolution`` (``--perf-steps``, ``--perf-resolution``) override what the
        profile would run.
        """
        scenario = self
        if profile is not None:
            scenario = replace(self, steps=max(2, math.ceil(self.steps * profile.step_fraction)),
                               resolution=profile.resolution)
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


SCENARIOS: tuple[Scenario, ...] = (
    # Arabic page: A100 table, 1 image, 50 DDIM steps, 512x512.
    Scenario("astronaut", "a photo of an astronaut riding a horse on mars", images=1, steps=50,
             scheduler="ddim", seed=0),
    # Chinese page / distilled section: 4 images per prompt, 25 PNDM steps, seed 2023.
    Scenario("vase", "a golden vase with different flowers", images=4, steps=25, scheduler="pndm", seed=2023),
)
SCENARIO_NAMES = tuple(scenario.name for scenario in SCENARIOS)
_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}


def get_scenario(name: str) -> Scenario:
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown scenario {name!r}: choose one of {', '.join(SCENARIO_NAMES)}") from None
