"""The work of one pipeline call of a variant, counted at the profile's size without running it there.

Each component of the variant's build plan is put in the family's own pipeline, and one call is
counted with :func:`diffperf.measure.flops.count_call_flops`, as a latency case counts a real
call: per stage, the denoising loop's first UNet call multiplied by the loop's calls. The call is
made with one denoising step, and the loop's calls are read from the scenario's scheduler set to
the scenario's steps.

On the full-size profiles (``full``, ``short``, ``hub``) the components are built on the ``meta``
device and called behind a :class:`diffperf.measure.meta.MetaModule`: no memory, no weights, any
machine (the full-size FLUX.1 transformer is counted on a laptop). Meta kernels run in Python, a
few seconds per pipeline, so each count is kept in a cache file beside the user's other caches
(``$XDG_CACHE_HOME/diffperf``, or ``DIFFPERF_CACHE``), keyed by the versions of torch and diffusers,
the components' configs and the workload. The ``tiny`` profile's components are small enough to
build and call on the CPU, which is faster than meta.

Components are counted in fp32 (a dtype changes the rate, not the FLOPs). A speed-up that changes
the work without changing the components (DeepCache, token merging) is counted at its
components' full work: the plan's time for it is an upper bound.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import json
import os
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch

from diffperf.files import write_json_atomic
from diffperf.measure.flops import CallFlops, count_call_flops
from diffperf.measure.meta import MetaModule
from diffperf.measure.timing import TimedPipeline
from diffperf.models import zoo
from diffperf.models.calls import SCHEDULE_ARGUMENTS, CallPlan
from diffperf.models.family import Family
from diffperf.models.profiles import architecture
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scenario


class _Untimed:
    """The instrument of a counted call: nothing to synchronise."""

    @staticmethod
    def synchronize() -> None:
        return None


@dataclass(frozen=True)
class Work:
    """One call's FLOPs per stage and its denoiser calls."""

    flops: CallFlops

    @property
    def denoiser_flops(self) -> int:
        return self.flops.stages["denoising"]


def cache_directory() -> Path:
    """Where counted work is kept: ``DIFFPERF_CACHE``, else ``$XDG_CACHE_HOME/diffperf`` (``~/.cache/diffperf``)."""
    if os.environ.get("DIFFPERF_CACHE"):
        return Path(os.environ["DIFFPERF_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "diffperf"


class WorkCounter:
    """Counts the work of variants' calls on one profile, each distinct pipeline (family, components, workload)
    once, and each component's parameters once."""

    def __init__(self, profile: str, cache: Path | None = None, meta: bool | None = None):
        """``meta``: count on meta tensors (None: on the full-size profiles, which only meta holds)."""
        self.architecture = architecture(profile)
        self.meta = self.architecture != "tiny" if meta is None else meta
        self.source = zoo.SyntheticSource(self.architecture, torch.device("meta" if self.meta else "cpu"))
        self.cache_path = (cache or cache_directory()) / "work.json" if self.meta else None
        self._counted: dict[str, Work] = {}
        self._stored = self._read_cache()
        self._parameters: dict[tuple[str, str], int] = {}

    def work(self, family: Family, variant: Variant, scenario: Scenario) -> Work:
        """The work of one call of ``variant`` on ``scenario`` as the profile runs it (already scaled)."""
        components = variant.plan(family).components
        call = variant.call_plan(family, scenario)
        key = self._key(family, components, scenario, call)
        if key not in self._counted:
            stored = self._stored.get(key)
            if stored is not None:
                self._counted[key] = Work(CallFlops(stored["stages"], stored["unet_calls"]))
            else:
                self._counted[key] = self._count(family, components, scenario, call)
                self._store(key, self._counted[key])
        return self._counted[key]

    def parameters(self, family: Family, name: str) -> int:
        """Parameters of one component (0 for a tokenizer), counted once on the meta device."""
        key = (family.name, name)
        if key not in self._parameters:
            module = zoo.SyntheticSource(self.architecture, torch.device("meta")).build(family, name, meta=True)
            self._parameters[key] = zoo.count_parameters(module) if isinstance(module, torch.nn.Module) else 0
        return self._parameters[key]

    def _key(self, family: Family, components: dict[str, str], scenario: Scenario, call: CallPlan) -> str:
        configs = {slot: [name, family.component(name).config(self.architecture), family.component(name).derive
                          is not None] for slot, name in sorted(components.items())}
        import diffusers

        changes = call.changes(CallPlan.of_scenario(family, scenario))  # a few-step call: another count

        text = json.dumps([torch.__version__, diffusers.__version__, family.name, family.pipeline.__name__,
                           configs, asdict(replace(scenario, opt_in=None)), *([changes] if changes else [])],
                          sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:24]

    def _count(self, family: Family, components: dict[str, str], scenario: Scenario, call: CallPlan) -> Work:
        modules = {}
        for slot, name in components.items():
            module = self.source.build(family, name, meta=self.meta)
            modules[slot] = MetaModule(module) if self.meta and isinstance(module, torch.nn.Module) else module
        pipe = zoo.assemble_pipeline(family, modules, family.make_scheduler(call.scheduler, None,
                                                                            call.scheduler_config))
        one_step_call = {name: value for name, value in call.arguments.items() if name not in SCHEDULE_ARGUMENTS}
        timed = TimedPipeline(pipe, scenario, _Untimed(), contextlib.nullcontext,
                              {**one_step_call, "num_inference_steps": 1})
        one_step = count_call_flops(timed)
        calls = denoiser_calls(family, call)
        per_call = one_step.stages["denoising"] // max(one_step.unet_calls, 1)
        return Work(CallFlops({**one_step.stages, "denoising": per_call * calls}, calls))

    def _read_cache(self) -> dict:
        if self.cache_path is None or not self.cache_path.is_file():
            return {}
        try:
            stored = json.loads(self.cache_path.read_text())
            return stored if isinstance(stored, dict) else {}
        except (OSError, ValueError):  # a cache that cannot be read is counted again, and rewritten
            return {}

    def _store(self, key: str, work: Work) -> None:
        if self.cache_path is None:
            return
        self._stored[key] = {"stages": work.flops.stages, "unet_calls": work.flops.unet_calls}
        with contextlib.suppress(OSError):  # a cache that cannot be written only costs the count next time
            write_json_atomic(self.cache_path, self._stored)


def denoiser_calls(family: Family, call: CallPlan) -> int:
    """The denoising loop's calls of a call: its given schedule's length, else its scheduler's timesteps at its
    steps."""
    if any(call.arguments.get(name) is not None for name in SCHEDULE_ARGUMENTS):
        return call.steps
    scheduler = family.make_scheduler(call.scheduler, None, call.scheduler_config)
    set_timesteps = scheduler.set_timesteps
    if "mu" in inspect.signature(set_timesteps).parameters and scheduler.config.get("use_dynamic_shifting"):
        set_timesteps(call.steps, mu=1.0)  # the shift moves the timesteps, not how many there are
    else:
        set_timesteps(call.steps)
    return len(scheduler.timesteps)
