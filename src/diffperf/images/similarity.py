"""Compare a variant's output image with a stored baseline.

Inputs are float arrays of shape (N, H, W, C): the *raw* VAE decoder output of
a batch of N images, nominally in [-1, 1] but not clamped.

Why not just diffusers' cosine distance, or PSNR with data_range=2?
---------------------------------------------------------------------
The suite runs small pipelines whose components may be randomly initialised.
A random-weight tiny autoencoder (TAESD) decodes to an almost flat image:
every value lies in roughly [-1.11, -0.85], so the mean (about -1) dwarfs the
structure (a spread of about 0.26). Metrics measured against the nominal
scale cannot see changes to that structure:

* Plain cosine distance, ``1 - a.b / (|a| |b|)`` on flattened arrays (diffusers'
  ``numpy_cosine_similarity_distance``), is dominated by the shared offset.
  For a change ``d`` it is about ``|d|^2 / (2 |a|^2)``, and ``|a|^2`` is mostly
  the offset squared (about 1 per value), not the structure's variance (about
  1e-3). One denoising step fewer measured 3e-5, another scheduler 3e-4,
  another seed 1.2e-3: all at or below diffusers' usual 1e-3 bar.
* PSNR and SSIM with ``data_range=2`` compare the error with a range about
  eight times the image's, adding about 18 dB of PSNR headroom, and SSIM's
  stabilising constants ((0.03 * data_range)**2 = 3.6e-3) then exceed the
  structure's own variance, pushing SSIM towards 1 whatever changed.

So every metric here is scaled to the *expected* (baseline) image itself:

* PSNR and SSIM (scikit-image) use ``data_range = expected.max() -
  expected.min()``, per image.
* The gating cosine distance is *centred*: ``1 - Pearson r``, with each
  image's per-channel mean subtracted from both arrays first. For a change
  ``d`` it is about ``|d|^2 / (2 |a - mean|^2)``: relative to the structure,
  so one step fewer measures 1e-2 instead of 3e-5. Centring per channel, not
  per image, because much of a flat output's remaining variance is a colour
  cast (channels at slightly different offsets, two thirds of it in the
  random TAESD output measured) that every output of the model shares;
  leaving it in made the distance three times less sensitive.
* The largest absolute difference is divided by the same range.

Each metric is computed per image and the worst image of the batch is
reported. diffusers' plain cosine distance (whole batch, flattened) is
reported too, for reference only; it gates nothing.

Health is checked before comparing (``check_health``): NaN/inf, an all-black
image and a single flat colour are reported as a ``HealthProblem`` (in words:
``diffperf.render.image_text.diagnosis``) instead of as metric failures.

Everything here returns numbers and statuses; ``diffperf.render.image_text``
turns them into words.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from diffperf.files import atomic_path


@dataclass(frozen=True)
class Thresholds:
    """Acceptance limits of one comparison kind (see ``THRESHOLDS``)."""

    min_psnr_db: float
    """Lowest PSNR, in dB, with data_range = the expected image's value range."""
    min_ssim: float
    """Lowest SSIM, with data_range = the expected image's value range."""
    max_cosine_distance: float
    """Highest centred cosine distance (1 - Pearson r)."""
    max_abs_diff: float
    """Highest max |actual - expected|, as a fraction of the expected image's range."""


