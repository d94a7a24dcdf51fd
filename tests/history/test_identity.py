"""Runs know what they can be compared with (diffperf.history.identity): compare, trend and change points."""

from __future__ import annotations

import copy

import historydata as hd
import pytest

from diffperf.cli import NOTHING_TESTED, main
from diffperf.history import compare, identity
from diffperf.history.changepoints import case_change_points
from diffperf.history.compare import compare_runs, compare_sides
from diffperf.history.runs import HistoryError, run_from_dict
from diffperf.history.trend import build_trends
from diffperf.render.history_text import comparison_tables, identity_warnings, trend_warnings


def with_schema(document: dict, torch: str = "2.13.0+cpu", overrides: dict | None = None) -> dict:
    info = document["machine_info"]["diffperf"]
    info.update(schema=identity.SCHEMA, host_key="cpu-amd-epyc-2t-55e82777", torch=torch,
                workload_overrides=overrides)
    return document


def run(document: dict, label: str):
    return run_from_dict(document, source=label, label=label)


def test_a_run_reads_its_identity_and_a_file_without_a_schema_is_one_legacy_identity():
    saved = run(with_schema(hd.standard_run(seed=0), overrides={"steps": 1}), "a.json").identity
    assert (saved["schema"], saved["profile"], saved["host"], saved["torch"]) == (
        "1", "tiny", "cpu-amd-epyc-2t-55e82777", "2.13.0+cpu")
    assert saved["workload"] == '{"steps": 1}' and not saved.legacy
    legacy = run(hd.standard_run(seed=0), "old.json").identity
    assert legacy.legacy and legacy == run(hd.standard_run(seed=5), "older.json").identity
    assert legacy.differences(saved, identity.SETUP)[0] == ("schema", "legacy", "1")


def test_runs_of_another_setup_are_not_compared_and_the_field_is_named():
    plain = run(with_schema(hd.standard_run(seed=0)), "a.json")
    fewer_steps = run(with_schema(hd.standard_run(seed=1), overrides={"steps": 1}), "b.json")
    with pytest.raises(HistoryError, match=r"not comparable: a.json and b.json differ in workload"):
        compare_runs(plain, fewer_steps)
    with pytest.raises(HistoryError, match=r"differ in schema \(legacy vs 1\)"):
        compare_runs(run(hd.standard_run(seed=0), "old.json"), plain)
    warnings = identity_warnings([plain, fewer_steps, run(with_schema(hd.standard_run(seed=2)), "c.json")])
    assert warnings == ['not comparable (x) with a.json: b.json (workload the profile\'s own -> {"steps": 1}); '
                        "compared only among themselves"]


def test_runs_of_one_hardware_but_another_schema_say_that_the_schema_differs(tmp_path, capsys):
    old, new = run(hd.standard_run(seed=0), "old.json"), run(with_schema(hd.standard_run(seed=1)), "new.json")
    with pytest.raises(HistoryError, match=r"^not comparable: old.json and new.json differ in schema \(legacy vs 1\); "
                                           r"compare runs of one schema$"):
        compare.compare_many([old, new])
    files = [hd.write(tmp_path / "old.json", hd.standard_run(seed=0)),
             hd.write(tmp_path / "new.json", with_schema(hd.standard_run(seed=1)))]
    assert main(["compare", *map(str, files), "--baselines", str(tmp_path)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "differ in schema (legacy vs 1)" in error and "share a profile" not in error


def test_software_may_differ_between_the_sides_but_not_within_one():
    old = run(with_schema(hd.standard_run(seed=0)), "old.json")
    upgraded = run(with_schema(hd.standard_run(seed=1), torch="2.14.1+cpu"), "new.json")
    comparison = compare_runs(old, upgraded)
    assert comparison.software == [("torch", "2.13.0+cpu", "2.14.1+cpu")]
    notes = comparison_tables(comparison)[0].notes
    assert "the sides run other software (torch 2.13.0+cpu -> 2.14.1+cpu): every change includes it" in notes
    with pytest.raises(HistoryError, match="the base side's runs old.json and new.json differ in torch"):
        compare_sides([old, upgraded], [run(with_schema(hd.standard_run(seed=2)), "head.json")])


def test_a_case_whose_scenario_changed_is_marked_not_comparable(tmp_path, capsys):
    changed = hd.standard_run(seed=1)
    for bench in changed["benchmarks"]:
        if bench["extra_info"]["variant"] == "distilled":
            bench["extra_info"]["steps"] = 25
    comparison = compare_runs(run(hd.standard_run(seed=0), "a.json"), run(changed, "b.json"))
    distilled = {case.variant: case for case in comparison.cases}["distilled"]
    assert distilled.latency.status == compare.NOT_COMPARABLE and distilled.speedup is None
    assert distilled.latency.differs == (("steps", "5", "25"),) and not distilled.latency.tested
    assert "distilled/astronaut: not comparable (x): the scenario differs: steps 5 -> 25" in \
        comparison_tables(comparison)[0].notes
    old, new = hd.write(tmp_path / "a.json", hd.standard_run(seed=0)), hd.write(tmp_path / "b.json", changed)
    assert main(["compare", str(old), str(new), "--fail-on-regression", "--baselines", str(tmp_path)]) == NOTHING_TESTED


def test_change_points_restart_where_the_identity_changes():
    documents = hd.process_runs(20, seed=0)
    for index, document in enumerate(documents):
        with_schema(document, torch="2.13.0+cpu" if index < 10 else "2.14.1+cpu")
        if index >= 10:  # every time 30% longer from the upgrade on
            for bench in document["benchmarks"]:
                bench["stats"]["data"] = [value * 1.3 for value in bench["stats"]["data"]]
                bench["stats"]["median"] *= 1.3
    runs = [run(document, f"run{index:02d}.json") for index, document in enumerate(documents)]
    assert case_change_points(runs, ("baseline", "astronaut")) == []  # not one series across the upgrade
    same = [run(with_schema(copy.deepcopy(document), torch="2.13.0+cpu"), f"same{index:02d}.json")
            for index, document in enumerate(documents)]
    shifted = case_change_points(same, ("baseline", "astronaut"))
    assert [point.run.label for point in shifted] == ["same10.json"]  # within one identity the shift is found
    trends = build_trends(runs)
    assert len(trends.groups) == 1  # software changed: one chart, change points restart
    split = build_trends(runs + [run(with_schema(hd.standard_run(seed=9), overrides={"steps": 1}), "one-step.json")])
    assert sorted(key.setup for key in split.groups) == ['workload the profile\'s own', 'workload {"steps": 1}']
    warnings = trend_warnings(trends)
    assert any("from run10.json" in line and "torch 2.13.0+cpu -> 2.14.1+cpu" in line and "restart" in line
               for line in warnings)


def test_the_reports_history_holds_only_runs_of_the_same_setup():
    from diffperf.render.report import build_report

    current = run(with_schema(hd.standard_run(seed=0, when="2026-11-05T10:00:00+00:00")), "now.json")
    history = [run(with_schema(hd.standard_run(seed=index, when=f"2026-11-0{index}T10:00:00+00:00")), f"h{index}.json")
               for index in (1, 2)]
    history.append(run(with_schema(hd.standard_run(seed=3), overrides={"steps": 1}), "one-step.json"))
    page = build_report(current, history=history)
    assert "3 runs of" in page and "one-step.json" not in page
