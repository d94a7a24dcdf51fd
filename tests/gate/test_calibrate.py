"""Calibration across processes, and portable bands across hosts, from synthetic saved runs."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from diffperf.history import calibrate
from diffperf.history.calibrate import CalibrationError, calibrate_host, host_record, portable_bands
from diffperf.history.runs import run_from_dict
from diffperf.measure.host import Host

HOST = Host("cpu", "AMD EPYC", "2t", {"arch": "x86_64", "isa": ["avx512f"], "torch": "2.13.0+cpu"})
AVX2 = Host("cpu", "AMD EPYC", "2t", {"arch": "x86_64", "isa": ["avx512f"], "torch": "2.13.0+cpu",
                                      "env_ATEN_CPU_CAPABILITY": "avx2"})


def run_document(host: Host, speedups: dict, seed: int, rounds: int = 12, noise: float = 0.01) -> dict:
    """One process's pytest-benchmark JSON: a paired case per ``variant/scenario -> true speed-up``."""
    rng = np.random.default_rng(seed)
    benchmarks = []
    for case, speedup in speedups.items():
        variant, scenario = case.split("/")
        reference = 0.2 * np.exp(rng.normal(0, noise, rounds))
        data = reference / speedup * np.exp(rng.normal(0, noise, rounds))
        benchmarks.append({
            "name": f"test_latency[{variant}-{scenario}]", "group": scenario,
            "stats": {"median": float(np.median(data)), "data": list(data), "rounds": rounds},
            "extra_info": {"variant": variant, "scenario": scenario, "reference": "baseline",
                           "reference_rounds": list(reference), "peak_memory": 50, "reference_peak_memory": 100},
        })
    info = {"profile": "tiny", "device_type": "cpu", "rounds": rounds, **host.describe()}
    return {"benchmarks": benchmarks, "machine_info": {"diffperf": info}, "datetime": "2026-11-25T10:00:00"}


def runs(host=HOST, processes=6, offsets=None, speedups=None):
    speedups = speedups or {"distilled/astronaut": 1.5, "bf16/vase": 1.1}
    offsets = offsets or [1.0] * processes
    return [run_from_dict(run_document(host, {case: value * offsets[i] for case, value in speedups.items()}, seed=i),
                          source=f"run-{i}.json") for i in range(processes)]


def saved_runs(directory, host=HOST, speedups=None, processes=5) -> list[str]:
    """``processes`` saved runs of ``host`` in ``directory``, as ``diffperf calibrate --from-runs`` reads them."""
    directory.mkdir(parents=True, exist_ok=True)
    files = []
    for index in range(processes):
        path = directory / f"run-{index}.json"
        path.write_text(json.dumps(run_document(host, speedups or {"distilled/astronaut": 1.5}, seed=index)))
        files.append(str(path))
    return files


def test_calibration_measures_the_spread_between_processes():
    offsets = [1.0, 1.03, 0.97, 1.02, 0.98, 1.0]
    calibration = calibrate_host(runs(offsets=offsets))
    assert (calibration.key, calibration.processes, calibration.profile) == (HOST.key, 6, "tiny")
    case = calibration.cases["distilled/astronaut"]
    assert case.spread.expected == pytest.approx(1.5, rel=0.01)
    assert case.spread.run_sd == pytest.approx(np.std(np.log(case.process_medians), ddof=1), rel=1e-3)
    assert 0.015 < case.spread.between_sd < case.spread.run_sd  # the planted 2.4% offsets, less within-noise
    assert case.memory_ratio == 0.5


def test_calibration_pools_the_hosts_spread_over_its_ratios():
    offsets = [1.0, 1.03, 0.97, 1.02, 0.98, 1.0]
    calibration = calibrate_host(runs(offsets=offsets))
    spreads = [case.spread for case in calibration.cases.values()]
    pooled_run = math.sqrt(np.mean([spread.run_sd**2 for spread in spreads]))
    pooled_between = math.sqrt(np.mean([spread.between_sd**2 for spread in spreads]))
    assert all(spread.host_run_sd == pytest.approx(pooled_run) for spread in spreads)
    assert all(spread.host_between_sd == pytest.approx(pooled_between) for spread in spreads)
    _, speedups, _ = host_record(calibration, "diffperf calibrate")
    assert speedups["bf16/vase"]["host_run_sd"] == pytest.approx(pooled_run, abs=1e-5)