# The one place thresholds live.
# Calibrated from measurements (tools/similarity_calibration.py; docs/similarity.md has the
# full tables): the tiny profile on a 2-core AMD EPYC (Zen 4: AVX-512 with BF16, no AMX, no
# AVX512-FP16), torch 2.13.0+cpu, diffusers 0.42.1; both scenarios as the profile scales them
# (astronaut: 1 image, 5 DDIM steps; vase: 4 images, 3 PNDM steps; 128x128), every variant
# that runs on a CPU. Worst case over both scenarios and the variants concerned, as
# PSNR / 1 - SSIM / centred cosine distance / max|diff| (fraction of the range):
#
# Noise the checks must accept
#   fp32, rerun in the same or a new process; 2 vs 4      identical (bit for bit)
#     threads
#   fp32, 1 vs 2 vs 3 threads; ATen AVX2 vs AVX-512;      127.9 dB / 3.0e-11 / 1.0e-11 / 2.9e-6
#     AVX2-only and SSE4.2-only machines emulated
#     (ATEN_CPU_CAPABILITY, MKL_ENABLE_INSTRUCTIONS,
#     ONEDNN_MAX_CPU_ISA); attention back-ends and
#     channels_last against fp32
#   TF32 emulated (operands of matmuls rounded)             84.7 dB / 1.4e-6  / 1.7e-7  / 3.6e-4
#   TF32 emulated, convolutions too                         73.9 dB / 1.6e-5  / 2.1e-6  / 1.2e-3
#   fp16 (ATen kernels) vs fp32                             62.8 dB / 8.0e-5  / 3.0e-5  / 3.6e-3
#   fp16 vs fp16, AVX2 vs AVX-512 machine                   61.5 dB / 1.1e-4  / 3.9e-5  / 5.5e-3
#   bf16 vs fp32                                            51.0 dB / 2.6e-3  / 4.2e-4  / 2.1e-2
#   bf16 vs bf16, 3 threads or another ISA (ATen AVX2,      49.8 dB / 3.4e-3  / 5.6e-4  / 1.8e-2
#     oneDNN without AVX512-BF16)
# Planted changes the checks must catch (against the same variant's clean output; the weakest
# value of each metric over the variants, fp32 ones unless said otherwise)
#   UNet weights x (1 + 1e-3 N(0,1)), fp32 variants         70.2 dB / 3.7e-5  / 8.1e-6  / 1.8e-3
#   the same in bf16 (the weights' change is below bf16's   50.9 dB / 3.3e-3  / 6.8e-4  / 1.9e-2
#     own cross-CPU variation: only the fp32 variants
#     sharing those weights catch it)
#   one denoising step fewer                                36.8 dB / 4.1e-2  / 1.1e-2  / 0.10
#   the other scheduler (DDIM <-> PNDM)                     31.8 dB / 0.12    / 3.5e-2  / 0.16
#   another seed                                            19.4 dB / 0.79    / 0.71    / 0.60
THRESHOLDS: dict[str, Thresholds] = {
    # An fp32 variant against its own stored baseline, same device type. Between the worst
    # measured thread-count and instruction-set noise (127.9 dB) and the weakest planted change
    # (70.2 dB): about 30x the noise's amplitude and 1/20 of the planted change's on every
    # metric (PSNR 33 dB above the noise and 25 dB below the change; cosine distance 1900x
    # the noise and 1/400 of the change; max|diff| 34x and 1/18).
    "same": Thresholds(
        min_psnr_db=95.0, min_ssim=1 - 6e-8, max_cosine_distance=2e-8, max_abs_diff=1e-4
    ),
    # An fp32-approximating variant (tf32, attention back-end, channels_last, torch.compile)
    # against the fp32 baseline. Must accept TF32 (emulated, convolutions included: 73.9 dB,
    # about 5x below these limits in amplitude) and catch bf16-level error (51.0 dB, 3x beyond)
    # and a lost step. It cannot tell fp16-level error (62.8 dB) or the 1e-3 weight change
    # from TF32's: the variant's own "same" check catches those.
    "fp32": Thresholds(
        min_psnr_db=60.0, min_ssim=1 - 4e-4, max_cosine_distance=5e-5, max_abs_diff=6e-3
    ),
    # fp16 / bf16 against the fp32 baseline, and a reduced-precision variant against its own
    # baseline (Variant.own_check): bf16 from two CPUs differs as much as bf16 differs from
    # fp32 (49.8 vs 51.0 dB), as rounding at every layer sends the two down different paths.
    # Limits: twice the measured bf16 error in amplitude (what two bf16 runs each as far from
    # fp32 can differ by), with a margin (10 dB below the worst measured, 5 dB below twice it),
    # while a step fewer (36.5 dB) still fails all four. diffusers' 5e-2 for fp16 vs fp32 is a
    # *plain* cosine distance: on offset-dominated images far weaker than the centred one
    # (random TAESD, one step fewer: plain 4.8e-5, centred 2.4e-2).
    "half": Thresholds(
        min_psnr_db=40.0, min_ssim=0.98, max_cosine_distance=3e-3, max_abs_diff=8e-2
    ),
    # The speed-ups that change the image by design, against the fp32 baseline (docs/similarity.md,
    # "Approximate speed-ups"; tools/speedup_variants.py images). Each limit sits past the method's
    # worst measured error over both scenarios (1, 2, 3 threads and ATen/oneDNN AVX2 give the same
    # error to 4 digits), by about 3 dB of PSNR and a factor 1.4 to 2 on the other metrics, and
    # before a worse setting of the same method. Their own baselines are checked exactly ("same"),
    # except int8's (see below).
    # ToMe, ratio 0.5: worst 45.2 dB / 1.6e-2 / 2.5e-3 / 4.1e-2. Caught: tomesd's "very not
    # recommended" MLP merging, 35.8 dB / 7.3e-2 / 1.4e-2 / 0.12 (every metric). Not monotonic in the
    # ratio on the tiny profile: ratio 0.6 measured 43.9 dB, 0.75 47.0 dB.
    "tome": Thresholds(
        min_psnr_db=42.0, min_ssim=0.97, max_cosine_distance=5e-3, max_abs_diff=6e-2
    ),
    # DeepCache, interval 3, branch 0: astronaut (5 DDIM steps) 37.0 dB / 5.8e-2 / 1.1e-2 / 0.10;
    # vase (3 PNDM steps: 2 of its 4 UNet calls reuse the cache) 29.9 dB / 0.26 / 8.7e-2 / 0.22, which
    # sets the limit. Caught: a stale cache (the deep features of the previous call's image reused
    # from the first step on) and another seed. Longer intervals change the tiny workloads little
    # (interval 4: astronaut 35.5 dB, vase 29.9 dB): the exact check against its own baseline is
    # the one that sees them.
    "deepcache": Thresholds(
        min_psnr_db=27.0, min_ssim=0.6, max_cosine_distance=0.15, max_abs_diff=0.32
    ),
    # torchao int8 dynamic quantization (VNNI CPUs; diffperf.models.variants skips it elsewhere), used
    # for its own baseline too: rounding activations to int8 turns the fp32 summation-order noise of
    # another thread count into whole quantization steps (1 vs 2 threads: 61.8 dB / 2.7e-4 / 3.5e-5 /
    # 5.6e-3, where fp32 differs by 128 dB). Against fp32, worst 59.3 dB / 4.8e-4 / 6.2e-5 / 7.6e-3.
    # Caught: per-tensor instead of per-row scales, 55.1 dB / 1.2e-3 / 1.6e-4 / 1.2e-2 (every metric,
    # PSNR by 0.9 dB), and the int16 saturation of a CPU without VNNI, 33.7 dB / 0.11 / 2.2e-2 / 0.11.
    "int8": Thresholds(
        min_psnr_db=56.0, min_ssim=1 - 8e-4, max_cosine_distance=1.1e-4, max_abs_diff=1.1e-2
    ),
    # diffusers' cache hooks on FLUX's transformer (flux-fbcache, -taylorseer, -magcache, -fastercache, -pab;
    # docs/similarity.md, "Caches"), against the fp32 baseline: astronaut-flux (1 image, 7 steps, 128x128) and
    # the same call with 3 prompts x 3 seeds, at 1, 2, 3 threads and ATen/MKL/oneDNN AVX2, each against fp32's
    # 2-thread image of the same workload. Worst, MagCache (3 of 7 steps skipped): 62.9 dB / 1.9e-4 / 3.5e-5 /
    # 5.2e-3; first-block cache 66.3 dB, TaylorSeer 77.5 dB, PAB 81.9 dB, FasterCache 84.1 dB. Limits: 3 dB and a
    # factor 1.6, 1.8 and 1.4 past MagCache's worst. Caught: a step fewer, 54.5 to 55.6 dB (every metric);
    # MagCache threshold 0.2 (5 of 7 steps skipped), 61.1 dB / 3.2e-4 / 6.2e-5 / 5.9e-3 (1 - SSIM only). The tiny
    # random model changes little when a step's blocks or attention are reused (first-block threshold 0.5: 64.0 dB;
    # TaylorSeer from step 1 with bf16 factors: 69.4 dB; PAB and FasterCache every 3rd step: 78 to 79 dB): the exact
    # own check ("same": other thread counts and AVX2 stay within 134.4 dB, no cache decision moved) is the one that
    # sees a changed setting there. Not measured with real weights or 28 steps, where caches change the image far
    # more.
    "cache": Thresholds(
        min_psnr_db=59.8, min_ssim=1 - 3e-4, max_cosine_distance=6.3e-5, max_abs_diff=7.3e-3
    ),
}


