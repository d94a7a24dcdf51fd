"""Unit tests of the ``diffperf variants`` command (parameter counts from meta-device builds)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from diffperf import cli
from diffperf.models import zoo
from diffperf.models.variants import VARIANT_NAMES

FULL_COUNTS = {
    zoo.TEACHER_UNET: 859_520_964,
    zoo.DISTILLED_UNET: 482_346_884,
    zoo.TEXT_ENCODER: 123_060_480,
    zoo.KL_VAE: 83_653_863,
    zoo.TINY_VAE: 2_445_063,
}


@pytest.fixture(scope="module")
def full_json():
    """``diffperf variants --profile full --json --device cpu``, parsed (built once: meta device)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["variants", "--profile", "full", "--json", "--device", "cpu"])
    return code, json.loads(out.getvalue())


def test_variants_json_lists_every_variant(full_json):
    code, report = full_json
    assert code == 0
    assert report["profile"] == "full"
    rows = report["variants"]
    assert [row["variant"] for row in rows] == list(VARIANT_NAMES)
    for row in rows:
        assert set(row) == {"variant", "changes", "reference", "dtype", "parameters", "runs_here", "why_not", "opt_in"}
        assert row["runs_here"] == (row["why_not"] is None)


def test_variants_json_parameter_counts(full_json):
    rows = {row["variant"]: row for row in full_json[1]["variants"]}
    assert rows["baseline"]["parameters"] == {
        zoo.TEACHER_UNET: 859_520_964, zoo.TEXT_ENCODER: 123_060_480, zoo.KL_VAE: 83_653_863,
    }
    assert rows["distilled-taesd"]["parameters"] == {
        zoo.DISTILLED_UNET: 482_346_884, zoo.TEXT_ENCODER: 123_060_480, zoo.TINY_VAE: 2_445_063,
    }
    for row in rows.values():
        assert len(row["parameters"]) == 3
        for component, count in row["parameters"].items():
            assert count == FULL_COUNTS[component], (row["variant"], component)


def test_variants_json_runs_here_on_cpu(full_json):
    rows = {row["variant"]: row for row in full_json[1]["variants"]}
    assert rows["baseline"]["runs_here"] is True and rows["baseline"]["reference"] is None
    assert rows["tf32"]["runs_here"] is False
    assert rows["tf32"]["why_not"] == "tf32 needs a CUDA GPU (running on cpu)"
    assert rows["xformers"]["why_not"] == "xformers needs a CUDA GPU (running on cpu)"
    assert rows["tf32-fp16"]["runs_here"] is False
    # The opt-in variant is judged as if its option were given, and says which option it is.
    assert rows["compile"]["runs_here"] is True and rows["compile"]["opt_in"] == "--perf-compile"
    assert rows["sdpa"]["reference"] == "attn-classic"
    for row in rows.values():
        if row["why_not"] is not None:
            assert "\n" not in row["why_not"]


def test_variants_text_output(capsys):
    assert cli.main(["variants", "--profile", "full", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"profile full: {len(VARIANT_NAMES)} variants\n")
    assert "- distilled-taesd vs distilled [float32]: " in out
    assert "unet 859,520,964" in out and "taesd 2,445,063" in out
    assert "skipped: tf32 needs a CUDA GPU (running on cpu)" in out


def test_variants_tiny_profile(capsys):
    assert cli.main(["variants", "--profile", "tiny", "--json", "--device", "cpu"]) == 0
    rows = {row["variant"]: row for row in json.loads(capsys.readouterr().out)["variants"]}
    tiny = rows["distilled"]["parameters"]
    assert tiny[zoo.DISTILLED_UNET] < rows["baseline"]["parameters"][zoo.TEACHER_UNET] < 859_520_964


def test_unknown_profile_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["variants", "--profile", "nope"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err
    assert "full" in err and "tiny" in err and "hub" in err


def test_missing_command_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([])
    assert info.value.code == 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when CUDA is missing")
def test_cuda_device_without_cuda(capsys):
    assert cli.main(["variants", "--device", "cuda"]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "diffperf: --perf-device cuda: no CUDA device is available (use cpu)\n"
