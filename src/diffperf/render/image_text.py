"""Image similarity in words: a comparison's line, a failed check's line, a health diagnosis.

Everything here reads numbers and statuses from :mod:`diffperf.images.similarity`; nothing here
computes a metric or decides a verdict.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from diffperf.images.similarity import ALL_BLACK, FLAT, FLAT_TOLERANCE, NON_FINITE, HealthProblem, ImageComparison

if TYPE_CHECKING:
    from diffperf.images.artefacts import ArtefactImages

DTYPE_NAMES = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16"}


def metric_failure(comparison: ImageComparison, metric: str) -> str:
    """One failed metric against its limit, e.g. "PSNR 31.2 dB < 40.0 dB"."""
    limits = comparison.thresholds
    if metric == "psnr_db":
        return f"PSNR {comparison.psnr_db:.1f} dB < {limits.min_psnr_db:.1f} dB"
    if metric == "ssim":
        return f"SSIM {comparison.ssim:.8f} < {limits.min_ssim:.8f}"
    if metric == "cosine_distance":
        return f"centred cosine distance {comparison.cosine_distance:.2e} > {limits.max_cosine_distance:g}"
    if metric == "max_abs_diff":
        return f"max |diff| {comparison.max_abs_diff:.2e} > {limits.max_abs_diff:g} of range"
    raise ValueError(f"unknown metric {metric!r}")


def comparison_line(comparison: ImageComparison) -> str:
    """One line with the verdict, every metric value and what failed."""
    line = (
        f"{comparison.kind}: {'PASS' if comparison.passed else 'FAIL'}"
        f" | PSNR {comparison.psnr_db:.1f} dB | SSIM {comparison.ssim:.8f}"
        f" | centred cos dist {comparison.cosine_distance:.2e}"
        f" | plain cos dist {comparison.plain_cosine_distance:.2e}"
        f" | max|diff| {comparison.max_abs_diff:.2e} of range"
    )
    if comparison.failed:
        line += " | failed: " + "; ".join(metric_failure(comparison, metric) for metric in comparison.failed)
    return line


def diagnosis(health: HealthProblem, dtype: str) -> str:
    """What is wrong with an unusable batch made in ``dtype`` ("float32", "float16", "bfloat16"), in one line."""
    if health.problem == NON_FINITE:
        counts = f"{health.nan_count} NaN and {health.inf_count} inf values in the output"
        if dtype == "float16":
            return f"{counts}: the fp16 overflow symptom; run the VAE in fp32 (pipe.vae.to(torch.float32)) or use bf16"
        range_note = "" if dtype == "float32" else ", which has fp32's range, so no fp16-style overflow"
        return (f"{counts}: the numbers blew up in {DTYPE_NAMES.get(dtype, dtype)}{range_note}; "
                "check the weights (NaN or inf in the checkpoint) and the scheduler's configuration")
    where = f"image {health.image} of {health.batch_size}"
    if health.problem == ALL_BLACK:
        return (f"{where} is all black: every pixel is 0 in 8-bit after (x/2+0.5).clamp(0,1) "
                f"(raw max {health.raw_max:.4g}, at most about -1 + 1/255)")
    if health.problem == FLAT:
        return (f"{where} is a single flat colour (every channel's spread <= {FLAT_TOLERANCE:g}): "
                "the decoder output carries no structure")
    raise ValueError(f"unknown health problem {health.problem!r}")


def unusable_output_line(key: str, health: HealthProblem, dtype: str, image: Path) -> str:
    """A case whose output is unusable: the diagnosis and where the image was written."""
    return f"{key}: {diagnosis(health, dtype)} (image: {short_path(image)})"


def unusable_baseline_line(baseline: Path, health: HealthProblem, dtype: str, record_hint: str) -> str:
    """A stored baseline whose image is unusable (it was never recorded so: it was replaced by hand)."""
    return (f"baseline {short_path(baseline)} holds an unusable image ({diagnosis(health, dtype)}): "
            f"restore it from git or re-record it with `{record_hint}`")


def failed_check_line(key: str, fp32_variant: str | None, baseline: Path, comparison: ImageComparison,
                      images: ArtefactImages, version_changes: list[tuple[str, str, str]]) -> str:
    """One failed comparison: against what, its metrics, its images and any library versions that changed.

    ``fp32_variant`` is None for the variant's own baseline, else the fp32 variant compared with;
    ``version_changes`` holds (library, recorded version, current version).
    """
    against = "its own baseline" if fp32_variant is None else f"{fp32_variant} (fp32) baseline"
    line = (f"{key} vs {against} {short_path(baseline)}: {comparison_line(comparison)} | "
            f"actual {short_path(images.actual)}, expected {short_path(images.expected)}, "
            f"difference (amplified x{images.gain:.3g}) {short_path(images.difference)}")
    if version_changes:
        changes = ", ".join(f"{name} {recorded} -> {now}" for name, recorded, now in version_changes)
        line += f" | recorded with other versions: {changes}"
    return line


def missing_baselines_line(messages: list[str]) -> str:
    """Why a case was skipped under --perf-allow-missing-baselines."""
    return " ; ".join(messages) + " (--perf-allow-missing-baselines)"


def recorded_baselines_line(count: int, directory: str | os.PathLike, completed: bool) -> str:
    """How many image baselines a run recorded and where; ``completed`` False: it failed or was interrupted."""
    line = f"image baselines: recorded {count} in {directory}"
    if not completed:
        line += " (the run failed or was interrupted: the cases that failed or did not run recorded nothing)"
    return line


def short_path(path: str | os.PathLike) -> str:
    """``path`` relative to the working directory when under it, for shorter messages."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive (Windows)
        return str(path)
    return str(path) if relative.startswith("..") else relative
