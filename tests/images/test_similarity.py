"""Unit tests for diffperf.images.similarity on small synthetic (N, H, W, 3) arrays: numbers, not words."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from imagedata import H, W, flat_taesd_like, smooth_image, with_noise
from PIL import Image

from diffperf.images.similarity import (
    ALL_BLACK,
    FLAT,
    GATED_METRICS,
    NON_FINITE,
    THRESHOLDS,
    HealthProblem,
    ImageComparison,
    ImageHealthError,
    check_health,
    compare,
    difference_image,
    save_png,
    to_uint8,
)


@pytest.mark.parametrize("kind", sorted(THRESHOLDS))
def test_identical_images_pass_every_kind(kind: str) -> None:
    image = smooth_image()
    result = compare(image.copy(), image, kind)
    assert result == ImageComparison(kind, math.inf, 1.0, 0.0, 0.0, 0.0, failed=())
    assert result.passed and result.thresholds is THRESHOLDS[kind]


def test_tiny_noise_passes_same() -> None:
    image = smooth_image()
    assert compare(with_noise(image, 1e-6), image, "same").passed


def test_small_noise_passes_half_but_fails_same() -> None:
    image = smooth_image()
    noisy = with_noise(image, 2e-3)  # 0.1 % of the ~1.8 range
    half = compare(noisy, image, "half")
    assert half.passed and half.failed == ()
    same = compare(noisy, image, "same")
    assert not same.passed
    assert same.failed == GATED_METRICS  # each metric beyond the "same" limits ...
    assert same.psnr_db < THRESHOLDS["same"].min_psnr_db
    assert same.cosine_distance > THRESHOLDS["same"].max_cosine_distance
    assert half.psnr_db == same.psnr_db  # ... with the same values: only the limits differ
    assert 50 < same.psnr_db < 65  # sigma 2e-3 of a ~1.8 range: about 59 dB


def test_large_noise_fails_half() -> None:
    image = smooth_image()
    result = compare(with_noise(image, 0.1), image, "half")
    assert not result.passed and "psnr_db" in result.failed and result.psnr_db < THRESHOLDS["half"].min_psnr_db


def test_only_metrics_beyond_their_limit_are_named() -> None:
    # One pixel off by 1 % of the range: the largest difference fails "same", the averaged metrics do not.
    expected = smooth_image(1)
    value_range = float(expected.max() - expected.min())
    actual = expected.copy()
    actual[0, 10, 10, 0] += 0.01 * value_range
    result = compare(actual, expected, "fp32")
    assert result.failed == ("max_abs_diff",)
    assert result.max_abs_diff == pytest.approx(0.01, rel=1e-3)
    assert result.psnr_db > THRESHOLDS["fp32"].min_psnr_db


def test_structured_change_on_flat_image_is_caught_though_plain_cosine_misses_it() -> None:
    expected = flat_taesd_like()
    value_range = float(expected.max() - expected.min())
    y, x = np.mgrid[0:H, 0:W]
    pattern = ((x // 8 + y // 8) % 2).astype(np.float32)  # checkerboard of 8x8 blocks
    actual = expected + 0.05 * value_range * pattern[None, :, :, None]

    result = compare(actual, expected, "same")
    assert result.failed == GATED_METRICS
    assert result.cosine_distance > 1e-3
    assert result.max_abs_diff == pytest.approx(0.05, rel=1e-3)
    # diffusers' plain cosine distance, dominated by the -1 offset, misses it.
    assert result.plain_cosine_distance < 1e-3
    a, e = actual.ravel().astype(np.float64), expected.ravel().astype(np.float64)
    plain = 1 - np.dot(a, e) / (np.linalg.norm(a) * np.linalg.norm(e))
    assert result.plain_cosine_distance == pytest.approx(plain, rel=1e-6)


def test_worst_image_of_the_batch_counts() -> None:
    expected = smooth_image(2)
    actual = expected.copy()
    actual[1] = with_noise(expected[1:], 1e-2)[0]  # only the second image changes
    batch = compare(actual, expected, "half")
    second = compare(actual[1:], expected[1:], "half")
    assert (batch.psnr_db, batch.ssim, batch.cosine_distance, batch.max_abs_diff) == (
        second.psnr_db, second.ssim, second.cosine_distance, second.max_abs_diff)


def test_colour_cast_alone_does_not_hide_changes() -> None:
    # Per-channel centring: a change confined to one channel's structure still counts.
    expected = flat_taesd_like()
    actual = expected.copy()
    actual[..., 1] = -0.95 + 0.3 * (actual[..., 1] + 0.95)  # channel 1 loses 70 % of its contrast
    result = compare(actual, expected, "fp32")
    assert result.cosine_distance > THRESHOLDS["fp32"].max_cosine_distance
    assert "cosine_distance" in result.failed


def test_health_nan_and_inf() -> None:
    image = smooth_image()
    image[0, 0, 0, :] = np.nan
    image[1, 3, 3, 0] = np.inf
    assert check_health(image) == HealthProblem(NON_FINITE, batch_size=2, nan_count=3, inf_count=1)


def test_health_all_black() -> None:
    black = np.full((1, H, W, 3), -1.0, dtype=np.float32)
    black[0, ::2] = -1.5  # below -1 clamps to 0 too, so varied but still black
    assert check_health(black) == HealthProblem(ALL_BLACK, batch_size=1, image=0, raw_max=-1.0)


def test_health_flat_colour() -> None:
    image = smooth_image()
    image[1] = np.array([0.2, -0.3, 0.5], dtype=np.float32)  # one flat colour
    assert check_health(image) == HealthProblem(FLAT, batch_size=2, image=1)


def test_healthy_images() -> None:
    assert check_health(smooth_image()) is None
    # Random-TAESD-like output, about -1.11 .. -0.85: dark but not black.
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    taesd = (-0.98 + 0.13 * np.sin(x / 3) * np.sin(y / 4))[None, :, :, None].repeat(3, axis=-1)
    assert taesd.min() >= -1.11 and taesd.max() <= -0.85
    assert to_uint8(taesd).max() > 0
    assert check_health(taesd) is None
    assert check_health(flat_taesd_like()) is None


def test_compare_raises_on_unhealthy_input() -> None:
    expected = smooth_image()
    actual = expected.copy()
    actual[0, 1, 1, 1] = np.nan
    with pytest.raises(ImageHealthError) as info:
        compare(actual, expected, "half")
    assert info.value.health == HealthProblem(NON_FINITE, batch_size=2, nan_count=1) and not info.value.in_baseline
    with pytest.raises(ImageHealthError) as info:
        compare(expected, actual, "half")
    assert info.value.health.nan_count == 1 and info.value.in_baseline


def test_shape_mismatch_message() -> None:
    with pytest.raises(ValueError) as info:
        compare(smooth_image(1), smooth_image(2), "same")
    message = str(info.value)
    assert "(1, 32, 48, 3)" in message and "(2, 32, 48, 3)" in message and "\n" not in message


def test_non_batch_shape_message() -> None:
    with pytest.raises(ValueError, match=r"\(N, H, W, C\).*\(32, 48, 3\)"):
        compare(smooth_image(1)[0], smooth_image(1)[0], "same")


def test_too_small_for_ssim() -> None:
    with pytest.raises(ValueError, match="too small for SSIM"):
        compare(smooth_image(1)[:, :2, :2], smooth_image(1)[:, :2, :2] + 0.1, "same")


def test_unknown_kind_message() -> None:
    with pytest.raises(ValueError) as info:
        compare(smooth_image(), smooth_image(), "fp8")
    assert "'fp8'" in str(info.value)
    for kind in THRESHOLDS:
        assert kind in str(info.value)


def test_to_uint8_pipeline_convention() -> None:
    raw = np.array([-2.0, -1.0, 0.0, 1.0, 3.0, -1.0 + 2 / 255, np.nan], dtype=np.float32)
    assert to_uint8(raw).tolist() == [0, 0, 128, 255, 255, 1, 0]


def test_difference_image() -> None:
    expected = smooth_image()
    same = difference_image(expected, expected.copy())
    assert same.dtype == np.uint8 and same.shape == expected.shape and not same.any()

    actual = expected.copy()
    actual[1, 5, 7, 2] += 0.01
    actual[0, 2, 2, 0] -= 0.005
    diff = difference_image(actual, expected)
    assert diff.dtype == np.uint8 and diff.shape == expected.shape
    assert diff.max() == 255 and diff[1, 5, 7, 2] == 255
    assert diff[0, 2, 2, 0] in (127, 128)  # half the largest difference: one gain per batch


def test_save_png_atomic(tmp_path) -> None:
    batch = to_uint8(smooth_image(3))
    path = tmp_path / "out" / "image.png"
    save_png(path, batch)
    assert os.listdir(path.parent) == ["image.png"]  # no temp file left behind
    with Image.open(path) as png:
        assert png.format == "PNG" and png.size == (3 * W, H) and png.mode == "RGB"
        assert np.array_equal(np.asarray(png), np.concatenate(list(batch), axis=1))
    save_png(path, batch[:1])  # overwrite in place
    assert os.listdir(path.parent) == ["image.png"]
    with Image.open(path) as png:
        assert png.size == (W, H)


def test_save_png_rejects_float() -> None:
    with pytest.raises(ValueError, match="uint8"):
        save_png("unused.png", smooth_image())
