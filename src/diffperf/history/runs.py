"""Saved runs: load pytest-benchmark JSON files (ours or plain ones) into run records.

A *run* is one file written by ``pytest --benchmark-json FILE`` or ``--benchmark-autosave``
(``.benchmarks/<machine_id>/NNNN_<name>.json``). Each benchmark becomes a :class:`Case` keyed by
``(variant, scenario)``: diffperf's latency cases carry both in ``extra_info``; for a plain
pytest-benchmark file the benchmark's name and group stand in for them.

Runs are only comparable on the same hardware with the same model profile, so every run gets a
:class:`MachineKey` and :func:`group_by_machine` keeps the others apart (pytest-benchmark's own
``machine_id`` holds no GPU information, so it cannot be used for this).

Bad input raises :class:`HistoryError` with a one-line message naming the file.
"""

from __future__ import annotations


import hashlib
import json
import math
import os
import re
import reprlib
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import Iterable, Mapping

from diffperf.history.identity import SETUP, Identity, run_identity
from diffperf.models.plants import Plants
from diffperf.stats.ratios import is_paired

__all__ = [
    "Case",
    "HistoryError",
    "MachineKey",
    "Run",
    "expand_paths",
    "group_by_machine",
    "load_run",
    "load_runs",
    "machine_key",
    "run_from_dict",
    "sort_by_time",
    "without",
]

SAVE_DATA_HINT = "save runs with --benchmark-json FILE or --benchmark-autosave --benchmark-save-data"
GIT_SHA = re.compile(r"[0-9a-f]{8,64}")  # only a full or long hex commit id is shortened
COUNTS = ("device_count", "threads", "rounds", "min_rounds", "warmup")  # machine_info["diffperf"]'s whole numbers


class HistoryError(ValueError):
    """Bad input: the message is one line and names the file."""


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, order=True)
class MachineKey:
    """What must match for two runs to be compared: model profile and hardware."""

    profile: str  # "tiny", "full", "hub" or "-" for plain pytest-benchmark files
    device: str  # the device's name: "NVIDIA H100 80GB HBM3", "AMD EPYC" (a plain file: the CPU brand)
    device_type: str | None = None  # "cpu" | "cuda"; None for a plain pytest-benchmark file
    count: int | None = None  # GPUs (more than one only)
    threads: int | None = None  # CPU threads
    system: tuple[str, ...] = ()  # a plain pytest-benchmark file: its OS, architecture and CPU count
    # What keeps runs of this profile and hardware apart from others (identity.SETUP fields that differ
    # among them, e.g. 'workload {"steps": 1}'); empty when nothing does.
    setup: str = ""

    @property
    def hardware(self) -> str:
        """The hardware in a few words: 'AMD EPYC (cpu, 2 threads)', '2x NVIDIA H100 80GB HBM3 (cuda)'."""
        if self.device_type is None:
            return f"{self.device} ({', '.join(self.system)})" if self.system else self.device
        name = f"{self.count}x {self.device}" if self.count else self.device
        details = [self.device_type] + ([f"{self.threads} threads"] if self.threads else [])
        return f"{name} ({', '.join(details)})"

    def __str__(self) -> str:
        profile = "no diffperf profile" if self.profile == "-" else f"profile {self.profile}"
        return f"{profile} on {self.hardware}" + (f", {self.setup}" if self.setup else "")


