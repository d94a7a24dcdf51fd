"""Fresh worker processes (calibration and A/B), with a stand-in suite that needs no models."""

import json
import re
from pathlib import Path

import pytest

from diffperf import cli
from diffperf.measure import workers
from diffperf.measure.workers import Worker, WorkerFailed, default_out_dir, run_alternating, worker_pytest_args

SUITE = '''
import time


def test_latency(benchmark):
    benchmark.extra_info.update({"variant": "sleep", "scenario": "short"})
    benchmark.pedantic(time.sleep, args=(SLEEP,), rounds=6, iterations=1)
'''


def checkout(tmp_path, name, sleep=0.002, fail=False):
    directory = tmp_path / name
    (directory / "perf").mkdir(parents=True)
    body = SUITE.replace("SLEEP", "None" if fail else str(sleep))  # time.sleep(None): a TypeError
    (directory / "perf" / "test_latency.py").write_text(body)
    return directory


def test_workers_alternate_and_each_writes_its_json(tmp_path):
    base, head = checkout(tmp_path, "base"), checkout(tmp_path, "head")
    order = []
    runs = run_alternating({"base": Worker(directory=str(base)), "head": Worker(directory=str(head))}, 2,
                           tmp_path / "out", progress=lambda label, index, path: order.append((label, index)))
    assert order == [("base", 0), ("head", 0), ("base", 1), ("head", 1)]
    for paths in runs.values():
        assert len(paths) == 2
        for path in paths:
            assert len(json.loads(path.read_text())["benchmarks"][0]["stats"]["data"]) == 6


def test_a_failing_worker_stops_everything_and_names_its_log(tmp_path):
    broken = checkout(tmp_path, "broken", fail=True)
    with pytest.raises(WorkerFailed, match=r"exited with status 1: see .*base-00\.log"):
        run_alternating({"base": Worker(directory=str(broken))}, 3, tmp_path / "out")
    assert not (tmp_path / "out" / "base-01.json").exists()


def test_a_missing_suite_or_python_is_one_line(tmp_path):
    with pytest.raises(ValueError, match="no latency suite: .* is not a directory"):
        Worker(directory=str(tmp_path)).check()
    with pytest.raises(ValueError, match="no latency suite at .*gone.py: run from the project's root or name it"):
        Worker(directory=str(tmp_path), suite="gone.py").check()
    with pytest.raises(ValueError, match="no Python interpreter at /nope/python"):
        Worker(python="/nope/python", directory=str(checkout(tmp_path, "x"))).check()


def test_ab_compares_the_two_sides_between_processes(tmp_path, capsys):
    base, head = checkout(tmp_path, "base", sleep=0.002), checkout(tmp_path, "head", sleep=0.02)
    code = cli.main(["ab", "--base-dir", str(base), "--head-dir", str(head), "--processes", "3",
                     "--out", str(tmp_path / "ab"), "--summary", str(tmp_path / "ab.md"), "--fail-on-regression"])
    out = capsys.readouterr().out
    assert code == 1, out  # ten times the sleep: slower, between processes
    assert "REGRESSION" in out and "sleep/short" in out
    assert (tmp_path / "ab.md").read_text().startswith("## diffperf A/B: base vs head, same machine")


def test_calibrate_refuses_too_few_processes_and_records_nothing(tmp_path, capsys):
    code = cli.main(["calibrate", "--processes", "2", "--out", str(tmp_path / "runs"),
                     "--baselines", str(tmp_path / "baselines")])
    assert code == 2
    assert "at least 5 processes" in capsys.readouterr().err
    assert not (tmp_path / "baselines").exists()


def test_workers_do_not_inherit_the_job_summary(tmp_path, monkeypatch):
    """Each worker would append its own gate section to the CI job's summary; the caller writes the one there is."""
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "step-summary.md"))
    directory = checkout(tmp_path, "x")
    (directory / "perf" / "test_latency.py").write_text(
        "import os\n\n\ndef test_latency(benchmark):\n"
        "    benchmark.extra_info['step_summary'] = os.environ.get('GITHUB_STEP_SUMMARY')\n"
        "    benchmark.pedantic(lambda: None, rounds=1, iterations=1)\n")
    path = Worker(directory=str(directory)).run(tmp_path / "out" / "run.json")
    assert json.loads(path.read_text())["benchmarks"][0]["extra_info"]["step_summary"] is None
    assert not (tmp_path / "step-summary.md").exists()


