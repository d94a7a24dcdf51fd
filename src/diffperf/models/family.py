"""Model families: what a pipeline is made of, as plain data.

A :class:`Family` names its diffusers pipeline class, its components (each with an exact ``full``
config, a ``tiny`` config that keeps its structure, and where its real weights live), its
scheduler, its workloads and how the ``tiny`` profile scales them. Components whose name is a
pipeline argument (``unet``, ``text_encoder_2``, ``vae``, ...) make the family's pipeline;
the others are alternatives a speed-up can put in their slot: students derived from the teacher
by code (BK-SDM, SSD-1B) and tiny autoencoders. docs/extending.md shows how to declare one.
"""

from __future__ import annotations

import inspect
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from diffperf.models.profiles import SYNTHETIC, architecture
from diffperf.models.workloads import Scale, Scenario

YARDSTICK = "yardstick"
"""The partner of a family's fp32 baseline (its variant without a reference): a fixed sequence of torch calls at
its UNet's shapes (diffperf.measure.yardstick), so that "baseline vs yardstick" shows a change that makes every
pipeline of the family slower. No variant may take the name."""


DENOISER_SLOTS = ("unet", "transformer")
"""The pipeline arguments a denoiser fills: a UNet pipeline's ``unet``, a DiT pipeline's ``transformer``."""


# A Hugging Face hub repository id: ``NAME`` or ``OWNER/NAME``, of letters, digits, ``-``, ``_`` and ``.``.
HUB_ID_SHAPE = re.compile(r"[\w.-]+(/[\w.-]+)?")


def is_local(repo: str) -> bool:
    """Whether ``repo`` (a hub id or a directory) names a local directory: one that exists, a path (``./sd15``,
    ``/models/sd15``, ``~/sd15``), or anything not shaped like a hub id."""
    return repo.startswith((".", "/", "~")) or HUB_ID_SHAPE.fullmatch(repo) is None or Path(repo).is_dir()


@dataclass(frozen=True)
class HubId:
    """Where a component's real weights live: a hub id or local directory, and its subfolder."""

    repo: str
    subfolder: str | None = None


@dataclass(frozen=True)
class Component:
    """One module of a family: a pipeline component or an alternative to one.

    ``cls`` is the class that builds it (a diffusers model, a transformers model or a tokenizer).
    On the synthetic profiles (``full``, ``tiny``) it is built from ``full`` or ``tiny`` with
    seeded random weights, or, when ``derive`` is given, derived by code from the family's
    ``teacher`` component (a student with blocks removed and the rest copied, a copy with another
    config); on the ``hub`` profile it is loaded from ``hub``.
    """

    name: str
    cls: type
    full: dict = field(default_factory=dict)
    tiny: dict = field(default_factory=dict)
    hub: HubId | None = None
    slot: str | None = None  # the pipeline argument it fills; None: its own name
    derive: Callable | None = None  # derive(teacher module, meta: bool) -> module
    teacher: str | None = None  # the component ``derive`` is given
    seed: int | None = None  # seed of its random weights; None: from the family's and its own name
    published_parameters: int | None = None  # the count its publishers state, checked on ``full``

    @property
    def fills(self) -> str:
        """The pipeline argument this component is passed as."""
        return self.slot or self.name

    def config(self, profile: str) -> dict:
        """Its config on a synthetic profile (``full`` or ``tiny``)."""
        if profile not in SYNTHETIC:
            raise ValueError(f"{self.name} has configs for {', '.join(SYNTHETIC)}, not {profile!r}")
        return dict(self.full if architecture(profile) == "full" else self.tiny)

    def weight_seed(self, family: str) -> int:
        if self.seed is not None:
            return self.seed
        return zlib.crc32(f"{family}/{self.name}".encode()) % 2**31


def check_tolerance(what: str, tolerance: float | None) -> None:
    """A declared speed-up band: None, or a fraction between 0 and 1 (0.05 for +-5%)."""
    if tolerance is not None and (isinstance(tolerance, bool) or not isinstance(tolerance, (int, float))
                                  or not 0 < tolerance < 1):
        raise ValueError(f"{what}: tolerance {tolerance!r}: give a fraction between 0 and 1 (0.05 for a +-5% band) "
                         "or None")


