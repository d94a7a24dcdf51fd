"""The latency suite in fresh processes, one after another: what calibration and A/B comparisons measure.

pyperf runs every benchmark in 20 worker processes by default, asv in 2: a process's allocator
history, kernel choices and thread placement are part of what it measures, so a figure that the
next process must honour has to come from several. Each worker here is one whole
``python -m pytest SUITE::test_latency`` writing pytest-benchmark JSON with its raw rounds, where SUITE is
the test file that imports diffperf's latency case (:func:`find_latency_suite`).
"""

from __future__ import annotations

import ast
import datetime
import fnmatch
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

SUITE_DIRECTORY = "perf"
"""Where a checkout's suite is looked for unless ``--suite`` names it."""
LATENCY_CASE = "test_latency"
"""The name the latency case is collected under (``from diffperf.suite import test_latency``)."""
# pytest's defaults: the test files it collects (python_files) and the directories it does not enter (norecursedirs).
TEST_FILES = ("test_*.py", "*_test.py")
SKIPPED_DIRECTORIES = ("*.egg", ".*", "_darcs", "build", "CVS", "dist", "node_modules", "venv", "{arch}",
                       "__pycache__")
# Kept from the workers: with it, each would append its own gate section to the CI job's summary.
WITHHELD_ENVIRONMENT = ("GITHUB_STEP_SUMMARY",)


class WorkerFailed(RuntimeError):
    """A worker process failed; the message names its log."""


@dataclass(frozen=True)
class Worker:
    """How to start one measuring process: which Python, in which checkout, with which pytest arguments."""

    python: str = sys.executable
    directory: str = "."
    suite: str | None = None  # the latency suite's test file, relative to directory; None: find_latency_suite's
    pytest_args: tuple[str, ...] = ()
    environment: dict = field(default_factory=dict)
    cases: tuple[str, ...] = ()  # case ids (VARIANT-SCENARIO) to run, as node ids of the suite; empty: every case

    def suite_file(self) -> str:
        """The latency suite's test file, relative to the checkout (a one-line ValueError when there is none)."""
        return self.suite if self.suite is not None else find_latency_suite(self.directory)

    def check(self) -> None:
        """One-line ValueError when the suite or the interpreter is not there."""
        suite = self.suite_file()
        if not (Path(self.directory) / suite).is_file():
            raise ValueError(f"no latency suite at {Path(self.directory) / suite}: run from the project's "
                             "root or name it with --suite PATH")
        if not Path(self.python).is_file() and not _on_path(self.python):
            raise ValueError(f"no Python interpreter at {self.python}")

    def command(self, json_path: Path) -> list[str]:
        # The latency cases only: the suite's file may hold the image checks too (docs/extending.md).
        # --perf-no-gate: a worker measures; judging is the caller's job (a failed exit is then a real failure).
        case = f"{self.suite_file()}::{LATENCY_CASE}"
        targets = [f"{case}[{name}]" for name in self.cases] or [case]
        return [self.python, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", "--perf-no-gate",
                f"--benchmark-json={json_path}", *self.pytest_args]

    def run(self, json_path: Path) -> Path:
        """Run one process; its output goes to ``<json_path>.log``. Returns the JSON path."""
        json_path = Path(json_path).resolve()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        log = json_path.with_suffix(".log")
        inherited = {name: value for name, value in os.environ.items() if name not in WITHHELD_ENVIRONMENT}
        with log.open("w") as stream:
            result = subprocess.run(self.command(json_path), cwd=self.directory, stdout=stream,
                                    stderr=subprocess.STDOUT, env={**inherited, **self.environment})
        if result.returncode != 0 or not json_path.is_file():
            raise WorkerFailed(f"worker process exited with status {result.returncode}: see {log}")
        return json_path


