"""A speed-up and a variant of the user's own, declared in a test directory's conftest.py, get everything
the built-in variants get: paired latency with stages, memory and FLOPs, image baselines, calibration,
the gate (which catches a planted slowdown), saved-run comparison and ``diffperf variants``."""

import json
from pathlib import Path

import pytest

import diffperf.cases.latency  # noqa: F401  (pytester's in-process runs cannot import torch a second time)
from diffperf import cli

pytest_plugins = ["pytester"]

SUITE = Path(__file__).resolve().parents[1] / "perf"

# What a user writes: an attention processor of their own, as a speed-up, and a variant using it.
CONFTEST = '''
from pathlib import Path

from diffusers.models.attention_processor import AttnProcessor2_0

from diffperf.api import SpeedUp, Variant


class CountingProcessor(AttnProcessor2_0):
    """SDPA attention that counts its calls."""

    calls = 0

    def __call__(self, *args, **kwargs):
        CountingProcessor.calls += 1
        return super().__call__(*args, **kwargs)


class CountingAttention(SpeedUp):
    name = "counting-attention"
    description = "SDPA through a processor of our own"

    def apply(self, models, context):
        models["unet"].set_attn_processor(CountingProcessor())


def pytest_diffperf_declare(registry):
    registry.add(Variant("counting-sdpa", "sd1", [CountingAttention()], reference="baseline"))


def pytest_sessionfinish(session):
    Path(session.config.rootpath, "attention-calls.txt").write_text(str(CountingProcessor.calls))
'''


@pytest.mark.slow
def test_a_speedup_declared_in_a_conftest_gets_what_the_built_in_ones_get(pytester, tmp_path, capsys):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_my_latency=(SUITE / "test_latency.py").read_text(),
                        test_my_similarity=(SUITE / "test_similarity.py").read_text())
    baselines = tmp_path / "baselines"
    astronaut = "astronaut and not xl"
    args = ["--perf-variants", "baseline,counting-sdpa", "--perf-profile", "tiny",
            "--perf-device", "cpu", "--perf-rounds", "6", "--perf-warmup", "0", "--perf-baselines", str(baselines),
            "--perf-output", str(tmp_path / "output"), "-p", "no:cacheprovider"]

    recorded = pytester.runpytest(*args, "-k", astronaut, "--perf-update-baselines",
                                  "--benchmark-json", str(tmp_path / "first.json"))
    assert recorded.parseoutcomes()["passed"] == 4  # latency and image of baseline and counting-sdpa, on astronaut
    assert int((pytester.path / "attention-calls.txt").read_text()) > 0  # the user's processor ran
    index = json.loads((baselines / "tiny" / "cpu" / "images" / "index.json").read_text())
    assert any(key.startswith("counting-sdpa-astronaut") for key in json.dumps(index).split('"'))
    case = next(bench["extra_info"] for bench in json.loads((tmp_path / "first.json").read_text())["benchmarks"]
                if bench["extra_info"]["variant"] == "counting-sdpa")
    assert (case["family"], case["reference"], case["speedups"]) == ("sd1", "baseline", ["counting-attention"])
    assert case["stages"]["denoising"] > 0 and case["peak_memory"] > 0 and case["flops"]["total"] > 0
    assert len(case["reference_rounds"]) == 7

    # Its image is checked against its own baseline and, being numerically SDPA, against fp32's.
    checked = pytester.runpytest(*args, "-k", f"{astronaut} and similarity", "--junitxml", str(tmp_path / "junit.xml"))
    assert checked.parseoutcomes()["passed"] == 2
    junit = (tmp_path / "junit.xml").read_text()
    assert 'name="similarity_own"' in junit and 'name="similarity_fp32"' in junit

    runs = [tmp_path / f"run-{index}.json" for index in range(5)]
    for path in runs:  # in-process runs stand in for processes here; `diffperf calibrate` measures fresh ones
        assert pytester.runpytest(*args, "-k", f"{astronaut} and latency", f"--benchmark-json={path}",
                                  "--perf-no-gate").ret == 0
    assert cli.main(["calibrate", "--from-runs", *map(str, runs), "--baselines", str(baselines)]) == 0
    (host,) = json.loads((baselines / "tiny" / "speedups.json").read_text())["hosts"].values()
    assert host["speedups"]["counting-sdpa/astronaut"]["reference"] == "baseline"

    judged = pytester.runpytest(*args, "-k", f"{astronaut} and latency")
    assert judged.ret == 0, judged.stdout.str()
    judged.stdout.fnmatch_lines(["*judged against this host's calibration*", "speed-up gate: passed*"])
    slowed = pytester.runpytest(*args, "-k", f"{astronaut} and latency", "--perf-plant-slowdown", "counting-sdpa=1.0")
    assert slowed.ret == pytest.ExitCode.TESTS_FAILED
    slowed.stdout.fnmatch_lines(["*REGRESSED: speed-up counting-sdpa/astronaut*", "speed-up gate: FAILED*"])

    capsys.readouterr()
    assert cli.main(["compare", str(runs[0]), str(runs[1])]) == 0
    assert "counting-sdpa" in capsys.readouterr().out
    assert cli.main(["variants", "--profile", "tiny", "--device", "cpu", "--suite", str(pytester.path), "--json"]) == 0
    rows = {row["variant"]: row for row in json.loads(capsys.readouterr().out)["variants"]}
    assert rows["counting-sdpa"]["speedups"] == ["counting-attention"] and rows["counting-sdpa"]["runs_here"]
    assert "ssd-1b" in rows  # the built-in families are declared beside it


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
