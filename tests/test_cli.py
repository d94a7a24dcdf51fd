"""Unit tests of the ``diffperf variants`` command (parameter counts from meta-device builds): the catalogue
(diffperf.models.catalogue) of a suite's declarations (diffperf.cases.declarations), as JSON or in words."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from diffperf import cli
from diffperf.models import sd1, zoo
from diffperf.models.builtin import builtin_registry

REGISTRY = builtin_registry()
BUILTIN = ("--suite", "")  # the built-in families only, whatever the working directory holds

# The SD v1 components' published parameter counts, by component name.
FULL_COUNTS = {
    "unet": 859_520_964,
    "bk-sdm-small": 482_346_884,
    "text_encoder": 123_060_480,
    "vae": 83_653_863,
    "taesd": 2_445_063,
}
ROW_KEYS = {"variant", "family", "changes", "speedups", "reference", "dtype", "parameters", "runs_here", "why_not",
            "opt_in", "opt_in_why", "best_stack"}

# A suite of one's own: one more SD v1 variant, declared in its conftest.py.
SUITE_CONFTEST = '''
from diffperf.models.speedups import Attention
from diffperf.models.variants import Variant


def pytest_diffperf_declare(registry):
    registry.add(Variant("my-classic", "sd1", (Attention("classic"),), "baseline", description="mine"))
'''


def variants_json(*args: str) -> tuple[int, dict]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(["variants", "--json", "--device", "cpu", *args])
    return code, json.loads(out.getvalue())


@pytest.fixture(scope="module")
def full_json():
    """``diffperf variants --profile full --json --device cpu``, parsed (built once: meta device)."""
    return variants_json("--profile", "full", *BUILTIN)


def test_variants_json_lists_every_variant(full_json):
    code, report = full_json
    assert code == 0
    assert report["profile"] == "full"
    rows = report["variants"]
    assert [row["variant"] for row in rows] == list(REGISTRY.variants)
    assert {row["family"] for row in rows} == set(REGISTRY.families) >= {"sd1"}
    for row in rows:
        assert set(row) == ROW_KEYS
        assert row["runs_here"] == (row["why_not"] is None)
        declared = REGISTRY.variant(row["variant"])
        family = REGISTRY.family(declared.family)
        assert row["family"] == declared.family
        assert row["reference"] == declared.reference
        assert row["speedups"] == [speedup.name for speedup in declared.speedups]
        assert row["changes"] == declared.describe()
        assert row["dtype"] == declared.plan(family).dtype
        assert row["best_stack"] is declared.best_stack
        assert row["opt_in_why"] == (declared.opt_in.why if declared.opt_in else None)


def test_variants_json_lists_the_sd1_variants_in_declaration_order(full_json):
    rows = [row["variant"] for row in full_json[1]["variants"] if row["family"] == "sd1"]
    assert rows == [variant.name for variant in sd1.VARIANTS]


def test_variants_json_parameter_counts(full_json):
    rows = {row["variant"]: row for row in full_json[1]["variants"]}
    assert rows["baseline"]["parameters"] == {"unet": 859_520_964, "text_encoder": 123_060_480, "vae": 83_653_863}
    assert rows["distilled-taesd"]["parameters"] == {
        "bk-sdm-small": 482_346_884, "text_encoder": 123_060_480, "taesd": 2_445_063,
    }
    counts = {}
    for row in rows.values():
        declared = REGISTRY.variant(row["variant"])
        family = REGISTRY.family(declared.family)
        # One count per module of the pipeline (tokenizers have no parameters), named by its component.
        modules = [name for name in declared.plan(family).components.values()
                   if not zoo.is_tokenizer(family.component(name))]
        assert list(row["parameters"]) == modules, row["variant"]
        for component, count in row["parameters"].items():
            assert count > 0
            assert counts.setdefault((row["family"], component), count) == count, (row["variant"], component)
            if row["family"] == "sd1":
                assert count == FULL_COUNTS[component], (row["variant"], component)
    assert {component for family, component in counts if family == "sd1"} == set(FULL_COUNTS)


def test_variants_json_runs_here_on_cpu(full_json):
    rows = {row["variant"]: row for row in full_json[1]["variants"]}
    assert rows["baseline"]["runs_here"] is True and rows["baseline"]["reference"] is None
    assert rows["baseline"]["speedups"] == [] and rows["baseline"]["family"] == "sd1"
    assert rows["tf32"]["runs_here"] is False
    assert rows["tf32"]["why_not"] == "tf32 needs a CUDA GPU (running on cpu)"
    assert rows["xformers"]["why_not"] == "xformers needs a CUDA GPU (running on cpu)"
    assert rows["tf32-fp16"]["runs_here"] is False
    # The opt-in variant is judged as if its option were given, and says which option it is and why.
    assert rows["compile"]["runs_here"] is True and rows["compile"]["opt_in"] == "--perf-compile"
    assert rows["compile"]["opt_in_why"] == "slow to build"
    assert rows["channels-last"]["runs_here"] is True and rows["channels-last"]["opt_in"] == "--perf-speedups"
    assert rows["channels-last"]["opt_in_why"] == "no faster on the tiny CPU profile"
    assert rows["sdpa"]["reference"] == "attn-classic"
    # Each device type's fastest stack: flagged, and judged for the device it is meant for.
    assert rows["best-cpu"]["best_stack"] is True and rows["best-gpu"]["best_stack"] is True
    assert rows["best-gpu"]["why_not"] == "best-gpu is meant for cuda (running on cpu)"
    assert rows["best-gpu"]["speedups"] == ["bk-sdm-small", "taesd", "fp16", "fused-qkv", "compile"]
    for row in rows.values():
        if row["why_not"] is not None:
            assert "\n" not in row["why_not"]


def test_variants_text_output(capsys):
    assert cli.main(["variants", "--profile", "full", "--device", "cpu", *BUILTIN]) == 0
    out = capsys.readouterr().out
    families = list(REGISTRY.families)
    assert out.startswith(f"profile full: {len(REGISTRY.variants)} variants of {len(families)} families "
                          f"({', '.join(families)})\n")
    # One block per family, listing its variants in declaration order.
    blocks = out.split("\n\n")[1:]
    assert [block.splitlines()[0] for block in blocks] == [f"{family}:" for family in families]
    for family, block in zip(families, blocks):
        listed = [line[2:].split(" ")[0] for line in block.splitlines() if line.startswith("- ")]
        assert listed == [variant.name for variant in REGISTRY.variants.values() if variant.family == family]
    sd1_block = blocks[families.index("sd1")]
    assert "- distilled-taesd vs distilled [float32]: " in sd1_block
    assert "unet 859,520,964" in sd1_block and "taesd 2,445,063" in sd1_block
    assert "skipped: tf32 needs a CUDA GPU (running on cpu)" in sd1_block
    assert "runs here (opt-in: --perf-compile, slow to build)" in sd1_block
    best = next(line for line in sd1_block.splitlines() if line.startswith("- best-cpu vs baseline "))
    assert best.endswith("(best stack: its speed-up over fp32 is shown first)")


def test_variants_tiny_profile():
    code, report = variants_json("--profile", "tiny", *BUILTIN)
    assert code == 0
    rows = {row["variant"]: row for row in report["variants"]}
    tiny = rows["distilled"]["parameters"]
    assert tiny["bk-sdm-small"] < rows["baseline"]["parameters"]["unet"] < 859_520_964


def test_variants_of_a_suite_include_its_declarations(tmp_path, monkeypatch, suite_imports):
    suite = tmp_path / "my-suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(SUITE_CONFTEST)
    monkeypatch.chdir(tmp_path)  # no perf/ here
    code, report = variants_json("--profile", "tiny", "--suite", str(suite))
    assert code == 0
    rows = report["variants"]
    assert [row["variant"] for row in rows] == [*REGISTRY.variants, "my-classic"]
    mine = rows[-1]
    assert (mine["family"], mine["reference"], mine["changes"], mine["runs_here"]) == ("sd1", "baseline", "mine", True)
    assert mine["speedups"] == ["attention-classic"]
    # Without --suite and without a perf/ directory here: the built-in families only.
    code, report = variants_json("--profile", "tiny")
    assert code == 0 and [row["variant"] for row in report["variants"]] == list(REGISTRY.variants)


def test_variants_default_to_the_perf_suite_here(tmp_path, monkeypatch, suite_imports):
    (tmp_path / "perf").mkdir()
    (tmp_path / "perf" / "conftest.py").write_text(SUITE_CONFTEST)
    monkeypatch.chdir(tmp_path)
    code, report = variants_json("--profile", "tiny")
    assert code == 0 and report["variants"][-1]["variant"] == "my-classic"
    code, report = variants_json("--profile", "tiny", *BUILTIN)  # '' leaves the suite out
    assert code == 0 and [row["variant"] for row in report["variants"]] == list(REGISTRY.variants)


def test_a_suite_whose_declarations_fail_is_one_line(tmp_path, monkeypatch, suite_imports, capsys):
    suite = tmp_path / "bad-suite"
    suite.mkdir()
    (suite / "conftest.py").write_text(SUITE_CONFTEST.replace('"baseline"', '"nope"'))
    monkeypatch.chdir(tmp_path)
    assert cli.main(["variants", "--profile", "tiny", "--device", "cpu", "--suite", str(suite)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"diffperf: {suite}: variant my-classic is measured against 'nope', which is not declared\n"


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


def test_a_cuda_device_is_judged_for_without_one(capsys):
    """A GPU job is planned from a laptop: the catalogue judges for CUDA whether or not this machine has it."""
    assert cli.main(["variants", "--device", "cuda", "--json", *BUILTIN]) == 0
    rows = {row["variant"]: row for row in json.loads(capsys.readouterr().out)["variants"]}
    assert rows["fp16"]["runs_here"] and rows["bf16"]["runs_here"] and rows["best-gpu"]["runs_here"]
    assert rows["best-cpu"]["why_not"] == "best-cpu is meant for cpu (running on cuda)"
    assert rows["best-gpu"]["opt_in"] is None and "compile" in rows["best-gpu"]["speedups"]


def test_record_baselines_records_variants_that_would_be_skipped_here_with_a_note(tmp_path, capsys):
    from diffperf.images.baselines import ImageBaselines

    assert cli.main(["record-baselines", "tf32", "--profile", "tiny", "--device", "cpu",
                 "--baselines", str(tmp_path)]) == 0  # tf32 is for CUDA: skipped on a CPU, recorded all the same
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) == 2 and all(line.startswith("recorded ") and "would be skipped" in line for line in lines)
    stored = ImageBaselines(str(tmp_path), "tiny", "cpu").load("tf32", "astronaut")
    assert stored.provenance["note"].startswith("recorded on a CPU where it would be skipped (tf32 needs a CUDA GPU")
    assert cli.main(["record-baselines", "no-such-variant", "--baselines", str(tmp_path)]) == 2
    assert "unknown variant(s) no-such-variant: `diffperf variants` lists them" in capsys.readouterr().err


def test_plan_predicts_each_case_and_a_budget_before_anything_runs(capsys):
    assert cli.main(["plan", "--gpu", "cpu", "--profile", "tiny", "--budget", "90s", "--json", *BUILTIN]) == 0
    plan = json.loads(capsys.readouterr().out)
    cases = {case["case"]: case for case in plan["cases"]}
    assert plan["device"] == "cpu" and plan["profile"] == "tiny"
    assert cases["baseline-astronaut"]["partner"] == "yardstick" and cases["baseline-astronaut"]["tier"] == 1
    assert cases["fp16-astronaut"]["runs"] is False and "opt-in" in cases["fp16-astronaut"]["why_not"]
    assert set(plan["chosen"]) >= {case for case, row in cases.items() if row["runs"] and row["tier"] == 1}
    assert 0 < plan["predicted"] <= plan["most"]


def test_plan_refuses_a_budget_that_cannot_hold_tier_1_in_one_line(capsys):
    assert cli.main(["plan", "--gpu", "cpu", "--profile", "tiny", "--budget", "5s", *BUILTIN]) == 2
    error = capsys.readouterr().err
    assert error.startswith("diffperf plan: --perf-budget 5 s cannot hold tier 1 (11 cases, up to ")
    assert error.count("\n") == 1


def test_plan_names_an_unknown_device_class(capsys):
    assert cli.main(["plan", "--gpu", "tpu", *BUILTIN]) == 2
    assert "unknown device class 'tpu': choose one of a100, h100, h200, cpu" in capsys.readouterr().err


def test_variants_writes_nothing_to_stderr():
    """A fresh process, as a user runs it: the libraries' known import-time lines (torchao's kernels, transformers'
    image processors) stay out of the command's output."""
    source = str(Path(cli.__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, "-m", "diffperf.cli", "variants", "--profile", "tiny", "--device", "cpu",
                             *BUILTIN], capture_output=True, text=True, check=False, env={"PYTHONPATH": source})
    assert result.returncode == 0 and result.stdout.startswith("profile tiny: ")
    assert result.stderr == ""
