"""Comparing saved runs between runs (diffperf.history.compare, ``diffperf compare``), and pytest-benchmark's reader."""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import subprocess
from pathlib import Path

import historydata as hd
import numpy as np
import pytest

from diffperf.cli import NOTHING_TESTED, main
from diffperf.stats import ratios
from diffperf.history import compare
from diffperf.history.compare import compare_many, compare_runs, compare_sides, history_spread
from diffperf.history.runs import HistoryError, run_from_dict
from diffperf.history.values import LATENCY, SPEEDUP
from diffperf.render.history_text import comparison_tables, machine_warnings, regression_lines
from diffperf.render.table import markdown_table, render

SLOWDOWN = 1.2
DISTILLED = ("distilled", "astronaut")


def _run(document: dict, label: str):
    return run_from_dict(document, source=label, label=label)


def _runs(documents: list[dict], prefix: str) -> list:
    return [_run(document, f"{prefix}{i}.json") for i, document in enumerate(documents)]


def _cases(comparison) -> dict:
    return {case.variant: case for case in comparison.cases}


def _write_side(directory: Path, documents: list[dict]) -> Path:
    directory.mkdir(parents=True)
    for i, document in enumerate(documents):
        hd.write(directory / f"run{i}.json", document)
    return directory


# --------------------------------------------------------------------------- several runs per side


def test_several_runs_per_side_find_a_planted_slowdown():
    base = _runs(hd.process_runs(4, seed=0), "base")
    head = _runs(hd.process_runs(4, slowdown=SLOWDOWN, seed=50, day=5), "head")
    comparison = compare_sides(base, head)
    cases = _cases(comparison)
    distilled = cases["distilled"]
    assert distilled.latency.status == compare.SLOWER and distilled.latency.regressed
    assert distilled.latency.ratio == pytest.approx(SLOWDOWN, rel=0.03)
    assert distilled.latency.low > 1.05 and distilled.latency.p_value < 0.001
    assert (distilled.latency.df, distilled.latency.history_df, distilled.latency.priors) == (12, 6, (compare.ALL_CASES,))
    assert distilled.speedup.status == compare.LOWER
    assert distilled.speedup.ratio == pytest.approx(1 / SLOWDOWN, rel=0.03)
    assert distilled.old_latency.runs == 4 and distilled.old_latency.within is None
    assert cases["baseline"].latency.status == compare.NO_CHANGE and cases["baseline"].speedup is None
    assert cases["distilled-taesd"].latency.status == compare.NO_CHANGE
    assert cases["distilled-taesd"].speedup.status == compare.NO_CHANGE
    assert [(case.label, change.metric) for case, change in comparison.regressed] == [
        ("distilled/astronaut", LATENCY), ("distilled/astronaut", SPEEDUP)]
    assert len(regression_lines(comparison)) == 2


def test_change_is_the_pooled_t_interval_of_log_per_run_values_moderated_by_all_cases():
    base = _runs(hd.process_runs(3, seed=1, run_cv=0.03), "base")
    head = _runs(hd.process_runs(3, seed=2, run_cv=0.03, day=5), "head")
    change = _cases(compare_sides(base, head))["baseline"].latency
    keys = [("baseline", "astronaut"), ("distilled", "astronaut"), ("distilled-taesd", "astronaut")]
    pooled, _ = ratios.run_to_run_sd([[run.by_key[key].median for run in side] for key in keys for side in (base, head)])
    expected = ratios.between_runs([run.by_key[keys[0]].median for run in base],
                                   [run.by_key[keys[0]].median for run in head], history_sd=pooled, history_df=4)
    assert (change.ratio, change.low, change.high, change.p_value, change.df) == pytest.approx(
        (expected.estimate.median, expected.estimate.low, expected.estimate.high, expected.p_value, 8))


def test_no_regression_in_twenty_pairs_of_unchanged_sides():
    """No false regression over 20 pairs of unchanged runs (3 per side, 3% between runs)."""
    for pair in range(20):
        base = _runs(hd.process_runs(3, seed=100 * pair, run_cv=0.03), "base")
        head = _runs(hd.process_runs(3, seed=100 * pair + 50, run_cv=0.03, day=5), "head")
        comparison = compare_sides(base, head)
        assert comparison.regressed == []
        assert all(change.tested for case in comparison.cases for change in case.changes)


