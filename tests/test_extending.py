"""docs/extending.md's path, run as the page gives it: its perf/conftest.py (a speed-up and a variant of the
user's own) and its perf/test_diffperf.py, taken from the page. The new variant gets everything the built-in
variants get: paired latency with stages, memory and FLOPs, image baselines, ``diffperf calibrate`` (which finds
the suite), the gate (which catches a planted slowdown), saved-run comparison and ``diffperf variants``."""

import json
import re
from pathlib import Path

import pytest
from diffusers.models.attention_processor import SlicedAttnProcessor

import diffperf.cases.latency  # noqa: F401  (pytester's in-process runs cannot import torch a second time)
from diffperf import cli
from diffperf.measure import workers

pytest_plugins = ["pytester"]

ROOT = Path(__file__).resolve().parents[1]
SUITE = ROOT / "perf"
GUIDE = ROOT / "docs" / "extending.md"


def documented_file(path: str, example: str = "") -> str:
    """The file ``path`` as docs/extending.md gives it: the Python block whose first line is ``# PATH``, or
    ``# PATH (EXAMPLE)`` for another example of the same file."""
    first = f"# {path} ({example})\n" if example else f"# {path}\n"
    blocks = re.findall(r"```python\n(.*?)```", GUIDE.read_text(), re.DOTALL)
    (block,) = [block for block in blocks if block.startswith(first)]
    return block


@pytest.mark.slow
def test_the_documented_suite_gets_what_the_built_in_variants_get(pytester, tmp_path, capsys, monkeypatch):
    for path in ("perf/conftest.py", "perf/test_diffperf.py"):
        (pytester.path / path).parent.mkdir(exist_ok=True)
        (pytester.path / path).write_text(documented_file(path))
    calls = []
    attention = SlicedAttnProcessor.__call__
    monkeypatch.setattr(SlicedAttnProcessor, "__call__",  # counts the user's processor's calls
                        lambda self, *args, **kwargs: calls.append(1) or attention(self, *args, **kwargs))
    baselines = tmp_path / "baselines"
    astronaut = "astronaut and not xl"
    args = ["--perf-variants", "baseline,sliced", "--perf-profile", "tiny",
            "--perf-device", "cpu", "--perf-rounds", "6", "--perf-warmup", "0", "--perf-baselines", str(baselines),
            "--perf-output", str(tmp_path / "output"), "-p", "no:cacheprovider"]

    # The page's `pytest perf -k sliced --perf-update-baselines`: the fp32 baseline's image, which the variant's
    # check compares with, is recorded beside the variant's own.
    recorded = pytester.runpytest("perf", *args, "-k", f"sliced and {astronaut}", "--perf-update-baselines",
                                  "--benchmark-json", str(tmp_path / "first.json"))
    assert recorded.parseoutcomes()["passed"] == 2, recorded.stdout.str()  # latency and image of sliced, on astronaut
    assert calls  # the user's processor ran
    index = json.loads((baselines / "tiny" / "cpu" / "images" / "index.json").read_text())
    assert set(index["images"]) == {"baseline-astronaut", "sliced-astronaut"}
    case = next(bench["extra_info"] for bench in json.loads((tmp_path / "first.json").read_text())["benchmarks"]
                if bench["extra_info"]["variant"] == "sliced")
    assert (case["family"], case["reference"], case["speedups"]) == ("sd1", "baseline", ["sliced-attention"])
    assert case["stages"]["denoising"] > 0 and case["peak_memory"] > 0 and case["flops"]["total"] > 0
    assert len(case["reference_rounds"]) == 7

    # Its image is checked against its own baseline and, being numerically SDPA, against fp32's.
    checked = pytester.runpytest("perf", *args, "-k", f"{astronaut} and similarity",
                                 "--junitxml", str(tmp_path / "junit.xml"))
    assert checked.parseoutcomes()["passed"] == 2
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="similarity_own"' in junit and 'name="similarity_fp32"' in junit

    # `diffperf calibrate` finds the suite, perf/test_diffperf.py, and runs its latency cases in five processes:
    # here each worker's own command runs in this process, standing in for a fresh one.
    def in_this_process(measured, processes, out, progress=None):
        (worker,) = measured.values()
        worker.check()
        paths = [Path(out).resolve() / f"run-{index:02d}.json" for index in range(processes)]
        paths[0].parent.mkdir(parents=True, exist_ok=True)
        for path in paths:
            command = worker.command(path)
            assert command[3] == "perf/test_diffperf.py::test_latency"
            assert pytester.runpytest(*command[3:]).ret == 0
        return {"run": paths}

    monkeypatch.setattr(workers, "run_alternating", in_this_process)
    assert cli.main(["calibrate", "--processes", "5", "--out", str(tmp_path / "runs"), "--baselines", str(baselines),
                     "--", *args, "-k", f"{astronaut} and latency"]) == 0
    assert "diffperf calibrate: 5 processes of perf/test_diffperf.py" in capsys.readouterr().out
    (host,) = json.loads((baselines / "tiny" / "speedups.json").read_text())["hosts"].values()
    assert host["speedups"]["sliced/astronaut"]["reference"] == "baseline"

    judged = pytester.runpytest("perf", *args, "-k", f"{astronaut} and latency")
    assert judged.ret == 0, judged.stdout.str()
    judged.stdout.fnmatch_lines(["*judged against this host's calibration*", "speed-up gate: passed*"])
    slowed = pytester.runpytest("perf", *args, "-k", f"{astronaut} and latency", "--perf-plant-slowdown", "sliced=1.0")
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED
    slowed.stdout.fnmatch_lines(["*REGRESSED: speed-up sliced/astronaut*", "speed-up gate: FAILED*"])

    runs = sorted((tmp_path / "runs").glob("run-*.json"))
    assert cli.main(["compare", str(runs[0]), str(runs[1])]) == 0
    assert "sliced" in capsys.readouterr().out
    assert cli.main(["variants", "--profile", "tiny", "--device", "cpu", "--suite", "perf", "--json"]) == 0
    rows = {row["variant"]: row for row in json.loads(capsys.readouterr().out)["variants"]}
    assert rows["sliced"]["speedups"] == ["sliced-attention"] and rows["sliced"]["runs_here"]
    assert "ssd-1b" in rows  # the built-in families are declared beside it