def test_worker_pytest_args_pass_on_the_profile_and_absolute_baselines(tmp_path, monkeypatch):
    """--baselines absolute: each worker runs in its own checkout."""
    monkeypatch.chdir(tmp_path)
    assert worker_pytest_args(["--", "-k", "x"], "tiny", "b") == ["-k", "x", "--perf-profile", "tiny",
                                                                   "--perf-baselines", str(tmp_path / "b")]
    assert worker_pytest_args(None) == [] and worker_pytest_args([], None, None) == []
    assert worker_pytest_args(["-x", "--"]) == ["-x", "--"]  # only the separator in front is dropped
    assert worker_pytest_args(["-x"], baselines=str(tmp_path / "abs")) == ["-x", "--perf-baselines",
                                                                           str(tmp_path / "abs")]


def test_default_out_dir_is_the_given_one_or_a_dated_one_under_perf_output():
    assert default_out_dir("runs/here", "ab") == Path("runs/here")
    dated = default_out_dir(None, "calibration")
    assert dated.parent == Path("perf-output") / "calibration"
    assert re.fullmatch(r"\d{8}-\d{6}", dated.name)


@pytest.mark.parametrize("command", ["calibrate", "ab"])
def test_workers_get_the_commands_profile_and_baselines(tmp_path, monkeypatch, command):
    """The commands hand their --profile, --baselines (absolute) and the arguments after -- to every worker."""
    monkeypatch.chdir(checkout(tmp_path, "x"))
    given = []

    def measure(measured, processes, out, progress=None):  # stands in for the processes
        given.extend(worker.pytest_args for worker in measured.values())
        raise WorkerFailed("stopped here")

    monkeypatch.setattr(workers, "run_alternating", measure)
    assert cli.main([command, "--profile", "tiny", "--baselines", "b", "--out", "out", "--", "-k", "x"]) == 2
    baselines = str(tmp_path / "x" / "b")
    assert given and set(given) == {("-k", "x", "--perf-profile", "tiny", "--perf-baselines", baselines)}


@pytest.mark.parametrize("processes", ["0", "1"])
def test_ab_refuses_fewer_than_two_processes_per_side(tmp_path, capsys, processes):
    base, head = checkout(tmp_path, "base"), checkout(tmp_path, "head")
    code = cli.main(["ab", "--base-dir", str(base), "--head-dir", str(head), "--processes", processes,
                     "--out", str(tmp_path / "ab")])
    assert code == 2
    assert capsys.readouterr().err == (
        f"diffperf ab: --processes {processes}: an A/B comparison needs at least 2 processes per side (one per side "
        "cannot separate a change from run-to-run variation); nothing measured\n")
    assert not (tmp_path / "ab").exists()


def test_ab_refuses_paths_it_cannot_write_before_measuring(tmp_path, capsys):
    base, head = checkout(tmp_path, "base"), checkout(tmp_path, "head")
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    code = cli.main(["ab", "--base-dir", str(base), "--head-dir", str(head), "--out", str(tmp_path / "ab"),
                     "--summary", str(blocker / "ab.md")])
    assert code == 2
    assert capsys.readouterr().err == (f"diffperf ab: --summary {blocker / 'ab.md'}: {blocker} is a file, so the "
                                       "directory cannot be created\n")
    assert not (tmp_path / "ab").exists()


def test_a_worker_runs_the_cases_a_budget_chose_as_node_ids(tmp_path):
    directory = str(checkout(tmp_path, "x"))
    worker = Worker(directory=directory, cases=("baseline-astronaut", "distilled-vase"))
    command = worker.command(tmp_path / "run.json")
    assert "perf/test_latency.py::test_latency[baseline-astronaut]" in command
    assert "perf/test_latency.py::test_latency[distilled-vase]" in command
    assert "perf/test_latency.py::test_latency" not in command
    assert Worker(directory=directory).command(tmp_path / "run.json")[3] == "perf/test_latency.py::test_latency"


# docs/extending.md's layout: a repository of one's own whose perf/test_diffperf.py imports diffperf's test functions.
DOCUMENTED_SUITE = "from diffperf.suite import test_latency, test_similarity  # noqa: F401\n"


def extending_checkout(tmp_path):
    (tmp_path / "perf").mkdir()
    (tmp_path / "perf" / "conftest.py").write_text("")
    (tmp_path / "perf" / "test_diffperf.py").write_text(DOCUMENTED_SUITE)
    return tmp_path


