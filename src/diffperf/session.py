"""The state of one ``pytest perf`` session: options, device, model store and release plan."""

from __future__ import annotations

import contextlib
import datetime

import torch

from diffperf import expectations, gate, zoo
from diffperf.gate import CaseResult, GateReport
from diffperf.instruments import make_instrument
from diffperf.options import PerfOptions
from diffperf.profiles import SYNTHETIC_PROFILES
from diffperf.store import PipelineStore, runtime_settings
from diffperf.timing import TimedPipeline
from diffperf.variants import Variant, get_variant, skip_reason
from diffperf.workloads import Scenario, get_scenario


DEFAULT_ROUNDS = {"tiny": 16, "full": 10, "hub": 10}
# GPUs pay cuDNN autotuning, allocator growth and lazy initialisation on the first calls.
DEFAULT_WARMUP = {"tiny": 1, "full": 3, "hub": 3}


class PerfSession:
    """Builds variants lazily on first use and releases them after their last case."""

    def __init__(self, options: PerfOptions):
        options.check()
        self.options = options
        self.device = options.resolved_device()
        self.profile_name = options.resolved_profile(self.device)
        self.profile = SYNTHETIC_PROFILES.get(self.profile_name)
        self.rounds = options.rounds or DEFAULT_ROUNDS[self.profile_name]
        self.warmup = DEFAULT_WARMUP[self.profile_name] if options.warmup is None else options.warmup
        self._peak_memory: dict[tuple[str, str], int | None] = {}
        self.instrument = make_instrument(self.device)
        self.store = PipelineStore(
            zoo.make_source(self.profile_name, self.device, options.hub_models),
            self.device,
            planted_slowdowns=options.planted_slowdowns,
            synchronize=self.instrument.synchronize,
        )
        self.planned_variants: list[str | None] = []  # the variant of each collected case, in run order
        self.results: list[CaseResult] = []  # what the latency cases measured, for the gate
        self.skipped: dict[str, str] = {}  # case id -> why it did not run
        self._gate: GateReport | None = None

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

    def peak_memory_growth(self, variant_name: str, scenario_name: str, call) -> int | None:
        """Peak memory growth of one warm call of a variant on a scenario, measured once per session."""
        key = (variant_name, scenario_name)
        if key not in self._peak_memory:
            self._peak_memory[key] = self.instrument.peak_memory_growth(call)
        return self._peak_memory[key]

    def finished_case(self, index: int) -> None:
        """Release what the cases after ``index`` no longer need."""
        self.store.keep_only(name for name in self.planned_variants[index + 1 :] if name)

    def gate_report(self) -> GateReport:
        """The speed-up gate over the cases run so far (computed once, at the end of the run)."""
        if self._gate is None:
            hardware = self.instrument.hardware()
            try:
                stored, note = expectations.lookup(
                    self.options.baselines_dir, self.profile_name, hardware, self.options.baseline_key
                )
                self._gate = gate.evaluate(self.results, stored, note, self.skipped)
            except expectations.ExpectationsError as error:
                self._gate = gate.evaluate(self.results, None, "expected speed-ups could not be read")
                self._gate.rows.append(gate.GateRow("speed-up", "-", "-", "-", "error", str(error)))
        return self._gate

    def record_expectations(self) -> list[str]:
        """Store this run's speed-ups as the expectations of this hardware (--perf-update-baselines)."""
        hardware = self.instrument.hardware()
        key = self.options.baseline_key or expectations.hardware_key(hardware)
        speedups, memory, refused = gate.new_expectations(self.gate_report(), self.device.type)
        if not speedups:
            return refused + ["no expected speed-ups recorded"]
        recorded = {**self.describe(), "rounds": self.rounds, "date": datetime.date.today().isoformat()}
        path = expectations.record(self.options.baselines_dir, self.profile_name, key, recorded, speedups, memory)
        return refused + [f"recorded {len(speedups)} expected speed-ups for {key} in {path}"]

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
            "cuda": torch.version.cuda,
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