@pytest.mark.slow
def test_the_documented_few_step_speed_up_changes_each_call(pytester, tmp_path):
    """The page's few-step example: its call stage changes each timed call, which the case records, and its image
    is checked against its own stored image only."""
    (pytester.path / "perf").mkdir()
    (pytester.path / "perf" / "conftest.py").write_text(documented_file("perf/conftest.py", "a few-step variant"))
    (pytester.path / "perf" / "test_diffperf.py").write_text(documented_file("perf/test_diffperf.py"))
    baselines = tmp_path / "baselines"
    args = ["--perf-variants", "baseline,dmd2", "--perf-profile", "tiny", "--perf-device", "cpu", "--perf-rounds", "2",
            "--perf-no-gate", "--perf-warmup", "0", "--perf-baselines", str(baselines),
            "--perf-output", str(tmp_path / "output"), "-p", "no:cacheprovider"]
    dmd2 = "dmd2 and astronaut and not xl"

    recorded = pytester.runpytest("perf", *args, "-k", dmd2, "--perf-update-baselines",
                                  "--benchmark-json", str(tmp_path / "run.json"))
    assert recorded.parseoutcomes()["passed"] == 2, recorded.stdout.str()  # its latency and image cases
    (case,) = [bench["extra_info"] for bench in json.loads((tmp_path / "run.json").read_text())["benchmarks"]
               if bench["extra_info"]["variant"] == "dmd2"]
    assert (case["reference"], case["speedups"]) == ("baseline", ["dmd2-sampling"])
    assert case["call"]["scheduler"] == "LCMScheduler"
    assert case["call"]["arguments"]["timesteps"] == [999, 749, 499, 249]
    assert case["call_changes"] == {"arguments": {"timesteps": [999, 749, 499, 249], "guidance_scale": 0.0},
                                    "scheduler": "LCMScheduler"}
    index = json.loads((baselines / "tiny" / "cpu" / "images" / "index.json").read_text())
    assert set(index["images"]) == {"dmd2-astronaut"}  # not compared with fp32: no fp32 image is needed

    checked = pytester.runpytest("perf", *args, "-k", f"{dmd2} and similarity", "--junitxml",
                                 str(tmp_path / "junit.xml"))
    assert checked.parseoutcomes()["passed"] == 1, checked.stdout.str()
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="similarity_own"' in junit and 'name="similarity_fp32"' not in junit


def test_a_declaration_that_cannot_work_is_one_usage_line(pytester):
    pytester.makeconftest('''
from diffperf.api import Variant, Precision

def pytest_diffperf_declare(registry):
    registry.add(Variant("half-xl", "sdxl", [Precision("float16")], reference="sdxl-missing"))
''')
    pytester.makepyfile(test_my_latency=(SUITE / "test_latency.py").read_text())
    result = pytester.runpytest("--co", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "diffperf: variant half-xl is measured against 'sdxl-missing', which is not declared" in result.stdout.str() + result.stderr.str()
