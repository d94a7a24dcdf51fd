"""Comparing saved runs (diffperf.compare, ``diffperf compare``/``trend``), and pytest-benchmark's own reader."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
from pathlib import Path

import historydata as hd
import pytest

from diffperf.cli import main
from diffperf.compare import compare_many, compare_runs, comparison_tables, latency_level
from diffperf.history import HistoryError, run_from_dict
from diffperf.table import plain_text, render

SLOWDOWN = 1.2


def _run(document: dict, label: str):
    return run_from_dict(document, source=label, label=label)


@pytest.fixture
def files(tmp_path):
    """main (old), same (unchanged, new seed) and slow (distilled 20% slower) runs on disk."""
    return {
        "main": hd.write(tmp_path / "main.json", hd.standard_run(seed=0, when="2026-11-01T10:00:00+00:00")),
        "same": hd.write(tmp_path / "same.json", hd.standard_run(seed=100, commit="2222222bbbbbbb",
                                                                  when="2026-11-02T10:00:00+00:00")),
        "slow": hd.write(tmp_path / "slow.json", hd.standard_run(slowdown=SLOWDOWN, seed=200, commit="3333333ccccccc",
                                                                  when="2026-11-03T10:00:00+00:00")),
    }


# --------------------------------------------------------------------------- statistics


def test_planted_slowdown_is_slower_and_speedup_lower():
    comparison = compare_runs(_run(hd.standard_run(seed=0), "a"), _run(hd.standard_run(SLOWDOWN, seed=200), "b"))
    cases = {case.variant: case for case in comparison.cases}
    distilled = cases["distilled"]
    assert distilled.latency.status == "slower"
    assert distilled.latency.ratio == pytest.approx(SLOWDOWN, rel=0.03)
    assert distilled.latency.low > 1.05 and distilled.latency.p_value < 0.05
    assert distilled.speedup.status == "lower"
    assert distilled.speedup.ratio == pytest.approx(1 / SLOWDOWN, rel=0.03)
    assert cases["baseline"].latency.status == "no change" and cases["baseline"].speedup is None
    assert cases["distilled-taesd"].latency.status == "no change"
    assert cases["distilled-taesd"].speedup.status == "no change"
    assert len(comparison.regressions) == 2 and all("distilled/astronaut" in r for r in comparison.regressions)


def test_identical_distributions_are_no_change():
    for seed in (100, 300, 500):
        comparison = compare_runs(_run(hd.standard_run(seed=0), "a"), _run(hd.standard_run(seed=seed), "b"))
        for case in comparison.cases:
            assert case.latency.status == "no change", case.latency.note
            assert 0.95 < case.latency.low <= case.latency.high < 1.05
            if case.speedup is not None:
                assert case.speedup.status == "no change", case.speedup.note
        assert comparison.regressions == []


def test_interval_beyond_threshold_still_needs_mann_whitney():
    from diffperf.compare import _change
    from diffperf.ratios import Verdict

    slower = Verdict("regressed", 1.0, 0.05, "whole interval below")
    change = _change(1.2, 1.1, 1.3, 0.2, slower, {"regressed": "slower"}, "latency", 0.95, 0.05)
    assert change.status == "inconclusive" and "not significant (p >= 0.05)" in change.note
    change = _change(1.2, 1.1, 1.3, 0.01, slower, {"regressed": "slower"}, "latency", 0.95, 0.05)
    assert change.status == "slower"


def test_missing_raw_data_falls_back_and_says_so():
    old = _run(hd.standard_run(seed=0, with_data=False), "autosaved.json")
    new = _run(hd.standard_run(SLOWDOWN, seed=200), "new.json")
    comparison = compare_runs(old, new)
    distilled = next(case for case in comparison.cases if case.variant == "distilled")
    assert distilled.latency.status == "untested"
    assert distilled.latency.ratio == pytest.approx(SLOWDOWN, rel=0.03)
    assert distilled.latency.low is None and distilled.latency.p_value is None
    assert "no raw data in autosaved.json: no significance test" in distilled.latency.note
    assert "--benchmark-save-data" in distilled.latency.note
    assert distilled.speedup.status == "untested" and "no raw paired rounds in autosaved.json" in distilled.speedup.note
    assert comparison.regressions == []  # an untested change cannot fail
    assert comparison.untested == 5
    text = "\n".join(plain_text(table) for table in comparison_tables(comparison))
    assert "untested" in text and "no significance test" in text
    assert latency_level(old.cases[0]).interval == "IQR"


def test_too_few_rounds_is_untested_not_an_error():
    old = hd.run([hd.benchmark("v", "s", hd.rounds(0.1, 4, 0.01, 1))])
    new = hd.run([hd.benchmark("v", "s", hd.rounds(0.2, 4, 0.01, 2))])
    change = compare_runs(_run(old, "a"), _run(new, "b")).cases[0].latency
    assert change.status == "untested" and "need at least 6" in change.note


def test_no_variant_in_common():
    a = _run(hd.run([hd.benchmark("alpha", "s", hd.rounds(0.1))]), "a.json")
    b = _run(hd.run([hd.benchmark("beta", "s", hd.rounds(0.1))]), "b.json")
    with pytest.raises(HistoryError, match=r"no variant in common between a.json \(alpha/s\) and b.json \(beta/s\)"):
        compare_runs(a, b)


def test_mixed_hardware_kept_apart():
    tiny_a = _run(hd.standard_run(seed=0), "tiny-a")
    gpu = _run(hd.standard_run(seed=1, profile="full", device_name="NVIDIA H100", device_type="cuda"), "gpu")
    tiny_b = _run(hd.standard_run(seed=100), "tiny-b")
    comparisons, warnings = compare_many([tiny_a, gpu, tiny_b])
    assert [(c.old.label, c.new.label) for c in comparisons] == [("tiny-a", "tiny-b")]
    assert any("2 different profiles/hardware" in w for w in warnings)
    assert any("gpu" in w and "no other run" in w for w in warnings)
    with pytest.raises(HistoryError, match="nothing to compare"):
        compare_many([tiny_a, gpu])


# --------------------------------------------------------------------------- command line


def test_cli_fail_on_regression_exit_codes(files, capsys):
    assert main(["compare", str(files["main"]), str(files["slow"])]) == 0
    out = capsys.readouterr().out
    assert "REGRESSION slow.json vs main.json: distilled/astronaut" in out
    assert main(["compare", str(files["main"]), str(files["slow"]), "--fail-on-regression"]) == 1
    captured = capsys.readouterr()
    assert "2 regression(s)" in captured.err
    assert main(["compare", str(files["main"]), str(files["same"]), "--fail-on-regression"]) == 0
    assert "REGRESSION" not in capsys.readouterr().out


def test_cli_plain_text_when_not_a_tty(files, capsys):
    assert main(["compare", str(files["main"]), str(files["slow"])]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "━" not in out and "│" not in out
    lines = out.splitlines()
    assert lines[0].startswith("Latency: main.json (1111111, 2026-11-01 10:00) -> slow.json (3333333")
    assert lines[1].split()[:3] == ["variant", "scenario", "old"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert any(line.startswith("distilled ") and "slower" in line for line in lines)
    assert any(line.startswith("Speed-up over reference:") for line in lines)


def test_rich_table_on_a_terminal(files):
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    comparison = compare_runs(_run(hd.standard_run(seed=0), "a"), _run(hd.standard_run(SLOWDOWN, seed=200), "b"))
    stream = Terminal()
    render(comparison_tables(comparison), stream)
    text = stream.getvalue()
    assert "━" in text and "slower" in text and "distilled" in text
    os.environ["DIFFPERF_PLAIN"] = "1"
    try:
        stream = Terminal()
        render(comparison_tables(comparison), stream)
        assert "━" not in stream.getvalue()
    finally:
        del os.environ["DIFFPERF_PLAIN"]


@pytest.mark.parametrize("content, message", [
    ("not json at all", "not a pytest-benchmark JSON file (invalid JSON"),
    ('{"hello": "world"}', "not a pytest-benchmark JSON file (no 'benchmarks' list)"),
])
def test_cli_bad_input_is_one_line_exit_2(files, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    for argv in (["compare", str(files["main"]), str(bad)], ["trend", str(bad)], ["report", str(bad), "--out",
                                                                                  str(tmp_path / "r.html")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


def test_cli_no_variant_in_common_and_mixed_profiles(tmp_path, capsys):
    a = hd.write(tmp_path / "a.json", hd.run([hd.benchmark("alpha", "s", hd.rounds(0.1))]))
    b = hd.write(tmp_path / "b.json", hd.run([hd.benchmark("beta", "s", hd.rounds(0.1))]))
    assert main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "diffperf compare: no variant in common between a.json (alpha/s) and b.json (beta/s)"

    c = hd.write(tmp_path / "c.json", hd.run([hd.benchmark("alpha", "s", hd.rounds(0.1, seed=3))],
                                                profile="full", device_name="NVIDIA H100", device_type="cuda"))
    assert main(["compare", str(a), str(c)]) == 2
    err = capsys.readouterr().err
    assert "nothing to compare: no two runs share a profile and hardware" in err and "Traceback" not in err

    d = hd.write(tmp_path / "d.json", hd.run([hd.benchmark("alpha", "s", hd.rounds(0.1, seed=4))]))
    assert main(["compare", str(a), str(c), str(d)]) == 0
    captured = capsys.readouterr()
    assert "warning: runs from 2 different profiles/hardware" in captured.err
    assert "Latency: a.json" in captured.out and "-> d.json" in captured.out and "c.json (" not in captured.out


def test_cli_trend_png_html_and_mixed_warning(files, tmp_path, capsys):
    gpu = hd.write(tmp_path / "gpu.json", hd.standard_run(profile="full", device_name="NVIDIA H100",
                                                           device_type="cuda", when="2026-11-04T10:00:00+00:00"))
    png, page = tmp_path / "out" / "trend.png", tmp_path / "out" / "trend.html"
    assert main(["trend", str(tmp_path), "--out", str(png), "--out", str(page)]) == 0
    captured = capsys.readouterr()
    assert "kept apart" in captured.err and gpu.name in captured.err
    assert "Trend, profile tiny on AMD EPYC (cpu, 2 threads): 3 run(s)" in captured.out
    assert "Trend, profile full on NVIDIA H100 (cuda): 1 run(s)" in captured.out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = page.read_text()
    assert "data:image/png;base64," in html and "<table>" in html and "3333333" in html
    assert "http://" not in html and "https://" not in html
    assert main(["trend", str(tmp_path), "--out", str(tmp_path / "trend.svg")]) == 2


def test_trend_values_are_chronological(files):
    from diffperf.history import load_runs
    from diffperf.trend import build_trends

    runs, _ = load_runs([files["slow"], files["main"], files["same"]])
    trends = build_trends(runs)
    (key,) = trends.groups
    assert [run.label for run in trends.groups[key]] == ["main.json", "same.json", "slow.json"]
    distilled = next(s for s in trends.series[key] if s.variant == "distilled")
    assert [p.index for p in distilled.points] == [0, 1, 2]
    assert distilled.points[-1].latency.value / distilled.points[0].latency.value == pytest.approx(SLOWDOWN, rel=0.03)
    assert all(p.speedup.low < p.speedup.value < p.speedup.high for p in distilled.points)


# --------------------------------------------------------------------------- pytest-benchmark reads ours


def _pytest_benchmark_cli() -> str:
    for name in ("py.test-benchmark", "pytest-benchmark"):
        found = shutil.which(name) or (Path(os.sys.executable).parent / name)
        if Path(found).exists():
            return str(found)
    pytest.skip("pytest-benchmark's console script is not installed")


def test_pytest_benchmark_compare_reads_our_files(tmp_path, capsys):
    ours = json.loads(hd.REAL_RUN.read_text())
    ours["diffperf"] = {"baseline_key": "cpu-amd-epyc", "speedups": [
        {"variant": "distilled", "reference": "baseline", "scenario": "astronaut", "median": 1.52, "low": 1.46,
         "high": 1.55, "confidence": 0.95, "n": 6, "method": "paired", "expected": 1.5, "tolerance": 0.05,
         "status": "ok", "message": "fine", "rounds_needed": None}], "memory": []}
    real = tmp_path / "0001_ours.json"
    real.write_text(json.dumps(ours))
    synthetic = hd.write(tmp_path / "0002_synthetic.json", hd.standard_run())
    result = subprocess.run([_pytest_benchmark_cli(), "compare", str(real), str(synthetic)],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    for name in ("baseline-astronaut", "distilled-astronaut", "distilled-taesd-vase"):
        assert name in result.stdout
    # And ours reads the same files back.
    assert main(["compare", str(real), str(synthetic)]) == 0
    assert "distilled-taesd" in capsys.readouterr().out