def test_faster_and_higher_are_not_regressions():
    base = _runs(hd.process_runs(3, slowdown=SLOWDOWN, seed=0), "base")
    head = _runs(hd.process_runs(3, seed=50, day=5), "head")
    distilled = _cases(compare_sides(base, head))["distilled"]
    assert distilled.latency.status == compare.FASTER and distilled.latency.high < 0.95
    assert distilled.speedup.status == compare.HIGHER and distilled.speedup.low > 1.05
    assert not distilled.latency.regressed and not distilled.speedup.regressed


# --------------------------------------------------------------------------- one run per side


def test_unchanged_runs_of_different_processes_are_untested_without_history():
    """Two unchanged runs minutes apart, one process 30% slower: one run per side cannot call that 'slower'."""
    old = _run(hd.standard_run(seed=0), "run1.json")
    new = _run(hd.standard_run(seed=100, scale=1.3), "run2.json")
    comparison = compare_runs(old, new)
    assert comparison.regressed == [] and comparison.history_runs is None
    for case in comparison.cases:
        assert case.latency.status == compare.UNTESTED and case.latency.reason == compare.ONE_RUN_PER_SIDE
        assert case.latency.ratio == pytest.approx(1.3, rel=0.02) and case.latency.low is None
        assert case.old_latency.within.low < case.old_latency.value < case.old_latency.within.high
    assert len(comparison.untested) == 5  # 3 latencies, 2 speed-ups


def test_one_run_per_side_borrows_the_history_spread():
    history = _runs(hd.process_runs(8, seed=300, run_cv=0.1), "history")
    old = _run(hd.standard_run(seed=0), "old.json")
    unchanged = _run(hd.standard_run(seed=100, scale=1.3), "unchanged.json")
    comparison = compare_runs(old, unchanged, history=history)
    assert comparison.history_runs == 8 and comparison.regressed == []
    baseline = _cases(comparison)["baseline"].latency
    sd, df = history_spread(history, ("baseline", "astronaut"), LATENCY)
    assert (baseline.df, baseline.history_df) == (df, df) == (7, 7)
    expected = ratios.between_runs([old.cases[0].median], [unchanged.cases[0].median], history_sd=sd, history_df=df)
    assert (baseline.low, baseline.high) == pytest.approx((expected.estimate.low, expected.estimate.high))
    assert baseline.status == compare.INCONCLUSIVE

    doubled = _run(hd.standard_run(slowdown=2.0, seed=200), "doubled.json")
    distilled = _cases(compare_runs(old, doubled, history=history))["distilled"]
    assert distilled.latency.status == compare.SLOWER and distilled.latency.history_df == 7
    assert distilled.speedup.status == compare.LOWER


def test_history_of_other_hardware_or_the_compared_files_does_not_count(tmp_path):
    gpu = _runs([hd.standard_run(seed=i, profile="full", device_name="NVIDIA H100", device_type="cuda")
                 for i in range(4)], "gpu")
    old = _run(hd.standard_run(seed=0), "old.json")
    new = _run(hd.standard_run(seed=100), "new.json")
    comparison = compare_runs(old, new, history=gpu)
    assert comparison.history_runs == 0
    assert {case.latency.reason for case in comparison.cases} == {compare.SHORT_HISTORY}

    from diffperf.history.runs import load_run

    old_file = hd.write(tmp_path / "old.json", hd.standard_run(seed=0))
    new_file = hd.write(tmp_path / "new.json", hd.standard_run(seed=100))
    one_more = hd.write(tmp_path / "more.json", hd.standard_run(seed=200))
    history = [load_run(path) for path in (old_file, new_file, one_more)]
    comparison = compare_runs(load_run(old_file), load_run(new_file), history=history)
    assert comparison.history_runs == 1  # old.json and new.json are what is compared


def test_history_spread_is_pooled_between_its_change_points():
    """A 30% step in the history is a change, not run-to-run variation: the spread comes from either side of it."""
    documents = hd.process_runs(24, seed=7, run_cv=0.004)
    documents = documents[:12] + [hd.standard_run(seed=500 + i, scale=1.3, when=d["datetime"])
                                  for i, d in enumerate(documents[12:])]
    history = _runs(documents, "h")
    sd, df = history_spread(history, ("baseline", "astronaut"), LATENCY)
    medians = np.log([run.cases[0].median for run in history])
    assert df == 22  # two stretches of 12 runs
    assert sd == pytest.approx(math.sqrt((np.var(medians[:12]) * 12 + np.var(medians[12:]) * 12) / 22))
    assert sd < 0.02 < np.std(medians)