@dataclass(frozen=True)
class Family:
    """A pipeline class, its components, its scheduler and its workloads."""

    name: str
    description: str
    pipeline: type  # e.g. diffusers.StableDiffusionXLPipeline
    components: tuple[Component, ...]
    scheduler: type  # the class its scheduler config belongs to (the pipeline's default)
    scheduler_config: dict
    schedulers: dict[str, type]  # the schedulers its scenarios may name, built from scheduler_config
    scenarios: tuple[Scenario, ...]
    baseline: str  # the family's fp32 variant: the image the fp32-approximating variants are compared with
    tiny_scale: Scale = Scale(resolution=128, step_fraction=0.1)
    short_scale: Scale = Scale(resolution=None, step_fraction=0.2)  # the short profile: a fifth of the steps
    hub_repo: str | None = None  # the pipeline repository its own components and scheduler come from
    pipeline_kwargs: dict = field(default_factory=dict)  # other constructor arguments (no safety checker, ...)
    tolerance: float | None = None  # its variants' speed-up band (0.05: +-5%); None: the calibration's

    def __post_init__(self):
        names = [component.name for component in self.components]
        if len(set(names)) != len(names):
            raise ValueError(f"family {self.name}: component names repeat ({', '.join(names)})")
        scenarios = [scenario.name for scenario in self.scenarios]
        if len(set(scenarios)) != len(scenarios):
            raise ValueError(f"family {self.name}: scenario names repeat ({', '.join(scenarios)})")
        self._check_pipeline_arguments()
        for component in self.components:
            if component.derive is not None and component.teacher not in names:
                raise ValueError(f"family {self.name}: {component.name} derives from unknown component "
                                 f"{component.teacher!r}")
        check_tolerance(f"family {self.name}", self.tolerance)
        for scenario in self.scenarios:
            if scenario.scheduler not in self.schedulers:
                raise ValueError(f"family {self.name}: scenario {scenario.name} names scheduler "
                                 f"{scenario.scheduler!r}; declared: {', '.join(self.schedulers)}")

    def _check_pipeline_arguments(self) -> None:
        """Every argument the pipeline's constructor needs (those without a default, as diffusers'
        ``DiffusionPipeline._get_signature_keys`` reads them) is a component, the scheduler or in ``pipeline_kwargs``,
        and it takes every one of those; one-line ValueError otherwise."""
        parameters = inspect.signature(self.pipeline.__init__).parameters
        arguments = [name for name, parameter in parameters.items() if name != "self"
                     and parameter.kind in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY)]
        pipeline = self.pipeline.__name__
        given = [*self.slots, *self.pipeline_kwargs]
        missing = [name for name in arguments
                   if parameters[name].default is parameters[name].empty and name not in {*given, "scheduler"}]
        if missing:
            optional = [name for name in missing if name in getattr(self.pipeline, "_optional_components", ())]
            none = f", or None for the optional ones: pipeline_kwargs={dict.fromkeys(optional)}" if optional else ""
            raise ValueError(f"family {self.name}: {pipeline} needs {', '.join(missing)}, which no component fills: "
                             f"declare a Component named after each{none}")
        if not any(parameter.kind is parameter.VAR_KEYWORD for parameter in parameters.values()):
            unknown = [name for name in given if name not in arguments]
            if unknown:
                raise ValueError(f"family {self.name}: {pipeline} takes no argument {', '.join(unknown)}: its "
                                 f"arguments are {', '.join(arguments)}; name a component after one of them, or give "
                                 "the slot it fills (slot=\"unet\")")

    @property
    def slots(self) -> tuple[str, ...]:
        """The pipeline's own components: those named after the argument they fill."""
        return tuple(component.name for component in self.components if component.fills == component.name)

    def component(self, name: str) -> Component:
        return self._named(self.components, name, "component")

    def scenario(self, name: str) -> Scenario:
        return self._named(self.scenarios, name, "scenario")

    def _named(self, items: tuple, name: str, what: str):
        """The item called ``name``; a one-line ValueError listing the names otherwise."""
        for item in items:
            if item.name == name:
                return item
        raise ValueError(f"family {self.name} has no {what} {name!r}: choose one of "
                         f"{', '.join(item.name for item in items)}")

    def scale(self, profile: str) -> Scale | None:
        """How ``profile`` scales the workloads: tiny runs fewer pixels and steps, short fewer steps."""
        return {"tiny": self.tiny_scale, "short": self.short_scale}.get(profile)

    def make_scheduler(self, scheduler: str | type, config: dict | None = None, changes: dict | None = None):
        """A scheduler: one a scenario names, or a scheduler class (a speed-up's: diffperf.models.calls.CallPlan),
        configured from the family's scheduler config with ``changes`` on top.

        The config is completed by the family's own scheduler class first, as diffusers' docs do it
        (``DDIMScheduler.from_config(pipe.scheduler.config)``): a bare ``DDIMScheduler()`` is wrong for SD.
        """
        if isinstance(scheduler, str):
            if scheduler not in self.schedulers:
                raise ValueError(f"unknown scheduler {scheduler!r}: choose one of {', '.join(self.schedulers)}")
            scheduler = self.schedulers[scheduler]
        base = self.scheduler.from_config(dict(self.scheduler_config if config is None else config))
        if scheduler is self.scheduler and not changes:
            return base
        return scheduler.from_config(base.config, **(changes or {}))

    @property
    def denoiser(self) -> str:
        """The slot of the model the denoising loop calls: ``unet``, else ``transformer``."""
        for slot in DENOISER_SLOTS:
            if slot in self.slots:
                return slot
        raise ValueError(f"family {self.name} has no unet or transformer component")