NON_FINITE = "non-finite"
ALL_BLACK = "all black"
FLAT = "flat colour"
"""The problems ``check_health`` finds, in the order it looks for them."""

FLAT_TOLERANCE = 1e-6
"""Per-channel value spread at or below which an image counts as one flat colour."""


@dataclass(frozen=True)
class HealthProblem:
    """Why a batch is unusable, in numbers; ``diffperf.render.image_text.diagnosis`` says it in words."""

    problem: str
    """``NON_FINITE``, ``ALL_BLACK`` or ``FLAT``."""
    batch_size: int
    nan_count: int = 0
    inf_count: int = 0
    image: int | None = None
    """The unusable image's index in the batch (None for ``NON_FINITE``, counted over the whole batch)."""
    raw_max: float | None = None
    """``ALL_BLACK`` only: the image's largest raw value."""


class ImageHealthError(ValueError):
    """``compare`` was given an unusable batch; ``health`` says why, ``in_baseline`` which one."""

    def __init__(self, health: HealthProblem, in_baseline: bool = False):
        self.health = health
        self.in_baseline = in_baseline
        which = "baseline (expected)" if in_baseline else "actual"
        super().__init__(f"the {which} images are unusable ({health.problem})")


GATED_METRICS = ("psnr_db", "ssim", "cosine_distance", "max_abs_diff")
"""The metrics that gate (names of ``ImageComparison`` fields), in the order failures are listed."""


