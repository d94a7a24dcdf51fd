"""Unit tests for diffperf.similarity on small synthetic (N, H, W, 3) arrays."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
from PIL import Image

from diffperf.similarity import (
    THRESHOLDS,
    Comparison,
    ImageHealthError,
    compare,
    diagnose,
    difference_image,
    save_png,
    to_uint8,
)

H, W = 32, 48


def smooth_image(n: int = 2) -> np.ndarray:
    """A smooth colourful batch spanning about [-0.9, 0.9]."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    images = []
    for k in range(n):
        channels = [
            np.sin(x / 7 + k) * np.cos(y / 9),
            np.cos((x + y) / 11 + k),
            np.sin(x / 5 - y / 13 + k),
        ]
        images.append(0.9 * np.stack(channels, axis=-1))
    return np.stack(images).astype(np.float32)


def flat_taesd_like() -> np.ndarray:
    """Like a random-weight TAESD output: about -1, with +-0.1 structure and a colour cast."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    structure = 0.1 * np.sin(x / 4) * np.cos(y / 5)
    cast = np.array([0.02, 0.05, -0.07], dtype=np.float32)
    return (-1.0 + structure[None, :, :, None] + cast).astype(np.float32)


def with_noise(image: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (image + rng.normal(0.0, sigma, image.shape)).astype(np.float32)


@pytest.mark.parametrize("kind", sorted(THRESHOLDS))
def test_identical_images_pass_every_kind(kind: str) -> None:
    image = smooth_image()
    result = compare(image.copy(), image, kind)
    assert result.passed, result.summary()
    assert result.kind == kind
    assert math.isinf(result.psnr_db) and result.psnr_db > 0
    assert result.ssim == 1.0
    assert result.cosine_distance == 0.0
    assert result.plain_cosine_distance == 0.0
    assert result.max_abs_diff == 0.0
    assert "PASS" in result.summary() and "inf dB" in result.summary()


def test_tiny_noise_passes_same() -> None:
    image = smooth_image()
    assert compare(with_noise(image, 1e-6), image, "same").passed


def test_small_noise_passes_half_but_fails_same() -> None:
    image = smooth_image()
    noisy = with_noise(image, 2e-3)  # 0.1 % of the ~1.8 range
    assert compare(noisy, image, "half").passed
    same = compare(noisy, image, "same")
    assert not same.passed
    assert any(f.startswith("PSNR") and f"dB < {THRESHOLDS['same'].min_psnr_db:.1f} dB" in f for f in same.failures)
    assert any(f.startswith("centred cosine distance") for f in same.failures)
    assert "FAIL" in same.summary() and "\n" not in same.summary()


def test_large_noise_fails_half() -> None:
    image = smooth_image()
    assert not compare(with_noise(image, 0.1), image, "half").passed


def test_structured_change_on_flat_image_is_caught_though_plain_cosine_misses_it() -> None:
    expected = flat_taesd_like()
    value_range = float(expected.max() - expected.min())
    y, x = np.mgrid[0:H, 0:W]
    pattern = ((x // 8 + y // 8) % 2).astype(np.float32)  # checkerboard of 8x8 blocks
    actual = expected + 0.05 * value_range * pattern[None, :, :, None]

    result = compare(actual, expected, "same")
    assert not result.passed
    assert len(result.failures) == 4, result.failures
    assert result.cosine_distance > 1e-3
    assert result.max_abs_diff == pytest.approx(0.05, rel=1e-3)
    # diffusers' plain cosine distance, dominated by the -1 offset, misses it.
    assert result.plain_cosine_distance < 1e-3
    a, e = actual.ravel().astype(np.float64), expected.ravel().astype(np.float64)
    plain = 1 - np.dot(a, e) / (np.linalg.norm(a) * np.linalg.norm(e))
    assert result.plain_cosine_distance == pytest.approx(plain, rel=1e-6)


def test_colour_cast_alone_does_not_hide_changes() -> None:
    # Per-channel centring: a change confined to one channel's structure still counts.
    expected = flat_taesd_like()
    actual = expected.copy()
    actual[..., 1] = -0.95 + 0.3 * (actual[..., 1] + 0.95)  # channel 1 loses 70 % of its contrast
    result = compare(actual, expected, "fp32")
    assert result.cosine_distance > THRESHOLDS["fp32"].max_cosine_distance


def test_diagnose_nan_and_inf() -> None:
    image = smooth_image()
    image[0, 0, 0, :] = np.nan
    image[1, 3, 3, 0] = np.inf
    message = diagnose(image)
    assert message is not None and message.startswith("3 NaN and 1 inf values")
    assert "pipe.vae.to(torch.float32)" in message and "bf16" in message
    assert "\n" not in message


def test_diagnose_all_black() -> None:
    black = np.full((1, H, W, 3), -1.0, dtype=np.float32)
    black[0, ::2] = -1.5  # below -1 clamps to 0 too, so varied but still black
    message = diagnose(black)
    assert message is not None and "all black" in message


def test_diagnose_constant() -> None:
    image = smooth_image()
    image[1] = np.array([0.2, -0.3, 0.5], dtype=np.float32)  # one flat colour
    message = diagnose(image)
    assert message is not None and "image 1 of 2" in message and "flat colour" in message


def test_diagnose_healthy_images() -> None:
    assert diagnose(smooth_image()) is None
    # Random-TAESD-like output, about -1.11 .. -0.85: dark but not black.
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    taesd = (-0.98 + 0.13 * np.sin(x / 3) * np.sin(y / 4))[None, :, :, None].repeat(3, axis=-1)
    assert taesd.min() >= -1.11 and taesd.max() <= -0.85
    assert to_uint8(taesd).max() > 0
    assert diagnose(taesd) is None
    assert diagnose(flat_taesd_like()) is None


def test_compare_raises_on_unhealthy_input() -> None:
    expected = smooth_image()
    actual = expected.copy()
    actual[0, 1, 1, 1] = np.nan
    with pytest.raises(ImageHealthError, match="1 NaN and 0 inf"):
        compare(actual, expected, "half")
    with pytest.raises(ImageHealthError, match="baseline"):
        compare(expected, actual, "half")


def test_shape_mismatch_message() -> None:
    with pytest.raises(ValueError) as info:
        compare(smooth_image(1), smooth_image(2), "same")
    message = str(info.value)
    assert "(1, 32, 48, 3)" in message and "(2, 32, 48, 3)" in message and "\n" not in message


def test_non_batch_shape_message() -> None:
    with pytest.raises(ValueError, match=r"\(N, H, W, C\).*\(32, 48, 3\)"):
        compare(smooth_image(1)[0], smooth_image(1)[0], "same")


def test_unknown_kind_message() -> None:
    with pytest.raises(ValueError) as info:
        compare(smooth_image(), smooth_image(), "fp8")
    assert "'fp8'" in str(info.value)
    for kind in THRESHOLDS:
        assert kind in str(info.value)


def test_comparison_passed_and_summary() -> None:
    result = Comparison("same", 50.0, 0.99, 1e-3, 1e-6, 0.01, ("PSNR 50.0 dB < 85.0 dB",))
    assert not result.passed
    summary = result.summary()
    for text in ("same", "FAIL", "50.0 dB", "0.99", "1.00e-03", "1.00e-06", "1.00e-02", "PSNR 50.0 dB < 85.0 dB"):
        assert text in summary


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