def targets_of(monkeypatch, arguments) -> tuple[int, set]:
    """The exit status of ``diffperf ARGUMENTS`` and what its workers would run, each worker checked first."""
    targets = set()

    def measure(measured, processes, out, progress=None):  # stands in for the processes
        for worker in measured.values():
            worker.check()
            targets.update(argument for argument in worker.command(Path("run.json")) if "::" in argument)
        raise WorkerFailed("stopped here")

    monkeypatch.setattr(workers, "run_alternating", measure)
    return cli.main(arguments), targets


@pytest.mark.parametrize("command", ["calibrate", "ab"])
def test_the_commands_find_the_suite_that_imports_the_latency_case(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(extending_checkout(tmp_path))
    code, targets = targets_of(monkeypatch, [command, "--out", "out", "--baselines", "b"])
    assert code == 2 and capsys.readouterr().err.endswith(": stopped here\n" if command == "ab" else
                                                          ": stopped here; nothing recorded\n")
    assert targets == {"perf/test_diffperf.py::test_latency"}  # the latency cases only, not the image checks


@pytest.mark.parametrize("command", ["calibrate", "ab"])
def test_suite_names_the_suite_a_file_or_a_directory_to_search(tmp_path, monkeypatch, capsys, command):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bench" / "sd").mkdir(parents=True)
    (tmp_path / "bench" / "sd" / "test_speed.py").write_text(DOCUMENTED_SUITE)
    for suite in ("bench", "bench/sd/test_speed.py"):
        code, targets = targets_of(monkeypatch, [command, "--suite", suite, "--out", "out", "--baselines", "b"])
        assert code == 2 and "stopped here" in capsys.readouterr().err
        assert targets == {"bench/sd/test_speed.py::test_latency"}


def test_find_latency_suite_looks_as_pytest_collects(tmp_path):
    checkout = extending_checkout(tmp_path)
    (checkout / "perf" / "helpers.py").write_text(DOCUMENTED_SUITE)  # not a test file: pytest does not collect it
    (checkout / "perf" / ".venv").mkdir()
    (checkout / "perf" / ".venv" / "test_hidden.py").write_text(DOCUMENTED_SUITE)  # nor looks in hidden directories
    (checkout / "perf" / "test_other.py").write_text("def test_other():\n    pass\n")
    assert workers.find_latency_suite(checkout) == "perf/test_diffperf.py"
    assert Worker(directory=str(checkout)).command(tmp_path / "run.json")[3] == "perf/test_diffperf.py::test_latency"


def test_no_suite_or_an_ambiguous_one_is_one_line_saying_what_to_do(tmp_path, monkeypatch, capsys):
    with pytest.raises(ValueError) as error:
        workers.find_latency_suite(tmp_path)
    assert str(error.value) == (f"no latency suite: {tmp_path / 'perf'} is not a directory: run from your project's "
                                "root (the directory holding perf/) or name the suite with --suite PATH")
    (tmp_path / "perf").mkdir()
    (tmp_path / "perf" / "test_other.py").write_text("def test_other():\n    pass\n")
    with pytest.raises(ValueError) as error:
        workers.find_latency_suite(tmp_path)
    assert str(error.value) == (f"no latency suite under {tmp_path / 'perf'}: no test file there imports test_latency "
                                "(`from diffperf.suite import test_latency`, docs/extending.md); name the suite with "
                                "--suite PATH")
    with pytest.raises(ValueError) as error:
        workers.find_latency_suite(tmp_path, "perf/test_other.py")
    assert str(error.value) == (f"--suite perf/test_other.py: {tmp_path / 'perf' / 'test_other.py'} does not import "
                                "test_latency (`from diffperf.suite import test_latency`, docs/extending.md)")
    for name in ("test_a.py", "test_b.py"):
        (tmp_path / "perf" / name).write_text(DOCUMENTED_SUITE)
    with pytest.raises(ValueError) as error:
        workers.find_latency_suite(tmp_path)
    assert str(error.value) == (f"several latency suites under {tmp_path / 'perf'} (perf/test_a.py, perf/test_b.py): "
                                "name one with --suite PATH")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["calibrate", "--suite", "nowhere", "--out", "out", "--baselines", "b"]) == 2
    assert capsys.readouterr().err == ("diffperf calibrate: --suite nowhere: no such file or directory in .; "
                                       "nothing recorded\n")