@dataclass(frozen=True)
class ImageComparison:
    """Result of ``compare``: the worst image's metric values and which of them are beyond their thresholds."""

    kind: str
    """The ``THRESHOLDS`` key the values were judged against."""
    psnr_db: float
    """Lowest per-image PSNR in dB (inf when identical)."""
    ssim: float
    """Lowest per-image SSIM."""
    cosine_distance: float
    """Highest per-image centred cosine distance (1 - Pearson r)."""
    plain_cosine_distance: float
    """diffusers' 1 - cos on the flattened batch; for reference only."""
    max_abs_diff: float
    """Highest per-image max |actual - expected| / expected range."""
    failed: tuple[str, ...] = ()
    """The ``GATED_METRICS`` beyond their threshold, in that order."""

    @property
    def passed(self) -> bool:
        """True when no metric is beyond its threshold."""
        return not self.failed

    @property
    def thresholds(self) -> Thresholds:
        return THRESHOLDS[self.kind]


class _ImageMetrics(NamedTuple):
    psnr_db: float
    ssim: float
    cosine_distance: float
    max_abs_diff: float


_IDENTICAL = _ImageMetrics(psnr_db=math.inf, ssim=1.0, cosine_distance=0.0, max_abs_diff=0.0)


def to_uint8(raw: np.ndarray) -> np.ndarray:
    """Convert raw decoder output to 8-bit like the pipeline does.

    ``((x / 2 + 0.5).clamp(0, 1) * 255).round()`` in float32, as uint8, same
    shape. NaN becomes 0; +-inf saturates.
    """
    x = np.nan_to_num(np.asarray(raw, dtype=np.float32), nan=-1.0)
    x = np.clip(x / 2 + 0.5, 0.0, 1.0)
    return (x * 255).round().astype(np.uint8)


