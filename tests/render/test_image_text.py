"""diffperf.render.image_text: similarity results and health problems in words."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from diffperf.images.artefacts import ArtefactImages
from diffperf.images.similarity import ALL_BLACK, FLAT, NON_FINITE, HealthProblem, ImageComparison
from diffperf.render.image_text import (
    comparison_line,
    diagnosis,
    failed_check_line,
    metric_failure,
    short_path,
)

FAILED = ImageComparison("half", 31.24, 0.97, 4e-3, 1e-6, 0.1, failed=("psnr_db", "ssim", "cosine_distance",
                                                                          "max_abs_diff"))


def test_metric_failures_against_their_limits():
    assert [metric_failure(FAILED, metric) for metric in FAILED.failed] == [
        "PSNR 31.2 dB < 40.0 dB",
        "SSIM 0.97000000 < 0.98000000",
        "centred cosine distance 4.00e-03 > 0.003",
        "max |diff| 1.00e-01 > 0.08 of range",
    ]


def test_comparison_line():
    line = comparison_line(FAILED)
    assert line.startswith("half: FAIL | PSNR 31.2 dB | SSIM 0.97000000 | centred cos dist 4.00e-03")
    assert "plain cos dist 1.00e-06" in line and "max|diff| 1.00e-01 of range" in line
    assert line.endswith("| failed: PSNR 31.2 dB < 40.0 dB; SSIM 0.97000000 < 0.98000000; "
                         "centred cosine distance 4.00e-03 > 0.003; max |diff| 1.00e-01 > 0.08 of range")
    identical = comparison_line(ImageComparison("same", math.inf, 1.0, 0.0, 0.0, 0.0))
    assert identical == ("same: PASS | PSNR inf dB | SSIM 1.00000000 | centred cos dist 0.00e+00 "
                         "| plain cos dist 0.00e+00 | max|diff| 0.00e+00 of range")


NAN = HealthProblem(NON_FINITE, batch_size=1, nan_count=3, inf_count=1)


def test_non_finite_output_in_fp16_is_the_overflow_symptom():
    assert diagnosis(NAN, "float16") == ("3 NaN and 1 inf values in the output: the fp16 overflow symptom; "
                                         "run the VAE in fp32 (pipe.vae.to(torch.float32)) or use bf16")


@pytest.mark.parametrize(("dtype", "name"), [("float32", "fp32"), ("bfloat16", "bf16")])
def test_non_finite_output_in_fp32_or_bf16_gives_no_fp16_advice(dtype, name):
    line = diagnosis(NAN, dtype)
    assert line.startswith(f"3 NaN and 1 inf values in the output: the numbers blew up in {name}")
    assert "overflow symptom" not in line and "use bf16" not in line and "vae.to" not in line
    assert "weights" in line and "scheduler" in line


def test_black_and_flat_images():
    black = diagnosis(HealthProblem(ALL_BLACK, batch_size=4, image=2, raw_max=-1.25), "float32")
    assert black.startswith("image 2 of 4 is all black") and "raw max -1.25" in black
    flat = diagnosis(HealthProblem(FLAT, batch_size=4, image=0), "float16")
    assert flat.startswith("image 0 of 4 is a single flat colour")


def test_failed_check_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    images = ArtefactImages(tmp_path / "out" / "a.png", tmp_path / "out" / "e.png", tmp_path / "out" / "d.png", 275.4)
    line = failed_check_line("bf16-vase", "baseline", Path("/elsewhere/baseline-vase.npz"), FAILED, images,
                             [("torch", "2.13.0", "2.14.0")])
    assert line.startswith("bf16-vase vs baseline (fp32) baseline /elsewhere/baseline-vase.npz: half: FAIL")
    assert "| actual out/a.png, expected out/e.png, difference (amplified x275) out/d.png" in line
    assert line.endswith(" | recorded with other versions: torch 2.13.0 -> 2.14.0")
    own = failed_check_line("bf16-vase", None, tmp_path / "b.npz", FAILED, images, [])
    assert own.startswith("bf16-vase vs its own baseline b.npz: ") and "recorded with" not in own


def test_short_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert short_path(tmp_path / "x" / "y.png") == "x/y.png"
    assert short_path("/somewhere/else.png") == "/somewhere/else.png"
