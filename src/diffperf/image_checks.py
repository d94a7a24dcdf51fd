"""The image-similarity case: a variant's raw decoded output against its stored baselines.

One case runs one variant once on one scenario and obtains the *raw* decoder output (before the
pipeline's ``(x / 2 + 0.5).clamp(0, 1)``), exactly as ``StableDiffusionPipeline.__call__``
makes it: the pipeline runs with ``output_type="latent"`` and the latents are decoded here with
the pipeline's own VAE, ``vae.decode(latents / vae.config.scaling_factor)`` (TAESD's scaling
factor is 1.0). Then, in order:

1. health (:func:`diffperf.similarity.diagnose`): NaN/inf, all black, one flat colour fail with
   that diagnosis;
2. against the variant's own stored baseline, comparison kind ``"same"`` (``"half"`` for
   reduced-precision variants, whose rounding differs between CPU generations);
3. for variants that approximate fp32 (``Variant.approximates_fp32``), against the fp32
   baseline's stored output, kind ``"fp32"`` or ``"half"``.

A failing comparison writes actual, expected and amplified difference PNGs under the run's
output directory and fails with one line giving their paths and the metric values. With
``--perf-update-baselines`` the case records the baseline instead (atomically); a normal run
never writes baselines.
"""

from __future__ import annotations

import contextlib
import copy
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from diffperf.baselines import BaselineError, ImageBaselines, MissingBaseline
from diffperf.similarity import compare, diagnose, difference_image, save_png, to_uint8
from diffperf.variants import VARIANT_NAMES, Variant, get_variant
from diffperf.workloads import SCENARIO_NAMES, Scenario

FP32_VARIANT = "baseline"
"""The variant whose stored output the fp32-approximating variants are compared with."""


def similarity_cases() -> list:
    """Every (variant, scenario) pair, variant by variant (the order the latency cases use)."""
    return [
        pytest.param(variant, scenario, id=f"{variant}-{scenario}")
        for variant in VARIANT_NAMES
        for scenario in SCENARIO_NAMES
    ]


def same_kind(variant: Variant) -> str:
    """The comparison kind of a variant against its own baseline: ``"same"`` for fp32 variants,
    ``"half"`` for fp16/bf16 ones, whose kernels round differently on other CPUs and GPUs
    (bf16 from two CPUs differs as much as bf16 from fp32: see diffperf.similarity)."""
    return "same" if variant.dtype == "float32" else "half"


# ---------------------------------------------------------------------------------------------
# The case
# ---------------------------------------------------------------------------------------------