@dataclass(frozen=True)
class Case:
    """One benchmark of one run."""

    variant: str
    scenario: str  # "" when unknown (plain pytest-benchmark file without a group)
    name: str
    reference: str | None
    stats: Mapping
    data: tuple[float, ...] | None  # the variant's raw per-round seconds (stats.data)
    reference_rounds: tuple[float, ...] | None  # the reference's interleaved rounds
    extra_info: Mapping

    @property
    def key(self) -> tuple[str, str]:
        return (self.variant, self.scenario)

    @property
    def label(self) -> str:
        return f"{self.variant}/{self.scenario}" if self.scenario else self.variant

    @property
    def median(self) -> float:
        return float(self.stats["median"])

    @property
    def rounds(self) -> int:
        return int(self.stats.get("rounds") or (len(self.data) if self.data else 0))

    @property
    def has_raw(self) -> bool:
        return bool(self.data)

    @property
    def paired(self) -> bool:
        """Raw rounds of both variant and reference, interleaved (plain pairs or bracketed)."""
        return bool(self.data) and bool(self.reference_rounds) and is_paired(len(self.reference_rounds),
                                                                              len(self.data))

    @property
    def stages(self) -> dict[str, float] | None:
        stages = self.extra_info.get("stages")
        if isinstance(stages, Mapping) and all(_is_number(v) for v in stages.values()):
            return {str(k): float(v) for k, v in stages.items()}
        return None

    def number(self, key: str) -> float | None:
        """A numeric extra_info entry (peak_memory, reference_peak_memory, weight_bytes), else None."""
        value = self.extra_info.get(key)
        return float(value) if _is_number(value) else None


@dataclass(frozen=True)
class Run:
    """One saved pytest-benchmark run."""

    source: str  # file path (or "<name>" for a dict)
    label: str  # short name for tables
    when: datetime | None
    commit: str | None
    branch: str | None
    dirty: bool
    machine: MachineKey
    cases: tuple[Case, ...]
    gate: Mapping | None  # the top-level "diffperf" key written by the speed-up gate, if any
    machine_info: Mapping = field(repr=False, default_factory=dict)
    digest: str | None = field(repr=False, default=None)  # SHA-256 of its file: one run saved twice has one

    @cached_property  # read for every case and metric of a trend or comparison: computed once per run
    def identity(self) -> Identity:
        """What the run measured, for deciding what it can be compared with (diffperf.history.identity)."""
        return run_identity(self.machine_info)

    @property
    def by_key(self) -> dict[tuple[str, str], Case]:
        return {case.key: case for case in self.cases}

    @property
    def commit_label(self) -> str:
        """A hex commit id shortened to 7 characters ("+" for a dirty tree); any other id as it is."""
        if not self.commit:
            return "no commit"
        shown = self.commit[:7] if GIT_SHA.fullmatch(self.commit) else self.commit
        return shown + ("+" if self.dirty else "")

    @property
    def when_label(self) -> str:
        return self.when.strftime("%Y-%m-%d %H:%M") if self.when else "no date"

    @property
    def versions(self) -> dict[str, str]:
        info = self.machine_info.get("diffperf")
        if not isinstance(info, Mapping):
            return {}
        return {k: str(info[k]) for k in ("torch", "diffusers", "transformers") if info.get(k)}

    @property
    def planted(self) -> Plants:
        """What the run changed on purpose in what the gates measure, to show they catch it (empty: nothing; its
        ``text()`` says what)."""
        return Plants.from_record(self.machine_info.get("diffperf")).measured()

    @property
    def stopped_early(self) -> list[str]:
        """The paired cases that ended with fewer than the run's rounds (the early look, ``--perf-min-rounds``)."""
        info = self.machine_info.get("diffperf")
        rounds = info.get("rounds") if isinstance(info, Mapping) else None
        if not isinstance(rounds, int):
            return []
        return [case.label for case in self.cases if case.paired and case.rounds < rounds]

    def gate_rows(self, kind: str) -> list[Mapping]:
        """The gate's "speedups" or "memory" rows (empty when the file has no gate section)."""
        if not isinstance(self.gate, Mapping):
            return []
        rows = self.gate.get(kind)
        return [row for row in rows if isinstance(row, Mapping)] if isinstance(rows, list) else []


# --------------------------------------------------------------------------- loading