def test_host_record_stores_what_the_gate_needs():
    header, speedups, memory = host_record(calibrate_host(runs()), "diffperf calibrate --processes 6")
    assert header["fingerprint"] == HOST.fingerprint and header["calibration"]["processes"] == 6
    entry = speedups["distilled/astronaut"]
    assert set(entry) >= {"reference", "expected", "tolerance", "run_sd", "between_sd", "processes", "process_medians"}
    assert entry["tolerance"] == calibrate.HOST_TOLERANCE and len(entry["process_medians"]) == 6
    assert memory["distilled/astronaut"] == {"reference": "baseline", "expected": 0.5,
                                             "tolerance": calibrate.MEMORY_TOLERANCE}


def test_too_few_processes_or_mixed_hosts_are_refused():
    with pytest.raises(CalibrationError, match="at least 5 processes"):
        calibrate_host(runs(processes=4))
    with pytest.raises(CalibrationError, match="2 hosts or profiles"):
        calibrate_host(runs(processes=3) + runs(host=AVX2, processes=3))


def test_portable_bands_cover_the_hosts_measured():
    here = calibrate_host(runs(speedups={"distilled/astronaut": 1.5, "bf16/vase": 1.1}))
    other = calibrate_host(runs(host=AVX2, speedups={"distilled/astronaut": 1.35, "bf16/vase": 1.1}))
    key, header, speedups, memory = portable_bands([here, other], "diffperf calibrate --portable")
    assert key == HOST.portable_key and header["hosts"] == sorted([HOST.key, AVX2.key])
    distilled = speedups["distilled/astronaut"]
    distance = abs(math.log(here.cases["distilled/astronaut"].spread.expected / distilled["expected"]))
    assert distilled["tolerance"] >= calibrate.PORTABLE_FACTOR * (math.exp(distance) - 1)
    assert speedups["bf16/vase"]["tolerance"] == calibrate.PORTABLE_FLOOR  # the hosts agree: the floor
    assert memory["distilled/astronaut"] == {"reference": "baseline", "expected": 0.5,
                                             "tolerance": calibrate.PORTABLE_MEMORY_FLOOR}
    # One host of a class: its values, and the floor for the variation between hosts it cannot show.
    _, _, alone, _ = portable_bands([here], "x")
    assert {entry["tolerance"] for entry in alone.values()} == {calibrate.PORTABLE_FLOOR}


def test_portable_bands_stand_for_one_class_of_hosts():
    here = calibrate_host(runs())
    avx2 = Host("cpu", "AMD EPYC", "2t", {**HOST.fingerprint, "cpu_capability": "AVX2"})
    other = calibrate_host(runs(host=avx2))
    assert other.portable_key == "cpu-x86-64-avx2-2t" != here.portable_key
    with pytest.raises(CalibrationError, match="one class of hosts"):
        portable_bands([here, other], "x")