def find_latency_suite(directory: str | os.PathLike = ".", suite: str | None = None) -> str:
    """The test file of a checkout's latency suite, found as pytest would collect it, relative to ``directory``.

    ``suite`` is what ``--suite`` names, relative to ``directory``: the suite's test file, or a directory to
    search (default ``perf/``). A directory is searched as pytest collects it (its test files, not its hidden,
    build or virtual-environment directories) for the one file that binds ``test_latency``: diffperf's, as
    ``perf/test_latency.py`` and docs/extending.md's ``perf/test_diffperf.py`` import it. A one-line ValueError
    when there is no such file, or several.
    """
    given = Path(suite if suite is not None else SUITE_DIRECTORY)
    where = Path(directory) / given
    if where.is_file():
        if not _binds_latency_case(where):
            raise ValueError(f"--suite {suite}: {where} does not import {LATENCY_CASE} "
                             f"(`from diffperf.suite import {LATENCY_CASE}`, docs/extending.md)")
        return str(given)
    if not where.is_dir():
        if suite is not None:
            raise ValueError(f"--suite {suite}: no such file or directory in {directory}")
        raise ValueError(f"no latency suite: {where} is not a directory: run from your project's root (the directory "
                         f"holding {SUITE_DIRECTORY}/) or name the suite with --suite PATH")
    found = [str(given / path.relative_to(where)) for path in _test_files(where) if _binds_latency_case(path)]
    if not found:
        raise ValueError(f"no latency suite under {where}: no test file there imports {LATENCY_CASE} "
                         f"(`from diffperf.suite import {LATENCY_CASE}`, docs/extending.md); name the suite with "
                         "--suite PATH")
    if len(found) > 1:
        raise ValueError(f"several latency suites under {where} ({', '.join(found)}): name one with --suite PATH")
    return found[0]


def reaches_latency_suite(paths: list[str]) -> bool:
    """Whether pytest run on ``paths`` (its arguments: files, directories, ``file::node`` ids) collects a latency
    suite: a test file that binds ``test_latency`` (what :func:`find_latency_suite` looks for)."""
    for argument in paths:
        path = Path(argument.split("::", 1)[0])
        if path.is_file() and _binds_latency_case(path):
            return True
        if path.is_dir() and any(_binds_latency_case(found) for found in _test_files(path)):
            return True
    return False


def _test_files(directory: Path) -> list[Path]:
    """The files pytest collects under ``directory`` by default, sorted."""
    files = []
    for parent, directories, names in os.walk(directory):
        directories[:] = [name for name in directories
                          if not any(fnmatch.fnmatch(name, pattern) for pattern in SKIPPED_DIRECTORIES)]
        files += [Path(parent) / name for name in names
                  if any(fnmatch.fnmatch(name, pattern) for pattern in TEST_FILES)]
    return sorted(files)


def _binds_latency_case(path: Path) -> bool:
    """Whether the module at ``path`` binds ``test_latency`` at its top level (imports it, or defines one)."""
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except (OSError, SyntaxError, UnicodeDecodeError, ValueError):
        return False  # pytest cannot collect it either; its own run says why
    for node in tree.body:
        if isinstance(node, ast.ImportFrom):
            star = node.module == "diffperf.suite" and any(alias.name == "*" for alias in node.names)
            if star or any((alias.asname or alias.name) == LATENCY_CASE for alias in node.names):
                return True
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == LATENCY_CASE:
            return True
    return False


def worker_pytest_args(extra, profile: str | None = None, baselines: str | None = None) -> list[str]:
    """Every worker's pytest arguments: ``extra`` (the command's arguments after ``--``, that separator dropped),
    then ``--perf-profile`` and ``--perf-baselines`` when given (the latter made absolute: each worker runs in its
    own checkout)."""
    arguments = list(extra or [])
    if arguments[:1] == ["--"]:
        arguments = arguments[1:]
    if profile:
        arguments += ["--perf-profile", profile]
    if baselines:
        arguments += ["--perf-baselines", os.path.abspath(baselines)]
    return arguments


def default_out_dir(out: str | None, what: str) -> Path:
    """Where the workers' runs go: ``out`` when given, else ``perf-output/<what>/<date-time>``."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path(out) if out else Path("perf-output") / what / stamp


def run_alternating(workers: dict[str, Worker], processes: int, out_dir: Path, progress=None) -> dict[str, list[Path]]:
    """``processes`` runs of each worker, alternating between them (A B A B ...), one at a time.

    Alternating puts both sides through the same drift of the machine, as asv continuous does.
    ``progress(label, index, path)`` is called after each run.
    """
    for worker in workers.values():
        worker.check()
    runs: dict[str, list[Path]] = {label: [] for label in workers}
    for index in range(processes):
        for label, worker in workers.items():
            path = worker.run(Path(out_dir) / f"{label}-{index:02d}.json")
            runs[label].append(path)
            if progress is not None:
                progress(label, index, path)
    return runs


def _on_path(name: str) -> bool:
    from shutil import which

    return which(name) is not None
