"""The state of one ``pytest perf`` session: options, device, model store and release plan."""

from __future__ import annotations

import contextlib

import torch

from diffperf import zoo
from diffperf.instruments import make_instrument
from diffperf.options import PerfOptions
from diffperf.profiles import SYNTHETIC_PROFILES
from diffperf.store import PipelineStore, runtime_settings
from diffperf.timing import TimedPipeline
from diffperf.variants import Variant, get_variant, skip_reason
from diffperf.workloads import Scenario, get_scenario


DEFAULT_ROUNDS = {"tiny": 10, "full": 10, "hub": 10}


class PerfSession:
    """Builds variants lazily on first use and releases them after their last case."""

    def __init__(self, options: PerfOptions):
        options.check()
        self.options = options
        self.device = options.resolved_device()
        self.profile_name = options.resolved_profile(self.device)
        self.profile = SYNTHETIC_PROFILES.get(self.profile_name)
        self.rounds = options.rounds or DEFAULT_ROUNDS[self.profile_name]
        self.instrument = make_instrument(self.device)
        self.store = PipelineStore(zoo.make_source(self.profile_name, self.device, options.hub_models), self.device)
        self.planned_variants: list[str | None] = []  # the variant of each collected case, in run order

    def selected(self, variant_name: str) -> bool:
        return not self.options.variants or variant_name in self.options.variants

    def skip_reason(self, variant: Variant) -> str | None:
        if not self.selected(variant.name):
            return f"{variant.name} is not in --perf-variants"
        return skip_reason(variant, self.device, self.options.enabled)

    def scenario(self, name: str) -> Scenario:
        return get_scenario(name).scaled(self.profile)

    def timed_pipeline(self, variant: Variant, scenario: Scenario) -> TimedPipeline:
        pipe = self.store.pipeline(variant, scenario)
        return TimedPipeline(pipe, scenario, self.instrument, lambda: runtime_settings(variant))

    def finished_case(self, index: int) -> None:
        """Release what the cases after ``index`` no longer need."""
        self.store.keep_only(name for name in self.planned_variants[index + 1 :] if name)

    def describe(self) -> dict:
        """Profile, device and software, for the benchmark JSON's machine_info."""
        import diffusers
        import transformers

        return {
            "profile": self.profile_name,
            **self.instrument.hardware(),
            "torch": torch.__version__,
            "diffusers": diffusers.__version__,
            "transformers": transformers.__version__,
        }


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