# --------------------------------------------------------------------------- what cannot be tested


def test_without_raw_rounds_latency_is_tested_and_speedup_untested():
    base = _runs(hd.process_runs(3, seed=0, with_data=False), "autosaved")
    head = _runs(hd.process_runs(3, slowdown=SLOWDOWN, seed=50, day=5), "head")
    distilled = _cases(compare_sides(base, head))["distilled"]
    assert distilled.latency.status == compare.SLOWER  # a run's median needs no raw rounds
    assert distilled.speedup.status == compare.UNTESTED and distilled.speedup.reason == compare.NO_SPEEDUP
    assert distilled.old_speedup is None and math.isnan(distilled.speedup.ratio)


def test_a_changed_reference_is_untested():
    old = hd.standard_run(seed=0)
    old["benchmarks"][2]["extra_info"]["reference"] = "baseline"
    comparison = compare_sides(_runs([old] * 2, "old"), _runs(hd.process_runs(2, seed=5), "new"))
    taesd = _cases(comparison)["distilled-taesd"]
    assert taesd.speedup.status == compare.UNTESTED and taesd.speedup.reason == compare.REFERENCE_CHANGED
    assert (taesd.old_reference, taesd.reference) == ("baseline", "distilled")


def test_no_variant_in_common():
    a = _run(hd.run([hd.benchmark("alpha", "s", hd.rounds(0.1))]), "a.json")
    b = _run(hd.run([hd.benchmark("beta", "s", hd.rounds(0.1))]), "b.json")
    with pytest.raises(HistoryError, match=r"no variant in common between a.json \(alpha/s\) and b.json \(beta/s\)"):
        compare_runs(a, b)


def test_sides_must_share_one_machine():
    tiny = _run(hd.standard_run(seed=0), "tiny.json")
    gpu = _run(hd.standard_run(seed=1, profile="full", device_name="NVIDIA H100", device_type="cuda"), "gpu.json")
    with pytest.raises(HistoryError, match="different profiles/hardware"):
        compare_sides([tiny], [gpu])
    with pytest.raises(HistoryError, match="at least one run"):
        compare_sides([], [tiny])


def test_mixed_hardware_kept_apart():
    tiny_a = _run(hd.standard_run(seed=0), "tiny-a")
    gpu = _run(hd.standard_run(seed=1, profile="full", device_name="NVIDIA H100", device_type="cuda"), "gpu")
    tiny_b = _run(hd.standard_run(seed=100), "tiny-b")
    comparisons = compare_many([tiny_a, gpu, tiny_b])
    assert [(c.old_runs[0].label, c.new_runs[0].label) for c in comparisons] == [("tiny-a", "tiny-b")]
    warnings = machine_warnings([tiny_a, gpu, tiny_b])
    assert len(warnings) == 2 and "gpu" in warnings[1]
    with pytest.raises(HistoryError, match="nothing to compare"):
        compare_many([tiny_a, gpu])


# --------------------------------------------------------------------------- tables


def test_tables_plain_rich_and_markdown():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    comparison = compare_sides(_runs(hd.process_runs(3, seed=0), "a"),
                               _runs(hd.process_runs(3, slowdown=SLOWDOWN, seed=50, day=5), "b"))
    tables = comparison_tables(comparison)
    assert [len(table.rows) for table in tables] == [3, 2]
    stream = Terminal()
    render(tables, stream)
    assert "━" in stream.getvalue() and "slower" in stream.getvalue()
    os.environ["DIFFPERF_PLAIN"] = "1"
    try:
        stream = Terminal()
        render(tables, stream)
        assert "━" not in stream.getvalue()
    finally:
        del os.environ["DIFFPERF_PLAIN"]
    markdown = markdown_table(tables[0]).splitlines()
    assert markdown[0].startswith("**Latency: 3 runs (a0.json, a1.json, a2.json)")
    assert markdown[2].count("|") == 8 and markdown[3] == "|---|---|---:|---:|---:|---:|---|"
    assert sum(line.startswith("| distilled |") for line in markdown) == 1
    assert any(line.startswith("- ") for line in markdown)


# --------------------------------------------------------------------------- command line