def check_health(raw: np.ndarray) -> HealthProblem | None:
    """Return None for a healthy batch, else what is wrong with it.

    Checked in order: non-finite values (whole batch), then per image: all
    black (every pixel 0 after ``to_uint8``), one flat colour (every channel's
    spread <= ``FLAT_TOLERANCE``). A dark but structured image, such as a random-weight
    TAESD's output in [-1.11, -0.85] (up to 19/255 in 8-bit), is healthy.
    """
    raw = np.asarray(raw)
    images = raw if raw.ndim == 4 else raw[np.newaxis]
    nan_count = int(np.isnan(raw).sum())
    inf_count = int(np.isinf(raw).sum())
    if nan_count or inf_count:
        return HealthProblem(NON_FINITE, len(images), nan_count=nan_count, inf_count=inf_count)
    for index, image in enumerate(images):
        if not to_uint8(image).any():
            return HealthProblem(ALL_BLACK, len(images), image=index, raw_max=float(image.max()))
        spread = np.ptp(image.reshape(-1, image.shape[-1]), axis=0)
        if np.all(spread <= FLAT_TOLERANCE):
            return HealthProblem(FLAT, len(images), image=index)
    return None


def compare(actual: np.ndarray, expected: np.ndarray, kind: str) -> ImageComparison:
    """Compare ``actual`` with the baseline ``expected`` under ``THRESHOLDS[kind]``.

    Both are (N, H, W, C) raw decoder outputs. Raises ``ValueError`` for an
    unknown kind or mismatched/non-4-D shapes, and ``ImageHealthError`` (a
    ValueError) when ``actual`` or the baseline fails ``check_health``. Metric
    values beyond their thresholds are named in ``failed``, not raised.
    """
    limits = _thresholds_of(kind)
    actual, expected = _checked_batches(actual, expected)
    window = _ssim_window(actual.shape)
    per_image = [_image_metrics(a, e, window) for a, e in zip(actual, expected)]
    worst = _ImageMetrics(
        psnr_db=min(metrics.psnr_db for metrics in per_image),
        ssim=min(metrics.ssim for metrics in per_image),
        cosine_distance=max(metrics.cosine_distance for metrics in per_image),
        max_abs_diff=max(metrics.max_abs_diff for metrics in per_image),
    )
    return ImageComparison(
        kind=kind,
        **worst._asdict(),
        plain_cosine_distance=_plain_cosine_distance(actual, expected),
        failed=_failed_metrics(worst, limits),
    )


def _thresholds_of(kind: str) -> Thresholds:
    """``THRESHOLDS[kind]``; a ValueError naming the valid kinds for an unknown one."""
    if kind not in THRESHOLDS:
        raise ValueError(f"unknown comparison kind {kind!r}; valid kinds: {', '.join(THRESHOLDS)}")
    return THRESHOLDS[kind]