def run_similarity_case(session, variant_name: str, scenario_name: str) -> dict:
    """Check (or, with --perf-update-baselines, record) ``variant_name``'s image on ``scenario_name``.

    Skips with ``session.skip_reason`` when the variant cannot run here, and when a baseline is
    missing under --perf-allow-missing-baselines; fails with one line per failed check otherwise.
    Returns the metric values, by comparison ("own", "fp32"), for callers that report them.
    """
    from diffperf.session import VariantOutOfMemory
    from diffperf.zoo import ModelNotAvailable

    variant = get_variant(variant_name)
    reason = session.skip_reason(variant)
    if reason is not None:
        pytest.skip(reason)
    scenario = session.scenario(scenario_name)
    options = session.options
    baselines = image_baselines(session)
    key = baselines.key(variant.name, scenario_name)
    artefacts = Artefacts(Path(options.output_dir) / "images", key)
    try:
        raw = variant_output(session, variant, scenario)
    except (VariantOutOfMemory, ModelNotAvailable) as error:
        pytest.fail(str(error), pytrace=False)

    problem = diagnose(raw)
    if problem:
        actual_png = artefacts.write_actual(raw)
        pytest.fail(f"{key}: {problem} (image: {_show(actual_png)})", pytrace=False)

    conditions = scenario_conditions(scenario)
    results: dict = {}
    failures: list[str] = []
    missing: list[str] = []

    def check(label: str, kind: str, baseline_variant: str) -> None:
        problem = None
        try:
            stored = baselines.load(baseline_variant, scenario_name, expected=conditions)
        except MissingBaseline as error:
            if options.allow_missing_baselines:
                missing.append(str(error))
                return
            problem = str(error)
        except BaselineError as error:
            problem = str(error)
        if problem is not None:
            pytest.fail(problem, pytrace=False)  # outside the except block: no chained traceback
        result = compare(raw, stored.raw, kind)
        results[label] = result
        # Written for every own-baseline check (the report shows them side by side), else on failure.
        if label == "own" or not result.passed:
            paths = artefacts.write(label, raw, stored.raw)
        if not result.passed:
            versions = _version_note(stored.provenance, session)
            failures.append(
                f"{key} vs {'its own baseline' if label == 'own' else baseline_variant + ' (fp32) baseline'} "
                f"{_show(stored.data_path)}: {result.summary()} | actual {_show(paths[0])}, "
                f"expected {_show(paths[1])}, difference (amplified x{paths[3]:.3g}) {_show(paths[2])}{versions}"
            )

    if options.update_baselines:
        baselines.record(variant.name, scenario_name, raw, conditions, provenance=_provenance(session))
    else:
        check("own", same_kind(variant), variant.name)
    if variant.approximates_fp32 and variant.name != FP32_VARIANT:
        check("fp32", variant.approximates_fp32, FP32_VARIANT)

    if failures:
        pytest.fail("\n".join(failures), pytrace=False)
    if missing:
        pytest.skip(" ; ".join(missing) + " (--perf-allow-missing-baselines)")
    return results


def image_baselines(session) -> ImageBaselines:
    """The image baselines of the session's profile and device type."""
    return ImageBaselines(session.options.baselines_dir, session.profile_name, session.device.type,
                          record_hint=_record_hint(session))


def scenario_conditions(scenario: Scenario) -> dict:
    """What a stored image depends on, besides profile, device type and variant."""
    return {name: getattr(scenario, name) for name in ("prompt", "seed", "steps", "resolution", "scheduler", "images")}


def variant_output(session, variant: Variant, scenario: Scenario) -> np.ndarray:
    """One run of ``variant`` on ``scenario`` in the session: its raw decoded images."""
    from diffperf.session import out_of_memory_as_failure
    from diffperf.store import runtime_settings

    with out_of_memory_as_failure(variant, session):
        pipe = session.store.pipeline(variant, scenario)
        return raw_output(pipe, scenario, lambda: runtime_settings(variant))


def record_image_baseline(session, variant_name: str, scenario_name: str, note: str | None = None):
    """Run and record one image baseline whether or not the variant would run here (tools only).

    For baselines of variants that lack fast kernels on the recording machine (fp16 on most
    CPUs) but run elsewhere; ``note`` goes into the index entry. Refuses an unhealthy image.
    """
    variant = get_variant(variant_name)
    scenario = session.scenario(scenario_name)
    raw = variant_output(session, variant, scenario)
    problem = diagnose(raw)
    if problem:
        raise ValueError(f"{variant_name}-{scenario_name}: {problem}: not recorded")
    provenance = _provenance(session)
    if note:
        provenance["note"] = note
    return image_baselines(session).record(variant.name, scenario_name, raw, scenario_conditions(scenario),
                                           provenance=provenance)


