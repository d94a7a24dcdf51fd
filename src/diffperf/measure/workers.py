"""The latency suite in fresh processes, one after another: what calibration and A/B comparisons measure.

pyperf runs every benchmark in 20 worker processes by default, asv in 2: a process's allocator
history, kernel choices and thread placement are part of what it measures, so a figure that the
next process must honour has to come from several. Each worker here is one whole
``python -m pytest perf/test_latency.py`` writing pytest-benchmark JSON with its raw rounds.
"""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_SUITE = "perf/test_latency.py"
# Kept from the workers: with it, each would append its own gate section to the CI job's summary.
WITHHELD_ENVIRONMENT = ("GITHUB_STEP_SUMMARY",)


class WorkerFailed(RuntimeError):
    """A worker process failed; the message names its log."""


@dataclass(frozen=True)
class Worker:
    """How to start one measuring process: which Python, in which checkout, with which pytest arguments."""

    python: str = sys.executable
    directory: str = "."
    suite: str = DEFAULT_SUITE
    pytest_args: tuple[str, ...] = ()
    environment: dict = field(default_factory=dict)
    cases: tuple[str, ...] = ()  # case ids (VARIANT-SCENARIO) to run, as node ids of the suite; empty: every case

    def check(self) -> None:
        """One-line ValueError when the suite or the interpreter is not there."""
        if not (Path(self.directory) / self.suite).is_file():
            raise ValueError(f"no latency suite at {Path(self.directory) / self.suite}: run from the project's "
                             "root or pass its directory")
        if not Path(self.python).is_file() and not _on_path(self.python):
            raise ValueError(f"no Python interpreter at {self.python}")

    def command(self, json_path: Path) -> list[str]:
        # --perf-no-gate: a worker measures; judging is the caller's job (a failed exit is then a real failure).
        targets = [f"{self.suite}::test_latency[{case}]" for case in self.cases] or [self.suite]
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