def _checked_batches(actual: np.ndarray, expected: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both batches as float64, once their shapes agree and both are healthy."""
    actual = np.asarray(actual)
    expected = np.asarray(expected)
    if actual.shape != expected.shape:
        raise ValueError(f"shape mismatch: actual {actual.shape} vs expected {expected.shape}")
    if actual.ndim != 4:
        raise ValueError(f"need (N, H, W, C) image batches, got shape {actual.shape}")
    for batch, in_baseline in ((actual, False), (expected, True)):
        health = check_health(batch)
        if health is not None:
            raise ImageHealthError(health, in_baseline=in_baseline)
    return actual.astype(np.float64), expected.astype(np.float64)


def _ssim_window(shape: tuple[int, ...]) -> int:
    """SSIM's window side: 7, or the largest odd side that fits a smaller image."""
    height, width = shape[1:3]
    side = min(height, width)
    window = min(7, side if side % 2 else side - 1)
    if window < 3:
        raise ValueError(f"images of {height}x{width} are too small for SSIM (need at least 3x3)")
    return window


def _image_metrics(a: np.ndarray, e: np.ndarray, window: int) -> _ImageMetrics:
    """The gated metrics of one (H, W, C) image pair, scaled to the expected image's value range."""
    if np.array_equal(a, e):
        return _IDENTICAL
    data_range = float(e.max() - e.min())  # > 0: check_health rejects flat images
    return _ImageMetrics(
        psnr_db=float(peak_signal_noise_ratio(e, a, data_range=data_range)),
        ssim=float(structural_similarity(e, a, data_range=data_range, channel_axis=-1, win_size=window)),
        cosine_distance=_centred_cosine_distance(a, e),
        max_abs_diff=float(np.abs(a - e).max()) / data_range,
    )


def _failed_metrics(worst: _ImageMetrics, limits: Thresholds) -> tuple[str, ...]:
    """The names of the metrics beyond ``limits``, in ``GATED_METRICS`` order."""
    beyond = {
        "psnr_db": worst.psnr_db < limits.min_psnr_db,
        "ssim": worst.ssim < limits.min_ssim,
        "cosine_distance": worst.cosine_distance > limits.max_cosine_distance,
        "max_abs_diff": worst.max_abs_diff > limits.max_abs_diff,
    }
    return tuple(name for name in GATED_METRICS if beyond[name])


def _centred_cosine_distance(a: np.ndarray, e: np.ndarray) -> float:
    """1 - Pearson r of one (H, W, C) image pair, centred per channel."""
    a = a - a.mean(axis=(0, 1))
    e = e - e.mean(axis=(0, 1))
    denominator = np.linalg.norm(a) * np.linalg.norm(e)  # > 0: both passed check_health
    return float(np.clip(1.0 - np.vdot(a, e) / denominator, 0.0, 2.0))


def _plain_cosine_distance(a: np.ndarray, e: np.ndarray) -> float:
    """diffusers' numpy_cosine_similarity_distance on the flattened batch."""
    if np.array_equal(a, e):
        return 0.0
    a, e = a.ravel(), e.ravel()
    return float(np.clip(1.0 - np.dot(a, e) / (np.linalg.norm(a) * np.linalg.norm(e)), 0.0, 2.0))


def difference_image(actual: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Amplified |actual - expected| as uint8 images of the same shape.

    Gain = 255 / max|actual - expected| over the whole batch, so the largest
    difference is full white (255) and a pixel value v stands for a raw
    difference of v / 255 * max|actual - expected|; one gain for the batch
    keeps its images comparable. All black when the inputs are identical.
    Non-finite differences (NaN/inf in an input) are drawn full white.
    """
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if actual.shape != expected.shape:
        raise ValueError(f"shape mismatch: actual {actual.shape} vs expected {expected.shape}")
    diff = np.abs(actual - expected)
    non_finite = ~np.isfinite(diff)
    diff[non_finite] = 0.0
    peak = diff.max(initial=0.0)
    out = np.zeros(diff.shape, dtype=np.uint8)
    if peak > 0:
        out = np.round(diff * (255.0 / peak)).astype(np.uint8)
    out[non_finite] = 255
    return out


def save_png(path: str | os.PathLike[str], image_uint8_batch: np.ndarray) -> None:
    """Write a uint8 (N, H, W, C) batch (or one (H, W, C) image) as one PNG.

    The images are tiled side by side, left to right. The file is written
    through ``diffperf.files.atomic_path`` (a temporary file in the same
    directory, moved into place with ``os.replace``, mode 0644), so ``path`` is
    never seen half-written. Missing parent directories are created.
    """
    batch = np.asarray(image_uint8_batch)
    if batch.dtype != np.uint8:
        raise ValueError(f"save_png needs uint8 images, got {batch.dtype} (use to_uint8 first)")
    if batch.ndim == 3:
        batch = batch[np.newaxis]
    if batch.ndim != 4 or batch.shape[-1] not in (1, 3, 4):
        raise ValueError(f"save_png needs (N, H, W, C) with C in 1, 3, 4; got shape {batch.shape}")
    tiled = np.concatenate(list(batch), axis=1)
    if tiled.shape[-1] == 1:
        tiled = tiled[..., 0]

    with atomic_path(path) as temp:
        Image.fromarray(tiled).save(temp, format="PNG")