def test_calibrate_command_repairs_an_unreadable_file_without_losing_it(tmp_path, capsys):
    from diffperf import cli

    files = saved_runs(tmp_path / "runs")
    target = tmp_path / "baselines" / "tiny" / "speedups.json"
    target.parent.mkdir(parents=True)
    target.write_text("{truncated")
    assert cli.main(["calibrate", "--from-runs", *files, "--baselines", str(tmp_path / "baselines")]) == 0
    kept = list(target.parent.glob("speedups.json.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{truncated"  # nothing lost
    data = json.loads(target.read_text())
    assert data["hosts"][HOST.key]["speedups"]["distilled/astronaut"]["processes"] == 5
    assert data["hosts"][HOST.key]["calibrations"][-1]["command"].startswith("diffperf calibrate --from-runs ")
    assert "moved it to" in capsys.readouterr().err


def test_a_measuring_calibration_repairs_an_unreadable_file_as_from_runs_does(tmp_path, monkeypatch, capsys):
    """The processes measure with --perf-no-gate, which reads no speedups.json (test_outcome.py and
    test_gate_run.py), and with the command's --baselines; the file is then moved aside and recorded anew."""
    from diffperf import cli
    from diffperf.measure import workers

    files = saved_runs(tmp_path / "runs")
    baselines = tmp_path / "baselines"
    target = baselines / "tiny" / "speedups.json"
    target.parent.mkdir(parents=True)
    target.write_text("{truncated")
    commands = []

    def measure(measured, processes, out, progress=None):  # stands in for the processes
        (worker,) = measured.values()
        commands.append(worker.command(Path(out) / "run-00.json"))
        return {"run": [Path(path) for path in files]}

    monkeypatch.setattr(workers, "run_alternating", measure)
    code = cli.main(["calibrate", "--processes", "5", "--out", str(tmp_path / "out"), "--baselines", str(baselines)])
    assert code == 0, capsys.readouterr().err
    (command,) = commands
    assert "--perf-no-gate" in command
    assert command[command.index("--perf-baselines") + 1] == str(baselines)
    kept = list(target.parent.glob("speedups.json.unreadable-*"))
    assert len(kept) == 1 and kept[0].read_text() == "{truncated"
    assert json.loads(target.read_text())["hosts"][HOST.key]["speedups"]["distilled/astronaut"]["processes"] == 5


def test_calibrate_refuses_a_baselines_path_it_cannot_write_before_reading_anything(tmp_path, capsys):
    from diffperf import cli

    blocker = tmp_path / "blocker"
    blocker.write_text("")
    files = saved_runs(tmp_path / "runs")
    assert cli.main(["calibrate", "--from-runs", *files, "--baselines", str(blocker)]) == 2
    assert capsys.readouterr().err == f"diffperf calibrate: --baselines {blocker} is a file: give a directory; " \
                                      "nothing recorded\n"
    assert cli.main(["calibrate", "--from-runs", *files, "--baselines", str(blocker / "b")]) == 2
    assert capsys.readouterr().err == (f"diffperf calibrate: --baselines {blocker / 'b'}: {blocker} is a file, so the "
                                       "directory cannot be created; nothing recorded\n")


def test_recorded_host_records_read_back_as_calibrations(tmp_path):
    from diffperf.gate.expectations import record

    calibration = calibrate_host(runs(offsets=[1.0, 1.03, 0.97, 1.02, 0.98, 1.0]))
    header, speedups, memory = host_record(calibration, "diffperf calibrate")
    path = record(tmp_path, "tiny", "hosts", calibration.key, header, speedups, memory)
    hosts = json.loads(path.read_text())["hosts"]
    del hosts[calibration.key]["portable_key"]  # records written before it was stored: derived from the fingerprint
    (back,) = calibrate.recorded_calibrations(path, "tiny", hosts)
    assert (back.key, back.portable_key, back.processes) == (calibration.key, calibration.portable_key, 6)
    for name, case in calibration.cases.items():
        assert back.cases[name].spread.expected == pytest.approx(case.spread.expected, abs=1e-4)
        assert back.cases[name].spread.run_sd == pytest.approx(case.spread.run_sd, abs=1e-5)
        assert back.cases[name].memory_ratio == case.memory_ratio and back.cases[name].reference == "baseline"


def test_calibrate_portable_derives_bands_from_every_recorded_host_of_the_class(tmp_path):
    from diffperf import cli

    other = Host("cpu", "Intel Xeon", "2t", {**HOST.fingerprint, "isa": ["amx_bf16", "avx512f"]})
    assert other.portable_key == HOST.portable_key and other.key != HOST.key
    baselines = tmp_path / "baselines"
    for host, speedup in ((HOST, 1.5), (other, 1.2)):
        files = saved_runs(tmp_path / host.key, host, {"distilled/astronaut": speedup})
        assert cli.main(["calibrate", "--from-runs", *files, "--baselines", str(baselines), "--portable"]) == 0
    data = json.loads((baselines / "tiny" / "speedups.json").read_text())
    bands = data["portable"][HOST.portable_key]
    assert bands["hosts"] == sorted([HOST.key, other.key])  # the host recorded first is kept in the bands
    band = bands["speedups"]["distilled/astronaut"]
    assert sorted(band["host_values"]) == pytest.approx([1.2, 1.5], abs=0.01)
    low, high = band["expected"] * (1 - band["tolerance"]), band["expected"] * (1 + band["tolerance"])
    assert low < 1.2 and 1.5 < high  # both hosts' values inside the band


def test_calibrate_portable_with_an_unusable_host_record_records_nothing(tmp_path, capsys):
    from diffperf import cli

    files = saved_runs(tmp_path / "runs")
    target = tmp_path / "baselines" / "tiny" / "speedups.json"
    target.parent.mkdir(parents=True)
    broken = {"schema": 2, "profile": "tiny", "portable": {},
              "hosts": {"cpu-other-2t-00000000": {"speedups": {"bf16/vase": {"expected": "fast"}}}}}
    target.write_text(json.dumps(broken))
    assert cli.main(["calibrate", "--from-runs", *files, "--baselines", str(tmp_path / "baselines"),
                     "--portable"]) == 2
    assert json.loads(target.read_text()) == broken  # nothing written
    assert "lacks numeric fields; nothing recorded" in capsys.readouterr().err


def test_calibrate_refuses_runs_made_with_a_planted_slowdown(tmp_path, capsys):
    from diffperf import cli

    files = saved_runs(tmp_path / "runs")
    path = Path(files[2])
    document = json.loads(path.read_text())
    document["machine_info"]["diffperf"]["planted_slowdowns"] = {"distilled": 0.5}  # as such a run writes it
    path.write_text(json.dumps(document))
    baselines = tmp_path / "baselines"
    assert cli.main(["calibrate", "--from-runs", str(tmp_path / "runs"), "--baselines", str(baselines)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{files[2]} was run with --perf-plant-slowdown distilled=0.5" in error
    assert error.endswith("calibrate from runs made without it; nothing recorded\n")
    assert not (baselines / "tiny" / "speedups.json").exists()


def test_calibrate_refuses_runs_that_stopped_cases_at_the_early_look():
    stopped = run_document(HOST, {"distilled/astronaut": 1.5, "bf16/vase": 1.1}, seed=7)
    case = stopped["benchmarks"][1]  # bf16/vase settled after 10 of the run's 12 rounds
    case["stats"]["data"], case["stats"]["rounds"] = case["stats"]["data"][:10], 10
    case["extra_info"]["reference_rounds"] = case["extra_info"]["reference_rounds"][:11]
    mixed = runs()[:5] + [run_from_dict(stopped, source="run-early.json")]
    with pytest.raises(CalibrationError, match=r"^run-early.json stopped bf16/vase at the early look: .* --perf-min-rounds 12\)$"):
        calibrate_host(mixed)
    assert calibrate_host(runs()).processes == 6  # runs that gave every case its rounds


def test_calibrate_hosts_calibrates_each_host_of_one_profile():
    profile, calibrations = calibrate.calibrate_hosts(runs(processes=5) + runs(host=AVX2, processes=5))
    assert profile == "tiny"
    assert [(calibration.key, calibration.processes) for calibration in calibrations] == [(HOST.key, 5), (AVX2.key, 5)]
    with pytest.raises(CalibrationError, match="at least 5 processes"):
        calibrate.calibrate_hosts(runs(processes=5) + runs(host=AVX2, processes=4))
    with pytest.raises(CalibrationError, match="at least 3 processes"):
        calibrate.calibrate_hosts(runs(processes=2), min_processes=3)


def test_calibrate_hosts_refuses_runs_of_several_profiles():
    other = []
    for index in range(5):
        document = run_document(AVX2, {"distilled/astronaut": 1.5}, seed=index)
        document["machine_info"]["diffperf"]["profile"] = "full"
        other.append(run_from_dict(document, source=f"full-{index}.json"))
    with pytest.raises(CalibrationError, match=r"several profiles \(full, tiny\)"):
        calibrate.calibrate_hosts(runs(processes=5) + other)


def test_calibrate_and_record_writes_each_host_then_the_portable_bands(tmp_path):
    from diffperf.render.history_text import calibration_line

    shown, warnings = [], []
    written = calibrate.calibrate_and_record(runs(processes=5) + runs(host=AVX2, processes=5), tmp_path / "b",
                                             "diffperf calibrate x", portable=True, warn=warnings.append,
                                             progress=shown.append)
    path = tmp_path / "b" / "tiny" / "speedups.json"
    assert shown == written and warnings == []
    assert AVX2.portable_key == HOST.portable_key  # two hosts of one class: one set of bands from both
    assert [(entry.table, entry.key) for entry in written] == [
        ("hosts", HOST.key), ("hosts", AVX2.key), ("portable", HOST.portable_key)]
    assert all(entry.path == path for entry in written)
    data = json.loads(path.read_text())
    assert set(data["hosts"]) == {HOST.key, AVX2.key} and set(data["portable"]) == {HOST.portable_key}
    assert data["portable"][HOST.portable_key]["hosts"] == sorted([HOST.key, AVX2.key])
    assert data["hosts"][HOST.key]["calibrations"][-1]["command"] == "diffperf calibrate x"
    assert calibration_line(written[0]) == (f"recorded 2 speed-ups and 2 memory ratios of {HOST.key} (5 processes) "
                                            f"in {path}")
    assert calibration_line(written[2]) == (f"recorded portable bands {HOST.portable_key} for 2 speed-ups from "
                                            f"2 host(s) in {path}")
    # Without --portable: the host records alone, and no callbacks needed.
    again = calibrate.calibrate_and_record(runs(processes=5), tmp_path / "c", "x")
    assert [entry.table for entry in again] == ["hosts"]
    assert json.loads((tmp_path / "c" / "tiny" / "speedups.json").read_text())["portable"] == {}


def test_calibrate_and_record_moves_an_unreadable_file_aside_and_says_so(tmp_path):
    path = tmp_path / "tiny" / "speedups.json"
    path.parent.mkdir()
    path.write_text("{truncated")
    warnings = []
    (entry,) = calibrate.calibrate_and_record(runs(processes=5), tmp_path, "x", warn=warnings.append)
    (kept,) = path.parent.glob("speedups.json.unreadable-*")
    assert kept.read_text() == "{truncated" and entry.key in json.loads(path.read_text())["hosts"]
    assert len(warnings) == 1 and warnings[0].endswith(f": moved it to {kept} and started a new file")


def test_calibrate_refuses_to_keep_a_record_the_gate_could_not_read(tmp_path, capsys):
    from diffperf import cli
    from diffperf.gate import expectations

    files = saved_runs(tmp_path / "runs")  # distilled/astronaut only
    baselines = tmp_path / "baselines"
    target = baselines / "tiny" / "speedups.json"
    target.parent.mkdir(parents=True)
    nan = {"reference": "baseline", "expected": 1.1, "tolerance": 0.03, "run_sd": float("nan"), "between_sd": 0.01,
           "processes": 5}
    target.write_text(json.dumps({"schema": 2, "profile": "tiny", "portable": {},
                                  "hosts": {HOST.key: {"speedups": {"bf16/vase": nan}}}}))  # not measured again
    content = target.read_text()
    assert cli.main(["calibrate", "--from-runs", *files, "--baselines", str(baselines)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and f"{HOST.key} speed-up 'bf16/vase' has run_sd nan" in error
    assert error.endswith("calibrate again; nothing recorded\n") and target.read_text() == content
    # The same entry measured again is replaced: the file the gate reads afterwards.
    target.write_text(content.replace("bf16/vase", "distilled/astronaut"))
    assert cli.main(["calibrate", "--from-runs", *files, "--baselines", str(baselines)]) == 0
    assert expectations.lookup(baselines, "tiny", HOST).speedups["distilled/astronaut"].spread.processes == 5


def test_too_few_runs_of_one_host_among_several_name_each_host_and_its_runs():
    with pytest.raises(CalibrationError) as caught:
        calibrate.calibrate_hosts(runs(processes=5) + runs(host=AVX2, processes=1))
    assert str(caught.value) == (f"the runs come from 2 hosts ({HOST.key}: 5 runs, {AVX2.key}: 1 run): a "
                                 f"calibration needs at least 5 processes of each host; give more runs of {AVX2.key}, "
                                 "or calibrate without them")
