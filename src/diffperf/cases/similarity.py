"""The image-similarity case: a variant's raw decoded output against its stored baselines.

One case runs one variant once on one scenario and obtains the *raw* decoder output (before the
pipeline's ``(x / 2 + 0.5).clamp(0, 1)``), exactly as ``StableDiffusionPipeline.__call__``
makes it: the pipeline runs with ``output_type="latent"`` and the latents are decoded here with
the pipeline's own VAE, ``vae.decode(latents / vae.config.scaling_factor)`` (TAESD's scaling
factor is 1.0). Then, in order:

1. health (:func:`diffperf.images.similarity.check_health`): NaN/inf, all black, one flat colour
   fail with a diagnosis that fits the variant's dtype;
2. against the variant's own stored baseline, comparison kind ``"same"`` (``"half"`` for
   reduced-precision variants, whose rounding differs between CPU generations);
3. for variants that approximate fp32 (``Variant.fp32_check``), against the stored output of
   their family's fp32 baseline, kind ``"fp32"`` or ``"half"``; the speed-ups that change the image
   by design (ToMe, DeepCache, int8) get a kind of their own, ``"tome"``, ``"deepcache"`` or
   ``"int8"``, bounded by what the method measured (docs/similarity.md), while their own baseline
   is checked exactly (``"same"``), so any change fails there and one that makes them worse than
   recorded also fails against fp32.

A failing comparison writes actual, expected and amplified difference PNGs under the run's
output directory and fails with one line giving their paths and the metric values (the words
come from :mod:`diffperf.render.image_text`). With ``--perf-update-baselines`` the case records
its baseline instead, once its checks passed, and the fp32 baseline's image its check compares with
when that one is missing or unusable (so a ``-k`` selection records what it needs); they are written
atomically at the end of the run. A normal run never writes baselines.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from diffperf.images.artefacts import Artefacts
from diffperf.images.baselines import BaselineError, ImageBaseline, ImageBaselines, MissingBaseline
from diffperf.images.similarity import ImageComparison, check_health, compare
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scenario
from diffperf.render.image_text import (
    failed_check_line,
    missing_baselines_line,
    recorded_baselines_line,
    unusable_baseline_line,
    unusable_output_line,
)
from diffperf.session import Case

# ---------------------------------------------------------------------------------------------
# The case
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedCheck:
    """One comparison a case makes: its label, its ``THRESHOLDS`` kind and the variant whose baseline it uses."""

    label: str
    """``"own"`` (the variant's own baseline) or ``"fp32"`` (the fp32 variant's)."""
    kind: str
    baseline_variant: str


def planned_checks(variant: Variant, recording: bool, fp32_variant: str) -> list[PlannedCheck]:
    """The comparisons a case makes for ``variant``: its own baseline (not while recording it), under
    ``Variant.own_check`` (``"half"`` for fp16/bf16, whose kernels round differently on other CPUs and
    GPUs; ``"int8"`` for int8 dynamic quantization), and the stored output of its family's fp32
    variant ``fp32_variant`` for variants that approximate fp32."""
    checks = [] if recording else [PlannedCheck("own", variant.own_check(), variant.name)]
    kind = variant.fp32_check()
    if kind and variant.name != fp32_variant:
        checks.append(PlannedCheck("fp32", kind, fp32_variant))
    return checks


def run_similarity_case(session, variant_name: str, scenario_name: str) -> dict[str, ImageComparison]:
    """Check (or, with --perf-update-baselines, record) ``variant_name``'s image on ``scenario_name``.

    Skips with ``session.skip_reason`` when the variant cannot run here, and when a baseline is
    missing under --perf-allow-missing-baselines; fails with one line per failed check otherwise.
    Returns the comparisons made, by label ("own", "fp32"), for callers that report them.
    """
    case = session.case(variant_name, scenario_name)
    reason = session.skip_reason(case.variant, scenario_name)
    if reason is not None:
        pytest.skip(reason)
    try:
        outcome = SimilarityCase(session, case).run(recording=session.options.update_baselines)
    except ImageCheckFailed as error:
        raise pytest.fail.Exception(str(error), pytrace=False) from None  # one line, no chained traceback
    if outcome.failures:
        pytest.fail("\n".join(outcome.failures), pytrace=False)
    if outcome.missing:
        pytest.skip(missing_baselines_line(outcome.missing))
    if outcome.unchecked:
        pytest.skip(outcome.unchecked)
    return outcome.comparisons


def overridden_workload_line(overrides: dict) -> str:
    """Why a case with ``--perf-steps``/``--perf-resolution`` compares no image (its output's health is checked)."""
    given = ", ".join(f"--perf-{name} {value}" for name, value in overrides.items())
    return (f"image checked for health only: {given} changed the workload the image baselines were recorded with; "
            "run without them to compare images")


def record_image_baseline(session, variant_name: str, scenario_name: str, note: str | None = None) -> ImageBaseline:
    """Run and record one image baseline whether or not the variant would run here (``diffperf record-baselines``).

    For baselines of variants that lack fast kernels on the recording machine (fp16 on most
    CPUs) but run elsewhere; ``note`` goes into the index entry. Raises ImageCheckFailed (one
    line) for an unhealthy image or a model that cannot be loaded.
    """
    similarity = SimilarityCase(session, session.case(variant_name, scenario_name))
    return similarity.record(similarity.healthy_output(), note=note)


@dataclass(frozen=True)
class Recorded:
    """One baseline ``record_skipped_baselines`` recorded (``path``), or why it could not (``error``)."""

    variant: str
    scenario: str
    note: str | None
    path: Path | None = None
    error: str | None = None


def record_skipped_baselines(session, variant_names: list[str]) -> list[Recorded]:
    """Record the image baselines of ``variant_names`` on every scenario of their family, including variants
    that would be skipped here (fp16 on a CPU without fp16 kernels: run with ATen's fallback kernels), so that
    a machine where they run passes its first run; the index entry of each skipped one says so."""
    recorded = []
    for name in variant_names:
        variant = session.registry.variant(name)
        reason = session.registry.skip_reason(variant, None, session.device, frozenset({"--perf-speedups"}))
        note = (f"recorded on a {session.device.type.upper()} where it would be skipped ({reason}), with ATen's "
                "fallback kernels") if reason is not None else None
        for scenario in session.registry.family_of(variant).scenarios:
            try:
                entry = record_image_baseline(session, name, scenario.name, note=note)
            except ImageCheckFailed as error:
                recorded.append(Recorded(name, scenario.name, note, error=str(error)))
                continue
            recorded.append(Recorded(name, scenario.name, note, path=Path(entry.data_path)))
        session.store.keep_only([])
    return recorded


class ImageCheckFailed(Exception):
    """A similarity case cannot go on; ``str()`` is one line saying why and what to do."""


@dataclass
class CaseOutcome:
    """What a similarity case found."""

    comparisons: dict[str, ImageComparison] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    """One line per failed comparison."""
    missing: list[str] = field(default_factory=list)
    """One line per baseline missing under --perf-allow-missing-baselines."""
    unchecked: str | None = None
    """Why no stored baseline could be compared with (an overridden workload), in one line."""


class SimilarityCase:
    """One case (a variant on a scenario): its output, recorded or checked against its stored baselines."""

    def __init__(self, session, case: Case):
        self.session = session
        self.variant = case.variant
        self.scenario = case.scenario
        self.baselines = image_baselines(session)
        self.key = self.baselines.key(self.variant.name, self.scenario.name)
        self.artefacts = Artefacts(Path(session.options.output_dir) / "images", self.key)

    def run(self, recording: bool) -> CaseOutcome:
        """Obtain the output, check its health, make the planned checks, then record it if ``recording`` and they
        passed."""
        raw = self.healthy_output()
        overrides = self.session.options.workload_overrides
        if overrides:  # the stored images are of the profile's own workload: none compares with this one
            return CaseOutcome(unchecked=overridden_workload_line(overrides))
        outcome = CaseOutcome()
        for check in planned_checks(self.variant, recording, self.session.registry.family_of(self.variant).baseline):
            try:
                stored = self.baseline(check.baseline_variant, raw.shape, recording=recording)
            except MissingBaseline as error:  # only under --perf-allow-missing-baselines
                outcome.missing.append(str(error))
                continue
            comparison = compare(raw, stored.raw, check.kind)
            outcome.comparisons[check.label] = comparison
            failure = self.report(check, raw, stored, comparison)
            if failure is not None:
                outcome.failures.append(failure)
        if recording and not outcome.failures:
            self.stage(raw)
        return outcome

    def stage(self, raw: np.ndarray) -> None:
        """Keep ``raw`` as the variant's new baseline on the scenario, written at the end of the run
        (diffperf.plugin): a case that failed stages nothing, and discards nothing another case staged."""
        self.baselines.stage(self.variant.name, self.scenario.name, raw, scenario_conditions(self.scenario),
                             provenance=recording_facts(self.session))

    def healthy_output(self) -> np.ndarray:
        """The variant's raw output; ImageCheckFailed when it cannot be made or is unusable (its image written)."""
        from diffperf.models.zoo import ModelNotAvailable
        from diffperf.session import VariantOutOfMemory

        try:
            raw = variant_output(self.session, self.variant, self.scenario)
        except (VariantOutOfMemory, ModelNotAvailable) as error:
            raise ImageCheckFailed(str(error)) from None
        health = check_health(raw)
        if health is not None:
            image = self.artefacts.write_actual(raw)
            raise ImageCheckFailed(unusable_output_line(self.key, health, self.session.store.plan(self.variant).dtype,
                                                        image))
        return raw

    def record(self, raw: np.ndarray, note: str | None = None) -> ImageBaseline:
        """Store ``raw`` as the variant's baseline on the scenario (--perf-update-baselines)."""
        provenance = recording_facts(self.session)
        if note:
            provenance["note"] = note
        return self.baselines.record(self.variant.name, self.scenario.name, raw, scenario_conditions(self.scenario),
                                     provenance=provenance)

    def baseline(self, variant_name: str, shape: tuple[int, ...] | None = None,
                 recording: bool = False) -> ImageBaseline:
        """The stored baseline of ``variant_name`` on the scenario, healthy (and of ``shape``, when given).

        While ``recording``, one that is missing or cannot be used is made now and staged with this run's
        recordings. MissingBaseline under --perf-allow-missing-baselines; ImageCheckFailed for any other problem.
        """
        try:
            stored = self.baselines.load(variant_name, self.scenario.name,
                                         expected=scenario_conditions(self.scenario), shape=shape)
        except BaselineError as error:
            if recording:
                reference = SimilarityCase(self.session, self.session.case(variant_name, self.scenario.name))
                reference.stage(reference.healthy_output())
                return self.baselines.load(variant_name, self.scenario.name)
            if isinstance(error, MissingBaseline) and self.session.options.allow_missing_baselines:
                raise
            raise ImageCheckFailed(str(error)) from None
        health = check_health(stored.raw)
        if health is not None:
            dtype = self.session.store.plan(self.session.registry.variant(variant_name)).dtype
            raise ImageCheckFailed(unusable_baseline_line(stored.data_path, health, dtype, self.baselines.record_hint))
        return stored

    def report(self, check: PlannedCheck, raw: np.ndarray, stored: ImageBaseline,
               comparison: ImageComparison) -> str | None:
        """Write the comparison's images (always against the own baseline, for the HTML report; else on
        failure) and return its failure line, or None when it passed."""
        if check.label != "own" and comparison.passed:
            return None
        images = self.artefacts.write(check.label, raw, stored.raw)
        if comparison.passed:
            return None
        fp32_variant = None if check.label == "own" else check.baseline_variant
        return failed_check_line(self.key, fp32_variant, stored.data_path, comparison, images,
                                 version_changes(stored.provenance, recording_facts(self.session)))


def image_baselines(session) -> ImageBaselines:
    """The image baselines of the session's profile and device type (one per session: it holds what is staged)."""
    if session.image_baselines is None:
        session.image_baselines = ImageBaselines(session.options.baselines_dir, session.profile_name,
                                                 session.device.type, record_hint=record_hint(session))
    return session.image_baselines


def commit_image_baselines(session, completed: bool) -> str | None:
    """Write the image baselines the run's cases staged; one line saying how many and where, None when none was.

    A case stages its image only once its checks passed (:meth:`SimilarityCase.stage`), so a run that did not complete
    (``completed`` False: a case failed, or the run was stopped) still writes what its passing cases recorded: a failed
    neighbour discards nothing."""
    baselines = session.image_baselines
    if baselines is None or not baselines.staged:
        return None
    return recorded_baselines_line(baselines.commit(), baselines.directory, completed)


def record_hint(session) -> str:
    """The command that records this run's baselines where this run reads them."""
    hint = "pytest perf --perf-update-baselines"
    if session.options.profile:
        hint += f" --perf-profile {session.profile_name}"
    return hint + session.options.baselines_hint


def scenario_conditions(scenario: Scenario) -> dict:
    """What a stored image depends on, besides profile, device type and variant."""
    conditions = {name: getattr(scenario, name) for name in ("prompt", "seed", "steps", "resolution", "scheduler",
                                                              "images")}
    if scenario.arguments:  # the call's other arguments (guidance_scale, max_sequence_length, ...)
        conditions["arguments"] = dict(scenario.arguments)
    return conditions


def variant_output(session, variant: Variant, scenario: Scenario) -> np.ndarray:
    """One run of ``variant`` on ``scenario`` in the session: its raw decoded images."""
    from diffperf.session import out_of_memory_as_failure

    with out_of_memory_as_failure(variant, session):
        pipe = session.store.pipeline(variant, scenario)
        return raw_output(pipe, scenario, lambda: session.store.during_calls(variant),
                          arguments=session.store.call_plan(variant, scenario).arguments)


def recording_facts(session) -> dict:
    """Index-only facts about the machine and software that make this run's images."""
    import diffusers
    import transformers

    facts = {
        "device": session.device_name,
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }
    if session.device.type == "cpu":
        facts["threads"] = torch.get_num_threads()
        facts["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return facts


def version_changes(recorded: dict, now: dict) -> list[tuple[str, str, str]]:
    """(library, recorded version, current version) for each of torch, diffusers, transformers that changed."""
    return [
        (name, recorded[name], now[name])
        for name in ("torch", "diffusers", "transformers")
        if name in recorded and recorded[name] != now[name]
    ]


# ---------------------------------------------------------------------------------------------
# Raw output
# ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def raw_output(pipe, scenario: Scenario, settings=None, *, seed: int | None = None,
               steps: int | None = None, arguments: dict | None = None) -> np.ndarray:
    """The pipeline's raw decoded images for ``scenario``, float32 (N, H, W, C), unclamped.

    One ordinary call (the generator, arguments and decode of ``pipe(**scenario.pipeline_kwargs())``
    with ``output_type="np"``), with the output of its autoencoder's ``decode`` kept as it returns
    it, before the pipeline's ``(x / 2 + 0.5).clamp(0, 1)``: whatever the family's pipeline does
    around the decode (SDXL upcasts an fp16 VAE to fp32) is what gets checked. ``settings`` is the
    variant's runtime-switch context manager factory (TF32); ``seed`` and ``steps`` override the
    scenario's (for planted changes); ``arguments`` are the variant's call arguments (its call plan), None: the
    scenario's own.
    """
    generator = torch.Generator(device="cpu").manual_seed(scenario.seed if seed is None else seed)
    kwargs = dict(scenario.pipeline_kwargs() if arguments is None else arguments)
    if steps is not None:
        kwargs["num_inference_steps"] = steps
    vae = pipe.vae
    decode = vae.decode
    decoded = []

    def keep(*args, **decode_kwargs):
        output = decode(*args, **decode_kwargs)
        decoded.append(output[0] if isinstance(output, tuple) else output.sample)
        return output

    vae.decode = keep
    try:
        with settings() if settings is not None else contextlib.nullcontext():
            pipe(**kwargs, generator=generator, output_type="np")
    finally:
        del vae.decode  # the class's method again
    (image,) = decoded
    return image.float().permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Planted changes (tests and calibration)
# ---------------------------------------------------------------------------------------------