def load_run(path: str | os.PathLike) -> Run:
    """Read one pytest-benchmark JSON file; :class:`HistoryError` if it is not one."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise HistoryError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise HistoryError(f"{path}: cannot read: {getattr(error, 'strerror', None) or error}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise HistoryError(
            f"{path}: not a pytest-benchmark JSON file (invalid JSON: {error.msg} at line {error.lineno})"
        ) from None
    run = run_from_dict(data, source=str(path), label=path.name)
    return replace(run, digest=hashlib.sha256(text.encode("utf-8")).hexdigest())


def run_from_dict(data, source: str = "<run>", label: str | None = None) -> Run:
    """Build a :class:`Run` from a decoded pytest-benchmark JSON document."""
    where = source
    if not isinstance(data, dict) or not isinstance(data.get("benchmarks"), list):
        raise HistoryError(f"{where}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    machine_info = data.get("machine_info") if isinstance(data.get("machine_info"), dict) else {}
    commit_info = data.get("commit_info") if isinstance(data.get("commit_info"), dict) else {}
    _check_diffperf_info(machine_info, where)

    cases: list[Case] = []
    seen: dict[tuple[str, str], int] = {}
    for index, bench in enumerate(data["benchmarks"]):
        case = _case(bench, index, where)
        if case.key in seen:  # e.g. two plain tests with one name in different modules
            fullname = str(bench.get("fullname") or f"{case.name}#{index}")
            case = Case(fullname, case.scenario, case.name, case.reference, case.stats, case.data,
                        case.reference_rounds, case.extra_info)
        seen[case.key] = index
        cases.append(case)

    gate = data.get("diffperf") if isinstance(data.get("diffperf"), dict) else None
    return Run(
        source=source,
        label=label or Path(source).name,
        when=_when(data, commit_info, where),
        commit=str(commit_info["id"]) if commit_info.get("id") else None,
        branch=str(commit_info["branch"]) if commit_info.get("branch") else None,
        dirty=bool(commit_info.get("dirty")),
        machine=machine_key(machine_info, cases),
        cases=tuple(cases),
        gate=gate,
        machine_info=machine_info,
    )


def expand_paths(paths: Iterable[str | os.PathLike]) -> list[tuple[Path, bool]]:
    """Files to read: each file as given, each directory's ``*.json`` files (recursively, sorted).

    Returns ``(path, from_directory)`` pairs. A path that does not exist, or a directory with no
    JSON file, is a :class:`HistoryError`.
    """
    found: list[tuple[Path, bool]] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            files = sorted(p for p in path.rglob("*.json") if p.is_file())
            if not files:
                raise HistoryError(f"{path}: no .json files in this directory")
            found.extend((p, True) for p in files)
        elif path.exists():
            found.append((path, False))
        else:
            raise HistoryError(f"{path}: no such file or directory")
    return found


def load_runs(paths: Iterable[str | os.PathLike], distinct: bool = False) -> tuple[list[Run], list[str]]:
    """Load files and directories; returns ``(runs, warnings)``.

    A file named on the command line must be valid; a file found inside a directory that is not
    pytest-benchmark JSON is skipped with a warning. One run given twice (a file named twice, or two
    files with the same content) counts once: the copy is skipped with a warning, or with ``distinct``
    (each run must be a process of its own) refused. Run labels are made unique.
    """
    runs: list[Run] = []
    warnings: list[str] = []
    seen: dict[str, Run] = {}
    for path, from_directory in expand_paths(paths):
        try:
            run = load_run(path)
        except HistoryError as error:
            if not from_directory:
                raise
            warnings.append(f"skipped {error}")
            continue
        first = seen.setdefault(run.digest, run)
        if first is not run:
            copy = f"{path} is the same run as {first.source}" + (
                "" if path.resolve() == Path(first.source).resolve() else " (identical content)")
            if distinct:
                raise HistoryError(f"{copy}: each run must come from a process of its own; give each run once")
            warnings.append(f"skipped {copy}: a run counts once")
            continue
        runs.append(run)
    if not runs:
        raise HistoryError("no pytest-benchmark runs found in " + ", ".join(str(p) for p in paths))
    return _unique_labels(runs), warnings


# --------------------------------------------------------------------------- machines


def machine_key(machine_info: Mapping, cases: Iterable[Case] = ()) -> MachineKey:
    """Profile and hardware of a run, from ``machine_info["diffperf"]`` (or the cases' extra_info)."""
    info = machine_info.get("diffperf") if isinstance(machine_info.get("diffperf"), Mapping) else {}
    cases = list(cases)
    first = next((case.extra_info for case in cases if case.extra_info.get("profile")), {})
    profile = info.get("profile") or first.get("profile")
    device_type = info.get("device_type") or first.get("device_type")
    device_name = info.get("device_name") or first.get("device")
    if profile or device_type:
        count = info.get("device_count")
        threads = info.get("threads")
        return MachineKey(str(profile or "-"), str(device_name or _cpu_brand(machine_info) or "unknown device"),
                          str(device_type or "unknown"),
                          count if device_type == "cuda" and isinstance(count, int) and count > 1 else None,
                          int(threads) if device_type == "cpu" and threads else None)
    # A plain pytest-benchmark file: the CPU and OS are all it records.
    cpu = machine_info.get("cpu") if isinstance(machine_info.get("cpu"), Mapping) else {}
    system = [str(machine_info.get(k)) for k in ("system", "machine") if machine_info.get(k)]
    if cpu.get("count"):
        system.append(f"{cpu['count']} CPUs")
    return MachineKey("-", _cpu_brand(machine_info) or "unknown CPU", system=tuple(system))


def group_by_machine(runs: Iterable[Run]) -> dict[MachineKey, list[Run]]:
    """Runs per machine key, keys in order of first appearance, runs in the given order."""
    groups: dict[MachineKey, list[Run]] = {}
    for run in runs:
        groups.setdefault(run.machine, []).append(run)
    return groups


def comparable_groups(runs: Iterable[Run]) -> dict[MachineKey, list[Run]]:
    """:func:`group_by_machine`, each group split further by :data:`~diffperf.history.identity.SETUP` identity
    (schema, profile, workload, host): the runs of one group can be compared (their software may differ).
    A split group's key says what keeps it apart (``MachineKey.setup``)."""
    groups: dict[MachineKey, list[Run]] = {}
    for machine, members in group_by_machine(runs).items():
        setups: dict[tuple[str, ...], list[Run]] = {}
        for run in members:
            setups.setdefault(tuple(run.identity[name] for name in SETUP), []).append(run)
        differing = [index for index, name in enumerate(SETUP) if len({setup[index] for setup in setups}) > 1]
        for setup, group in setups.items():
            label = ", ".join(f"{SETUP[index]} {setup[index]}" for index in differing)
            groups[replace(machine, setup=label)] = group
    return groups


def without(history: Iterable[Run], runs: Iterable[Run]) -> list[Run]:
    """``history`` less the runs read from the same files as ``runs``."""
    taken = {_identity(run) for run in runs}
    return [run for run in history if _identity(run) not in taken]


def sort_by_time(runs: Iterable[Run]) -> list[Run]:
    """Chronological order (runs without a date last, in the given order)."""
    runs = list(runs)
    far = datetime.max.replace(tzinfo=timezone.utc)
    return [run for _, run in sorted(enumerate(runs), key=lambda item: (item[1].when or far, item[0]))]


# --------------------------------------------------------------------------- helpers


def _case(bench, index: int, where: str) -> Case:
    if not isinstance(bench, dict):
        raise HistoryError(f"{where}: not a pytest-benchmark JSON file (benchmark #{index} is not an object)")
    name = bench.get("name")
    stats = bench.get("stats")
    if not isinstance(name, str) or not isinstance(stats, dict) or not _is_number(stats.get("median")):
        raise HistoryError(
            f"{where}: not a pytest-benchmark JSON file (benchmark #{index} lacks a name or stats.median)"
        )
    if stats["median"] <= 0:
        raise HistoryError(f"{where}: {name}: stats.median must be a positive number of seconds")
    extra = bench.get("extra_info") if isinstance(bench.get("extra_info"), dict) else {}
    params = bench.get("params") if isinstance(bench.get("params"), dict) else {}
    variant = extra.get("variant") or params.get("variant") or name
    scenario = extra.get("scenario") or params.get("scenario") or bench.get("group") or ""
    reference = extra.get("reference")
    return Case(
        variant=str(variant),
        scenario=str(scenario),
        name=name,
        reference=str(reference) if reference else None,
        stats=stats,
        data=_times(stats.get("data"), f"{where}: {name}: stats.data"),
        reference_rounds=_times(extra.get("reference_rounds"), f"{where}: {name}: extra_info.reference_rounds"),
        extra_info=extra,
    )


def _times(values, what: str) -> tuple[float, ...] | None:
    if values is None:
        return None
    if not isinstance(values, list) or not all(_is_number(v) and v > 0 for v in values):
        raise HistoryError(f"{what} must be a list of positive numbers of seconds")
    return tuple(float(v) for v in values) or None


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _cpu_brand(machine_info: Mapping) -> str | None:
    cpu = machine_info.get("cpu")
    if isinstance(cpu, Mapping) and cpu.get("brand_raw"):
        return str(cpu["brand_raw"])
    return str(machine_info["processor"]) if machine_info.get("processor") else None


def _when(data: Mapping, commit_info: Mapping, where: str) -> datetime | None:
    """The run's date: its ``datetime``, else its commit's; :class:`HistoryError` for one that is not a date."""
    for name, value in (("datetime", data.get("datetime")), ("commit_info.time", commit_info.get("time"))):
        if value is None:
            continue
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00")) if isinstance(value, str) else None
        except ValueError:
            when = None
        if when is None:
            raise HistoryError(f"{where}: {name} {reprlib.repr(value)} is not a date and time: write it as "
                               "pytest-benchmark does (ISO 8601, e.g. 2026-11-01T10:00:00+00:00) or remove it")
        return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
    return None


def _check_diffperf_info(machine_info: Mapping, where: str) -> None:
    """:class:`HistoryError` for a ``machine_info["diffperf"]`` diffperf did not write: not an object, or one of
    its :data:`COUNTS` not a whole number."""
    info = machine_info.get("diffperf")
    if info is None:
        return
    if not isinstance(info, Mapping):
        raise HistoryError(f"{where}: machine_info.diffperf is {reprlib.repr(info)}, not an object: diffperf writes "
                           "the run's profile, hardware and host there; save the run again, or remove the key to "
                           "read it as a plain pytest-benchmark file")
    for key in COUNTS:
        value = info.get(key)
        if value is not None and not (isinstance(value, int) and not isinstance(value, bool) and value >= 0):
            raise HistoryError(f"{where}: machine_info.diffperf.{key} is {reprlib.repr(value)}, not a whole number: "
                               "correct it (diffperf writes a count there) or save the run again")


def _identity(run: Run) -> str:
    if run.digest is not None:  # the same run, whichever file it was read from
        return run.digest
    path = Path(run.source)
    return str(path.resolve()) if path.is_file() else f"{run.source}\0{run.label}"


def _unique_labels(runs: list[Run]) -> list[Run]:
    counts: dict[str, int] = {}
    for run in runs:
        counts[run.label] = counts.get(run.label, 0) + 1
    result = []
    for run in runs:
        if counts[run.label] > 1:
            parent = Path(run.source).parent.name
            run = replace(run, label=f"{parent}/{run.label}" if parent else run.source)
        result.append(run)
    labels = [run.label for run in result]
    if len(set(labels)) < len(labels):  # still clashing: fall back to full paths
        result = [replace(run, label=run.source) for run in result]
    return result