class Artefacts:
    """Where a case writes its images: ``<output>/images/<variant>-<scenario>-{actual,expected,diff}.png``
    against its own baseline (every run, for the report), and ``...-vs-fp32-*.png`` when the fp32
    comparison fails."""

    def __init__(self, directory: Path, key: str):
        self.directory = directory
        self.key = key

    def write_actual(self, raw: np.ndarray) -> Path:
        path = self.directory / f"{self.key}-actual.png"
        save_png(path, to_uint8(raw))
        return path

    def write(self, label: str, actual: np.ndarray, expected: np.ndarray) -> tuple[Path, Path, Path, float]:
        """Actual, expected and amplified-difference PNGs, and the difference's gain."""
        stem = self.directory / (self.key if label == "own" else f"{self.key}-vs-{label}")
        paths = (Path(f"{stem}-actual.png"), Path(f"{stem}-expected.png"), Path(f"{stem}-diff.png"))
        save_png(paths[0], to_uint8(actual))
        save_png(paths[1], to_uint8(expected))
        save_png(paths[2], difference_image(actual, expected))
        peak = float(np.nanmax(np.abs(actual.astype(np.float64) - expected)))
        # One 8-bit level of the image is 2/255 raw; the difference image maps ``peak`` to 255 levels.
        gain = 2.0 / peak if peak > 0 else 1.0
        return (*paths, gain)


def _show(path: Path) -> str:
    """``path`` relative to the working directory when under it, for shorter messages."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _record_hint(session) -> str:
    hint = "pytest perf --perf-update-baselines"
    if session.options.profile:
        hint += f" --perf-profile {session.profile_name}"
    return hint


def _provenance(session) -> dict:
    """Index-only facts about the recording machine and software."""
    import diffusers
    import transformers

    hardware = session.instrument.hardware()
    facts = {
        "device": hardware["device_name"],
        "torch": torch.__version__,
        "diffusers": diffusers.__version__,
        "transformers": transformers.__version__,
        "numpy": np.__version__,
    }
    if session.device.type == "cpu":
        facts["threads"] = torch.get_num_threads()
        facts["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    return facts


def _version_note(provenance: dict, session) -> str:
    """``" | recorded with other versions: torch A -> B"`` when library versions differ, else ""."""
    now = _provenance(session)
    changed = [
        f"{name} {provenance[name]} -> {now[name]}"
        for name in ("torch", "diffusers", "transformers")
        if name in provenance and provenance[name] != now[name]
    ]
    return f" | recorded with other versions: {', '.join(changed)}" if changed else ""


# ---------------------------------------------------------------------------------------------
# Raw output
# ---------------------------------------------------------------------------------------------


@torch.inference_mode()
def raw_output(pipe, scenario: Scenario, settings=None, *, seed: int | None = None,
               steps: int | None = None) -> np.ndarray:
    """The pipeline's raw decoded images for ``scenario``, float32 (N, H, W, C), unclamped.

    Same generator, arguments and decode call as ``pipe(**scenario.pipeline_kwargs())`` with
    ``output_type="np"`` (whose images are ``(raw / 2 + 0.5).clip(0, 1)``); ``settings`` is the
    variant's runtime-switch context manager factory (TF32), ``seed`` and ``steps`` override the
    scenario's (for planted changes).
    """
    generator = torch.Generator(device="cpu").manual_seed(scenario.seed if seed is None else seed)
    kwargs = scenario.pipeline_kwargs()
    if steps is not None:
        kwargs["num_inference_steps"] = steps
    with settings() if settings is not None else contextlib.nullcontext():
        latents = pipe(**kwargs, generator=generator, output_type="latent").images
        vae = pipe.vae
        image = vae.decode(latents / vae.config.scaling_factor, return_dict=False, generator=generator)[0]
    return image.float().permute(0, 2, 3, 1).cpu().numpy()


# ---------------------------------------------------------------------------------------------
# Planted changes (tests and calibration)
# ---------------------------------------------------------------------------------------------


def perturbed_copy(module: torch.nn.Module, relative: float = 1e-3, seed: int = 1234) -> torch.nn.Module:
    """A deep copy of ``module`` with every floating-point weight multiplied by (1 + relative * N(0, 1))."""
    clone = copy.deepcopy(module)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for parameter in clone.parameters():
            if parameter.is_floating_point():
                noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
                parameter.mul_((1 + relative * noise).to(parameter.device, parameter.dtype))
    return clone
