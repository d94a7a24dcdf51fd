"""Workloads (scenarios): what one pipeline call makes, and how a profile scales it down."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from diffperf.models.names import check_name
from diffperf.models.optin import OptIn

RESOLUTION_MULTIPLE = 64
"""Image widths and heights are multiples of this: the VAE's 8x downsampling and the UNet's 3 downsamplings of the
latent make 64 pixels an 8x8 latent."""


def is_resolution(pixels) -> bool:
    """Whether ``pixels`` is an image width and height a pipeline can make: a positive multiple of 64."""
    return is_count(pixels) and pixels % RESOLUTION_MULTIPLE == 0


def is_count(value) -> bool:
    """Whether ``value`` is a whole number of at least 1 (not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 1


RESERVED_ARGUMENTS = ("prompt", "num_inference_steps", "num_images_per_prompt", "height", "width", "generator",
                      "output_type", "callback_on_step_end")
"""Call arguments a scenario's own fields or the timed call give: not in ``arguments``."""


def check_arguments(what: str, arguments) -> None:
    """One-line ValueError unless ``arguments`` is a dict of call arguments other than :data:`RESERVED_ARGUMENTS`."""
    if not isinstance(arguments, dict):
        raise ValueError(f"{what}: arguments {arguments!r} is a {type(arguments).__name__}: give a dict of the "
                         "pipeline call's arguments, e.g. {\"guidance_scale\": 3.5}")
    reserved = [name for name in arguments if name in RESERVED_ARGUMENTS]
    if reserved:
        raise ValueError(f"{what}: arguments {', '.join(reserved)} are the scenario's own fields or the timed call's: "
                         "set steps, images and resolution on the Scenario")


@dataclass(frozen=True)
class Scale:
    """How a small profile runs a family's scenarios: ``resolution`` pixels (None: the scenario's), a fraction of the
    steps (at least 2), and call arguments of its own (``{"max_sequence_length": 32}``: a tiny T5 reads fewer
    tokens)."""

    resolution: int | None
    step_fraction: float
    arguments: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        if self.resolution is not None and not is_resolution(self.resolution):
            raise ValueError(f"Scale resolution={self.resolution!r}: give a positive multiple of "
                             f"{RESOLUTION_MULTIPLE} pixels, or None for the scenario's own")
        fraction = self.step_fraction
        if isinstance(fraction, bool) or not isinstance(fraction, (int, float)) or not 0 < fraction <= 1:
            raise ValueError(f"Scale step_fraction={fraction!r}: give a fraction of the steps above 0 and at most 1")
        check_arguments("Scale", self.arguments)


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
    # The pipeline call's other arguments, as plain data: {"guidance_scale": 3.5, "max_sequence_length": 512}
    arguments: dict = field(default_factory=dict, hash=False)

    def __post_init__(self):
        check_name("scenario", self.name)
        for field in ("images", "steps"):
            if not is_count(getattr(self, field)):
                raise ValueError(f"scenario {self.name}: {field}={getattr(self, field)!r}: give a whole number of at "
                                 "least 1")
        if not is_resolution(self.resolution):
            raise ValueError(f"scenario {self.name}: resolution={self.resolution!r}: give a positive multiple of "
                             f"{RESOLUTION_MULTIPLE} pixels (an 8x8 latent at least)")
        check_arguments(f"scenario {self.name}", self.arguments)

    def scaled(self, scale: Scale | None, steps: int | None = None, resolution: int | None = None) -> "Scenario":
        """The scenario as a profile runs it (``scale``: fewer pixels and steps on small profiles).

        ``steps`` and ``resolution`` (``--perf-steps``, ``--perf-resolution``) override what the
        profile would run.
        """
        scenario = self
        if scale is not None:
            scenario = replace(self, steps=max(2, math.ceil(self.steps * scale.step_fraction)),
                               resolution=scale.resolution or self.resolution,
                               arguments={**self.arguments, **scale.arguments})
        if steps is not None:
            scenario = replace(scenario, steps=steps)
        if resolution is not None:
            scenario = replace(scenario, resolution=resolution)
        return scenario

    def pipeline_kwargs(self) -> dict:
        """The arguments of the scenario's pipeline call (the variant's speed-ups may change them:
        diffperf.models.calls.CallPlan)."""
        return {
            "prompt": self.prompt,
            "num_inference_steps": self.steps,
            "num_images_per_prompt": self.images,
            "height": self.resolution,
            "width": self.resolution,
            **self.arguments,
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
            **({"arguments": dict(self.arguments)} if self.arguments else {}),
        }