@pytest.fixture
def sides(tmp_path):
    """Three runs each of main, an unchanged revision and a revision whose distilled variant is 20% slower."""
    return {
        "main": _write_side(tmp_path / "main", hd.process_runs(3, seed=0)),
        "same": _write_side(tmp_path / "same", hd.process_runs(3, seed=50, day=5, commit="2222222bbbbbbb")),
        "slow": _write_side(tmp_path / "slow", hd.process_runs(3, slowdown=SLOWDOWN, seed=90, day=9,
                                                               commit="3333333ccccccc")),
    }


def test_cli_base_head_fail_on_regression_exit_codes(sides, capsys):
    argv = ["compare", "--base", str(sides["main"]), "--head", str(sides["slow"])]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("REGRESSION 3 runs (run0.json, run1.json, run2.json) vs 3 runs") == 2
    assert "distilled/astronaut: latency +" in out
    assert main(argv + ["--fail-on-regression"]) == 1
    assert "2 regression(s)" in capsys.readouterr().err
    assert main(["compare", "--base", str(sides["main"]), "--head", str(sides["same"]), "--fail-on-regression"]) == 0
    assert "REGRESSION" not in capsys.readouterr().out


def test_cli_one_run_per_side_untested_unless_history(sides, capsys):
    old, new = sides["main"] / "run0.json", sides["slow"] / "run0.json"
    assert main(["compare", str(old), str(new), "--fail-on-regression"]) == NOTHING_TESTED
    captured = capsys.readouterr()
    assert "REGRESSION" not in captured.out and "untested" in captured.out
    assert "one run per side cannot separate a change from run-to-run variation" in captured.out
    assert "5 change(s) untested" in captured.err
    assert main(["compare", str(old), str(new), "--history", str(sides["main"]), str(sides["same"]),
                 "--fail-on-regression"]) == 1
    regressions = [line for line in capsys.readouterr().out.splitlines() if line.startswith("REGRESSION")]
    assert [line.split(": ")[1] for line in regressions] == ["distilled/astronaut"] * 2
    assert regressions[0].startswith("REGRESSION slow/run0.json vs main/run0.json: distilled/astronaut: latency +")
    assert "4 from the history" in regressions[0]  # main's other 2 runs and same's 3: 5 runs, 4 degrees of freedom


def test_cli_plain_text_when_not_a_tty(sides, capsys):
    assert main(["compare", str(sides["main"] / "run0.json"), str(sides["slow"] / "run2.json")]) == 0
    out = capsys.readouterr().out
    assert "\x1b[" not in out and "━" not in out and "│" not in out
    lines = out.splitlines()
    assert lines[0].startswith("Latency: run0.json (1111111, 2026-11-01 00:00) -> run2.json (3333333")
    assert lines[1].split()[:3] == ["variant", "scenario", "old"]
    assert set(lines[2].replace(" ", "")) == {"-"}
    assert any(line.startswith("distilled ") and "untested" in line for line in lines)
    assert any(line.startswith("Speed-up over reference:") for line in lines)


