"""Loading saved runs (diffperf.history.runs): our files, plain pytest-benchmark files, autosave dirs, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import historydata as hd
import pytest

from diffperf.history.runs import (
    HistoryError,
    MachineKey,
    group_by_machine,
    load_run,
    load_runs,
    run_from_dict,
    sort_by_time,
    without,
)
from diffperf.models.plants import Plants
from diffperf.render.history_text import mixed_machines_warning


@pytest.fixture(scope="module")
def plain_runs(tmp_path_factory):
    """A real plain pytest-benchmark session (diffperf's plugin disabled): a --benchmark-json file
    with raw rounds and an --benchmark-autosave file without them."""
    root = tmp_path_factory.mktemp("plain")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "test_plain.py").write_text(textwrap.dedent("""
        import pytest

        def test_sum(benchmark):
            benchmark(sum, range(200))

        @pytest.mark.benchmark(group="sorting")
        def test_sort(benchmark):
            benchmark(sorted, list(range(200, 0, -1)))
    """))
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:diffperf", "-p", "no:cacheprovider", "test_plain.py",
         "--benchmark-json=plain.json", "--benchmark-autosave", f"--benchmark-storage=file://{root / 'store'}",
         "--benchmark-min-rounds=6", "--benchmark-max-time=0.02", "--benchmark-warmup=off"],
        cwd=root, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    saved = sorted((root / "store").rglob("*.json"))
    assert len(saved) == 1
    return root / "plain.json", saved[0]


def test_reads_our_real_file():
    run = load_run(hd.REAL_RUN)
    assert run.machine == MachineKey("tiny", "AMD EPYC", "cpu", threads=2)
    assert str(run.machine) == "profile tiny on AMD EPYC (cpu, 2 threads)"
    assert str(run.machine) == "profile tiny on AMD EPYC (cpu, 2 threads)"
    assert run.commit_label == "0230c24"
    assert run.when is not None and run.when.tzinfo is not None
    assert run.versions["torch"].startswith("2.")
    keys = [case.key for case in run.cases]
    assert ("baseline", "astronaut") in keys and ("distilled-taesd", "vase") in keys
    by_key = run.by_key
    baseline, distilled = by_key[("baseline", "astronaut")], by_key[("distilled", "astronaut")]
    assert baseline.reference is None and baseline.has_raw and not baseline.paired
    assert distilled.reference == "baseline" and distilled.paired and len(distilled.data) == 6
    assert set(distilled.stages) == {"text_encoding", "denoising", "decoding"}
    assert distilled.number("peak_memory") > 0
    assert run.gate is None


def test_reads_plain_pytest_benchmark_json(plain_runs):
    json_file, _ = plain_runs
    run = load_run(json_file)
    assert run.machine.profile == "-"
    assert "no diffperf profile" in str(run.machine)
    keys = {case.key for case in run.cases}
    assert keys == {("test_sum", ""), ("test_sort", "sorting")}
    for case in run.cases:
        assert case.reference is None and case.has_raw and case.extra_info == {}
        assert case.label in ("test_sum", "test_sort/sorting")


def test_reads_autosave_directory_without_raw_rounds(plain_runs):
    _, autosaved = plain_runs
    store = autosaved.parent.parent  # .benchmarks-like root: <store>/<machine_id>/0001_*.json
    runs, warnings = load_runs([store])
    assert warnings == [] and len(runs) == 1
    assert all(not case.has_raw for case in runs[0].cases)
    assert runs[0].label == autosaved.name


def test_commands_on_plain_pytest_benchmark_files(plain_runs, tmp_path, capsys):
    from diffperf.cli import NOTHING_TESTED, main

    json_file, autosaved = plain_runs
    assert main(["compare", str(autosaved), str(json_file), "--fail-on-regression"]) == NOTHING_TESTED
    captured = capsys.readouterr()
    assert "test_sum" in captured.out and "test_sort" in captured.out and "Speed-up" not in captured.out
    assert "untested" in captured.out and "2 change(s) untested" in captured.err
    assert main(["trend", str(json_file), str(autosaved), "--out", str(tmp_path / "t.html")]) == 0
    assert main(["report", str(json_file), "--out", str(tmp_path / "r.html")]) == 0
    assert "test_sort" in (tmp_path / "r.html").read_text()


def test_directory_skips_foreign_json_with_a_warning(tmp_path):
    hd.write(tmp_path / "0001_run.json", hd.standard_run())
    (tmp_path / "package.json").write_text('{"name": "not a benchmark"}')
    runs, warnings = load_runs([tmp_path])
    assert len(runs) == 1
    assert len(warnings) == 1 and "package.json" in warnings[0] and "not a pytest-benchmark JSON" in warnings[0]


@pytest.mark.parametrize("content, message", [
    ("this is not json", "not a pytest-benchmark JSON file (invalid JSON"),
    ('{"name": "x"}', "not a pytest-benchmark JSON file (no 'benchmarks' list)"),
    ("[1, 2]", "no 'benchmarks' list"),
    ('{"benchmarks": [{"name": "t"}]}', "benchmark #0 lacks a name or stats.median"),
    ('{"benchmarks": [{"name": "t", "stats": {"median": 1.0, "data": ["a"]}}]}', "must be a list of positive"),
    ('{"benchmarks": [{"name": "t", "stats": {"median": 0}}]}', "stats.median must be a positive number"),
])
def test_bad_files_give_one_line_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(HistoryError) as caught:
        load_run(path)
    text = str(caught.value)
    assert message in text and str(path) in text and "\n" not in text


@pytest.mark.parametrize("change, message", [
    (lambda info: "tiny", "machine_info.diffperf is 'tiny', not an object"),
    (lambda info: {**info, "threads": "two"}, "machine_info.diffperf.threads is 'two', not a whole number"),
    (lambda info: {**info, "device_count": 1.5}, "machine_info.diffperf.device_count is 1.5, not a whole number"),
])
def test_a_run_whose_diffperf_machine_info_is_malformed_is_one_line_naming_the_file(tmp_path, capsys, change,
                                                                                    message):
    from diffperf.cli import main

    document = hd.standard_run(seed=1)
    document["machine_info"]["diffperf"] = change(document["machine_info"]["diffperf"])
    bad = hd.write(tmp_path / "bad.json", document)
    with pytest.raises(HistoryError) as caught:
        load_run(bad)
    assert str(caught.value).startswith(f"{bad}: {message}") and "\n" not in str(caught.value)
    assert main(["compare", str(hd.write(tmp_path / "good.json", hd.standard_run())), str(bad)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and message in error


@pytest.mark.parametrize("where", ["datetime", "commit_info.time"])
def test_a_run_whose_date_cannot_be_read_is_refused_naming_the_file(tmp_path, where):
    document = hd.standard_run()
    if where == "datetime":
        document["datetime"] = "yesterday"
    else:
        document["commit_info"]["time"] = "yesterday"
        del document["datetime"]
    bad = hd.write(tmp_path / "bad.json", document)
    with pytest.raises(HistoryError) as caught:
        load_runs([bad, hd.write(tmp_path / "good.json", hd.standard_run(seed=1))])
    assert str(caught.value) == (f"{bad}: {where} 'yesterday' is not a date and time: write it as pytest-benchmark "
                                 "does (ISO 8601, e.g. 2026-11-01T10:00:00+00:00) or remove it")


def test_missing_paths_and_empty_directories(tmp_path):
    with pytest.raises(HistoryError, match="no such file"):
        load_runs([tmp_path / "missing.json"])
    with pytest.raises(HistoryError, match="no .json files"):
        load_runs([tmp_path])
    (tmp_path / "junk.json").write_text("{}")
    with pytest.raises(HistoryError, match="no pytest-benchmark runs found"):
        load_runs([tmp_path])


def test_machine_keys_keep_profiles_and_hardware_apart():
    tiny = run_from_dict(hd.standard_run(profile="tiny"), "a.json")
    tiny_again = run_from_dict(hd.standard_run(profile="tiny", seed=5), "b.json")
    full = run_from_dict(hd.standard_run(profile="full", device_name="NVIDIA H100 80GB HBM3",
                                         device_type="cuda"), "c.json")
    groups = group_by_machine([tiny, full, tiny_again])
    assert list(groups) == [tiny.machine, full.machine]
    assert [run.label for run in groups[tiny.machine]] == ["a.json", "b.json"]
    assert str(full.machine) == "profile full on NVIDIA H100 80GB HBM3 (cuda)"
    warning = mixed_machines_warning(groups)
    assert "2 different profiles/hardware" in warning and "c.json" in warning
    assert mixed_machines_warning({tiny.machine: [tiny]}) is None


def test_machine_key_from_extra_info_when_machine_info_lacks_it():
    document = hd.standard_run()
    del document["machine_info"]["diffperf"]
    run = run_from_dict(document)
    assert run.machine.profile == "tiny" and "AMD EPYC" in run.machine.hardware


def test_labels_made_unique_and_runs_sorted_by_date(tmp_path):
    for name, when in (("old", "2026-11-02T10:00:00+00:00"), ("new", "2026-11-01T10:00:00+00:00")):
        (tmp_path / name).mkdir()
        hd.write(tmp_path / name / "run.json", hd.standard_run(when=when))
    runs, _ = load_runs([tmp_path / "old" / "run.json", tmp_path / "new" / "run.json"])
    assert [run.label for run in runs] == ["old/run.json", "new/run.json"]
    assert [run.label for run in sort_by_time(runs)] == ["new/run.json", "old/run.json"]


def test_gate_section_is_optional_and_read():
    gate = {"baseline_key": "cpu-x", "speedups": [{"variant": "distilled", "scenario": "astronaut", "value": 1.5}],
            "memory": []}
    run = run_from_dict(hd.standard_run(gate=gate))
    assert run.gate_rows("speedups")[0]["value"] == 1.5 and run.gate_rows("memory") == []
    assert run_from_dict(json.loads(hd.REAL_RUN.read_text())).gate_rows("speedups") == []


@pytest.mark.parametrize("commit, dirty, label", [
    ("0230c24d8f1e2a3b4c5d6e7f8091a2b3c4d5e6f7", False, "0230c24"),
    ("0230c24d8f1e2a3b4c5d6e7f8091a2b3c4d5e6f7", True, "0230c24+"),
    ("unversioned", False, "unversioned"),
    ("v1.2-release", True, "v1.2-release+"),
    (None, False, "no commit"),
])
def test_commit_label_shortens_only_hex_shas(commit, dirty, label):
    document = hd.standard_run()
    document["commit_info"].update(id=commit, dirty=dirty)
    assert run_from_dict(document).commit_label == label


def test_without_leaves_out_runs_of_the_same_files(tmp_path):
    a, b = hd.write(tmp_path / "a.json", hd.standard_run()), hd.write(tmp_path / "b.json", hd.standard_run(seed=1))
    history = [load_run(a), load_run(b)]
    assert [run.label for run in without(history, [load_run(tmp_path / "." / "a.json")])] == ["b.json"]
    in_memory = run_from_dict(hd.standard_run(), source="this run", label="this run")
    assert without([in_memory], [in_memory]) == [] and len(without(history, [in_memory])) == 2


def test_saved_run_modules_import_without_torch():
    """diffperf.history (loading, comparing, trends, change points, report) never needs torch."""
    code = ("import diffperf.history.runs, diffperf.history.compare, diffperf.history.trend, "
            "diffperf.render.report, diffperf.history.changepoints, diffperf.render.history_text, sys; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# -- the same run twice, planted slowdowns ----------------------------------------------------------


def test_the_same_run_twice_counts_once_with_a_warning(tmp_path):
    a = hd.write(tmp_path / "a.json", hd.standard_run())
    copy = hd.write(tmp_path / "copy-of-a.json", hd.standard_run())
    b = hd.write(tmp_path / "b.json", hd.standard_run(seed=1))
    runs, warnings = load_runs([a, a, copy, b])
    assert [run.label for run in runs] == ["a.json", "b.json"]
    assert warnings == [f"skipped {a} is the same run as {a}: a run counts once",
                        f"skipped {copy} is the same run as {a} (identical content): a run counts once"]


def test_the_same_run_twice_is_refused_where_each_run_must_be_a_process_of_its_own(tmp_path):
    a = hd.write(tmp_path / "a.json", hd.standard_run())
    with pytest.raises(HistoryError, match=r"is the same run as .*a\.json: each run must come from a process of its "
                                           r"own; give each run once$"):
        load_runs([a, a], distinct=True)


def test_compare_refuses_a_run_compared_with_itself(tmp_path, capsys):
    from diffperf.cli import main

    a = hd.write(tmp_path / "a.json", hd.standard_run())
    b = hd.write(tmp_path / "b.json", hd.standard_run(seed=1))
    assert main(["compare", str(a), str(a)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "need at least two different runs, got one" in error
    assert main(["compare", "--base", str(a), "--head", str(a)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "the same run is on both sides (--base and --head)" in error
    assert main(["compare", "--base", str(a), str(a), "--head", str(b), str(b)]) == 0
    assert capsys.readouterr().err.count("a run counts once") == 2


def test_calibrate_refuses_one_run_given_as_several_processes(tmp_path, capsys):
    from diffperf.cli import main

    a = hd.write(tmp_path / "a.json", hd.standard_run())
    assert main(["calibrate", "--from-runs", *[str(a)] * 5, "--baselines", str(tmp_path / "baselines")]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "each run must come from a process of its own" in error
    assert error.endswith("nothing recorded\n") and not (tmp_path / "baselines" / "tiny").exists()


def planted(document: dict, slowdowns: dict) -> dict:
    """``document`` as a run made with ``--perf-plant-slowdown`` writes it."""
    document["machine_info"]["diffperf"]["planted_slowdowns"] = slowdowns
    return document


def test_runs_with_a_planted_slowdown_are_named_in_compare_and_trend(tmp_path, capsys):
    from diffperf.cli import main

    a = hd.write(tmp_path / "a.json", hd.standard_run())
    b = hd.write(tmp_path / "b.json", planted(hd.standard_run(seed=1), {"distilled": 0.5}))
    assert load_run(b).planted == Plants.of(slowdown={"distilled": 0.5}) and not load_run(a).planted
    warning = "b.json was run with --perf-plant-slowdown distilled=0.5: those variants were slowed on purpose"
    main(["compare", str(a), str(b)])
    assert capsys.readouterr().err.count(warning) == 1
    assert main(["trend", str(a), str(b)]) == 0
    assert capsys.readouterr().err.count(warning) == 1


def test_a_run_records_its_planted_slowdown_where_the_saved_run_reads_it():
    from diffperf.models.builtin import builtin_registry
    from diffperf.options import PerfOptions
    from diffperf.session import PerfSession

    session = PerfSession(PerfOptions(profile="tiny", device="cpu", plants=Plants.of(slowdown={"distilled": 0.5})),
                          builtin_registry())
    document = hd.standard_run()
    document["machine_info"]["diffperf"] = session.describe()  # what pytest_benchmark_update_machine_info writes
    assert run_from_dict(document).planted == Plants.of(slowdown={"distilled": 0.5})


def test_a_run_with_planted_memory_says_so_and_is_never_calibrated_from(tmp_path):
    from diffperf.history.calibrate import CalibrationError, calibrate_host
    from diffperf.models.builtin import builtin_registry
    from diffperf.options import PerfOptions
    from diffperf.session import PerfSession

    session = PerfSession(PerfOptions(profile="tiny", device="cpu", plants=Plants.of(memory={"*": 0.06})),
                          builtin_registry())
    document = hd.standard_run()
    document["machine_info"]["diffperf"] = session.describe()
    run = run_from_dict(document, source="m.json")
    assert run.planted == Plants.of(memory={"*": 0.06})
    assert run.planted.text() == "--perf-plant-memory *=0.06: those variants were made to hold more memory on purpose"
    with pytest.raises(CalibrationError, match=r"^m\.json was run with --perf-plant-memory \*=0\.06: .*; calibrate "
                                               r"from runs made without it$"):
        calibrate_host([run] * 5)