@pytest.mark.parametrize("argv_tail, message", [
    (["--base", "A"], "both --base"),
    (["A", "--base", "A", "--head", "A"], "not a mix"),
    ([], "nothing to compare"),
])
def test_cli_sides_given_wrongly_is_one_line_exit_2(sides, capsys, argv_tail, message):
    run = str(sides["main"] / "run0.json")
    assert main(["compare"] + [run if arg == "A" else arg for arg in argv_tail]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("content, message", [
    ("not json at all", "not a pytest-benchmark JSON file (invalid JSON"),
    ('{"hello": "world"}', "not a pytest-benchmark JSON file (no 'benchmarks' list)"),
])
def test_cli_bad_input_is_one_line_exit_2(sides, tmp_path, capsys, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    good = str(sides["main"] / "run0.json")
    for argv in (["compare", good, str(bad)], ["compare", "--base", good, "--head", str(bad)],
                 ["compare", good, good, "--history", str(bad)], ["trend", str(bad)],
                 ["report", str(bad), "--out", str(tmp_path / "r.html")]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("content, message", [
    ('{"schema": 2, "hosts": {', "is not valid JSON"),
    (json.dumps({"schema": 2, "profile": "tiny", "portable": {}, "hosts": {"cpu-amd-epyc-2t-55e82777": {"speedups": {
        "distilled/astronaut": {"reference": "baseline", "expected": 1.5, "tolerance": 0.03, "run_sd": float("nan"),
                                "between_sd": 0.01, "processes": 5}}}}}), "has run_sd nan"),
])
def test_cli_an_unreadable_calibration_is_one_line_exit_2(tmp_path, capsys, content, message):
    files = []
    for seed in (0, 1):
        document = hd.standard_run(seed=seed)
        document["machine_info"]["diffperf"]["host_key"] = "cpu-amd-epyc-2t-55e82777"  # calibrated_spreads reads it
        files.append(str(hd.write(tmp_path / f"run{seed}.json", document)))
    target = tmp_path / "baselines" / "tiny" / "speedups.json"
    target.parent.mkdir(parents=True)
    target.write_text(content)
    assert main(["compare", *files, "--baselines", str(tmp_path / "baselines")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err and str(target) in err and "Traceback" not in err
    assert err.rstrip().endswith("restore it from git, repair it with diffperf calibrate, or give --baselines "
                                 "a directory whose speedups.json reads")
    assert target.read_text() == content  # only read


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
        {"kind": "speed-up", "variant": "distilled", "reference": "baseline", "scenario": "astronaut",
         "status": "ok", "reason": None, "value": 1.52, "low": 1.46, "high": 1.55, "judged_low": 1.40,
         "judged_high": 1.60, "confidence": 0.95, "n": 6, "expected": 1.5, "tolerance": 0.1, "lower": 1.35,
         "upper": 1.65, "rounds_needed": None}], "memory": []}
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


def test_achieved_throughput_where_the_runs_recorded_it():
    """A third table, information only: whole-call FLOP/s per side (FLOPs / median latency), never a verdict."""
    gflop = {"baseline": 10.0, "distilled": 6.0, "distilled-taesd": 5.0}
    old = _runs([hd.with_throughput(d, gflop) for d in hd.process_runs(3, seed=0)], "a")
    new = _runs([hd.with_throughput(d, gflop) for d in hd.process_runs(3, slowdown=SLOWDOWN, seed=50, day=5)], "b")
    comparison = compare_sides(old, new)
    tables = comparison_tables(comparison)
    assert [len(table.rows) for table in tables] == [3, 2, 3]
    assert tables[2].title.startswith("Achieved throughput: 3 runs (a0.json")
    distilled = _cases(comparison)["distilled"]
    assert distilled.old_flop_rate.values == pytest.approx([6e9 / run.by_key[DISTILLED].median for run in old])
    assert distilled.new_flop_rate.value / distilled.old_flop_rate.value == pytest.approx(1 / SLOWDOWN, rel=0.03)
    assert distilled.new_peak_fraction == pytest.approx(np.mean([6e9 / run.by_key[DISTILLED].median / 100e9
                                                                 for run in new]))
    row = next(row for row in tables[2].rows if row[0] == "distilled")
    assert row[2].endswith("GFLOP/s\n3 runs") and row[4].startswith("-1")  # about -17%
    assert all(change.metric != "throughput" for case in comparison.cases for change in case.changes)


# --------------------------------------------------------------------------- many changes at once


def _case(variant: str, status: str, ratio: float, p_beyond: float) -> compare.CaseComparison:
    change = compare.Change(LATENCY, ratio, status, ratio * 0.97, ratio * 1.03, p_value=0.01, df=6,
                            p_beyond=p_beyond)
    return compare.CaseComparison(variant, "astronaut", None, compare.Side((1.0,)), compare.Side((ratio,)), change)


def test_a_change_beyond_the_threshold_by_chance_among_many_is_inconclusive():
    chance = _case("bf16", compare.SLOWER, 1.09, p_beyond=0.005)  # alone: significant at 2.5%
    strong = _case("distilled", compare.SLOWER, 1.5, p_beyond=1e-7)
    others = [_case(f"v{i}", compare.NO_CHANGE, 1.0, p_beyond=0.9) for i in range(20)]
    cases = compare._control_false_alarms([chance, strong, *others], 0.95)
    assert chance.latency.status == compare.INCONCLUSIVE and chance.latency.not_among_all
    assert strong.latency.status == compare.SLOWER and not strong.latency.not_among_all
    comparison = compare.Comparison([], [], cases)
    assert [case.label for case, _ in comparison.regressed] == ["distilled/astronaut"]
    from diffperf.render.history_text import _change_sentence

    assert "not among the 22 changes compared together" in _change_sentence(chance.latency, comparison)
    # The same change alone is reported.
    alone = _case("bf16", compare.SLOWER, 1.09, p_beyond=0.005)
    compare._control_false_alarms([alone], 0.95)
    assert alone.latency.status == compare.SLOWER
