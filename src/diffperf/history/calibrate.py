"""Calibration: expected speed-ups and their between-process spread, measured across processes.

``diffperf calibrate`` runs the latency suite in several fresh processes
(:mod:`diffperf.measure.workers`) or reads saved runs, and records per ratio the expected value,
how far one process's median strays from it (:func:`~diffperf.stats.ratios.process_spread`) and
the host it was measured on. Portable bands for hosts without a calibration of their own are
derived from the calibrations of several hosts (:func:`portable_bands`).
:func:`calibrate_and_record` does all of it for the command: saved runs in, records written.

Numbers only; :mod:`diffperf.render.history_text` says what was recorded.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from diffperf.stats import ratios
from diffperf.gate.expectations import (HOST, ExpectationsError, case_id, expectations_path, load_file,
                                        merged_file, move_aside_if_unreadable, parse_record, record)
from diffperf.history.runs import Run
from diffperf.measure.host import Host

MIN_PROCESSES = 5
#: The smallest change of a speed-up that the gate reports on a calibrated host: the interval
#: (between-process spread included) carries the noise; this is the change worth failing a run for.
HOST_TOLERANCE = 0.03
#: Portable bands are at least this wide, and 1.25 x the largest difference between hosts' values.
PORTABLE_FLOOR = 0.08
PORTABLE_FACTOR = 1.25
#: Peak memory is exact on CUDA (the allocator's counters) and on the CPU (PyTorch's allocation events).
MEMORY_TOLERANCE = 0.05
#: ... but only on one host: other ISAs run other kernels with other workspaces. Measured: bf16/astronaut
#: 0.500x on an AMD Zen 4 host and 0.525x on an Intel AMX host of the same class; the floor is twice that.
PORTABLE_MEMORY_FLOOR = 0.10


class CalibrationError(ValueError):
    """Runs that cannot be calibrated from; the message says why and what to do."""


@dataclass
class CaseCalibration:
    reference: str
    spread: ratios.ProcessSpread
    process_medians: list[float]
    memory_ratio: float | None
    process_half_widths: list[float] = field(default_factory=list)  # each process's within-process half-width


@dataclass
class HostCalibration:
    """One host's calibration: per case, the spread of its speed-up over the processes measured."""

    key: str
    label: str
    portable_key: str
    fingerprint: dict
    profile: str
    processes: int
    rounds: int
    cases: dict[str, CaseCalibration] = field(default_factory=dict)


@dataclass(frozen=True)
class Recorded:
    """One record :func:`calibrate_and_record` wrote: a host's calibration or a class's portable bands."""

    table: str  # "hosts" or "portable" (diffperf.gate.expectations.record)
    key: str
    path: Path
    speedups: int  # how many speed-ups it holds ...
    memory: int  # ... and memory ratios
    processes: int = 0  # a host's: the processes measured
    hosts: int = 0  # portable bands': the hosts they come from


def calibrate_host(runs: list[Run], min_processes: int = MIN_PROCESSES) -> HostCalibration:
    """Calibrate from saved runs of one host and profile, one run per process."""
    planted_runs = [run for run in runs if run.planted]
    if planted_runs:
        raise CalibrationError(f"{planted_runs[0].source} was run with {planted_runs[0].planted.text()}; "
                               "calibrate from runs made without it")
    early = [run for run in runs if run.stopped_early]
    if early:  # which cases stop there depends on their medians: a spread from such runs is a selected one
        cases, rounds = early[0].stopped_early, _info(early[0], "rounds")
        shown = ", ".join(cases[:3]) + (f" and {len(cases) - 3} more" if len(cases) > 3 else "")
        raise CalibrationError(f"{early[0].source} stopped {shown} at the early look: calibrate from runs that gave "
                               f"every case its rounds (diffperf calibrate, or pytest perf --perf-min-rounds {rounds})")
    if len(runs) < min_processes:
        raise CalibrationError(f"{len(runs)} runs: a calibration needs at least {min_processes} processes")
    identities = {(_info(run, "host_key"), _info(run, "profile")) for run in runs}
    if len(identities) != 1 or None in next(iter(identities)):
        shown = ", ".join(sorted(f"{key} ({profile})" for key, profile in identities if key))
        raise CalibrationError(f"the runs come from {len(identities)} hosts or profiles ({shown or 'unknown'}): "
                               "calibrate each host from its own runs")
    first = runs[0]
    calibration = HostCalibration(
        key=_info(first, "host_key"), label=_info(first, "host_label"), portable_key=_info(first, "portable_key"),
        fingerprint=_info(first, "fingerprint") or {}, profile=_info(first, "profile"), processes=len(runs),
        rounds=int(_info(first, "rounds") or 0),
    )
    estimates: dict[str, list[ratios.RatioEstimate]] = {}
    memory: dict[str, list[float]] = {}
    references: dict[str, str] = {}
    for run in runs:
        for case in run.cases:
            if not case.reference or not case.paired:
                continue
            name = case_id(case.variant, case.scenario)
            references[name] = case.reference
            try:
                estimates.setdefault(name, []).append(ratios.paired_ratio(case.reference_rounds, case.data))
            except ratios.TooFewRounds as error:
                raise CalibrationError(f"{run.label}: {name}: {error}") from None
            peak, reference_peak = case.number("peak_memory"), case.number("reference_peak_memory")
            if peak and reference_peak:
                memory.setdefault(name, []).append(ratios.memory_ratio(reference_peak, peak))
    for name, found in sorted(estimates.items()):
        if len(found) < min_processes:
            continue  # measured in too few of the processes (a -k selection that changed between them)
        calibration.cases[name] = CaseCalibration(
            reference=references[name],
            spread=ratios.process_spread(found),
            process_medians=[round(estimate.median, 5) for estimate in found],
            process_half_widths=[round(estimate.half_width, 5) for estimate in found],
            memory_ratio=statistics.median(memory[name]) if len(memory.get(name, [])) == len(found) else None,
        )
    if not calibration.cases:
        raise CalibrationError("no speed-up was measured in every process: nothing to calibrate")
    # The host's spreads pooled over its ratios: the prior each ratio's own spread is moderated toward.
    spreads = [case.spread for case in calibration.cases.values()]
    host_run_sd = math.sqrt(statistics.fmean(spread.run_sd**2 for spread in spreads))
    host_between_sd = math.sqrt(statistics.fmean(spread.between_sd**2 for spread in spreads))
    for case in calibration.cases.values():
        case.spread = dataclasses.replace(case.spread, host_run_sd=host_run_sd, host_between_sd=host_between_sd)
    return calibration


def host_record(calibration: HostCalibration, command: str) -> tuple[dict, dict, dict]:
    """The header, speed-up and memory tables to store under the host's key."""
    header = {
        "label": calibration.label,
        "portable_key": calibration.portable_key,
        "fingerprint": calibration.fingerprint,
        "calibration": {
            "processes": calibration.processes,
            "rounds": calibration.rounds,
            "date": datetime.date.today().isoformat(),
            "command": command,
        },
    }
    speedups = {name: _speedup_entry(case, HOST_TOLERANCE) for name, case in calibration.cases.items()}
    memory = {name: {"reference": case.reference, "expected": round(case.memory_ratio, 4),
                     "tolerance": MEMORY_TOLERANCE}
              for name, case in calibration.cases.items() if case.memory_ratio}
    return header, speedups, memory


def portable_bands(calibrations: list[HostCalibration], command: str) -> tuple[str, dict, dict, dict]:
    """Bands for hosts of one class without their own calibration, from the calibrations of hosts of that class.

    Per case: the expected value is the median of the hosts' values; the tolerance covers
    :data:`PORTABLE_FACTOR` x the largest distance of a host's value from it, and never less than
    :data:`PORTABLE_FLOOR`, which stands for the variation between hosts of a class that the hosts
    measured cannot show (all of it, when one host was measured); the spread is the widest any
    host showed. Returns the portable key and the header, speed-up and memory tables.
    """
    keys = {calibration.portable_key for calibration in calibrations}
    if len(keys) != 1:
        raise CalibrationError(f"portable bands stand for one class of hosts; these runs are of {sorted(keys)}")
    speedups, memory = {}, {}
    names = sorted({name for calibration in calibrations for name in calibration.cases})
    for name in names:
        measured = [calibration.cases[name] for calibration in calibrations if name in calibration.cases]
        values = [case.spread.expected for case in measured]
        expected = math.exp(statistics.median(math.log(value) for value in values))
        distance = max(abs(math.log(value / expected)) for value in values)
        widest = max(measured, key=lambda case: case.spread.run_sd).spread
        spread = ratios.ProcessSpread(expected, widest.run_sd, max(case.spread.between_sd for case in measured),
                                      min(case.spread.processes for case in measured), widest.half_width,
                                      _widest(case.spread.host_run_sd for case in measured),
                                      _widest(case.spread.host_between_sd for case in measured))
        tolerance = max(PORTABLE_FLOOR, ratios.round_up_percent(PORTABLE_FACTOR * (math.exp(distance) - 1)))
        speedups[name] = {**_speedup_entry(CaseCalibration(measured[0].reference, spread, [], None), tolerance),
                          "host_values": [round(value, 4) for value in values]}
        memories = [case.memory_ratio for case in measured if case.memory_ratio]
        if memories:
            value = statistics.median(memories)
            spread_memory = max(abs(m / value - 1) for m in memories)
            memory[name] = {"reference": measured[0].reference, "expected": round(value, 4),
                            "tolerance": max(PORTABLE_MEMORY_FLOOR, ratios.round_up_percent(PORTABLE_FACTOR * spread_memory))}
    header = {
        "hosts": sorted(calibration.key for calibration in calibrations),
        "calibration": {
            "processes": sum(calibration.processes for calibration in calibrations),
            "date": datetime.date.today().isoformat(),
            "command": command,
        },
    }
    return keys.pop(), header, speedups, memory


def calibrate_hosts(runs: list[Run], min_processes: int = MIN_PROCESSES) -> tuple[str, list[HostCalibration]]:
    """Saved runs of one profile, from one host or several: their profile and each host's calibration."""
    by_host: dict = {}
    for run in runs:
        by_host.setdefault(_info(run, "host_key") or "no host key", []).append(run)
    short = [key for key, members in by_host.items() if len(members) < min_processes]
    if short and len(by_host) > 1:  # one host alone: calibrate_host says how many runs it has
        counts = ", ".join(f"{key}: {len(members)} run{'s' if len(members) != 1 else ''}"
                           for key, members in by_host.items())
        raise CalibrationError(f"the runs come from {len(by_host)} hosts ({counts}): a calibration needs at least "
                               f"{min_processes} processes of each host; give more runs of {', '.join(short)}, or "
                               "calibrate without them")
    calibrations = [calibrate_host(members, min_processes) for members in by_host.values()]
    profiles = {calibration.profile for calibration in calibrations}
    if len(profiles) != 1:
        raise CalibrationError(f"the runs come from several profiles ({', '.join(sorted(profiles))})")
    return profiles.pop(), calibrations


def calibrate_and_record(runs: list[Run], baselines_dir: str | Path, command: str,
                         min_processes: int = MIN_PROCESSES, portable: bool = False,
                         warn: Callable[[str], None] | None = None,
                         progress: Callable[[Recorded], None] | None = None) -> list[Recorded]:
    """Calibrate each host of ``runs`` and record it in ``<baselines_dir>/<profile>/speedups.json``; with
    ``portable``, also the portable bands of each class of hosts measured, from every host of that class
    recorded (the hosts just recorded included). Returns the records written, in order.

    A file that cannot be read is moved aside first (``warn`` gets the one line saying so). Each host's record,
    merged with its new cases, must read back as the gate reads it (a case kept from before may hold a NaN),
    and with ``portable`` every recorded host must be readable, before anything is written. ``progress`` gets each record as it is
    written. Raises :class:`CalibrationError` or :class:`~diffperf.gate.expectations.ExpectationsError`.
    """
    profile, calibrations = calibrate_hosts(runs, min_processes)
    path = expectations_path(baselines_dir, profile)
    moved = move_aside_if_unreadable(path, profile)
    if moved is not None and warn is not None:
        warn(moved)
    records = [(calibration, *host_record(calibration, command)) for calibration in calibrations]
    for calibration, header, speedups, memory in records:  # each must read back before anything is written
        try:
            merged_file(baselines_dir, profile, "hosts", calibration.key, header, speedups, memory)
        except ExpectationsError as error:
            raise CalibrationError(f"{error}: correct or remove that entry (or restore the file from git), then "
                                   "calibrate again") from None
    if portable:  # the bands read every host record: each must be readable before anything is written
        recorded_calibrations(path, profile, load_file(path, profile)["hosts"])
    written = []

    def written_now(entry: Recorded) -> None:
        written.append(entry)
        if progress is not None:
            progress(entry)

    for calibration, header, speedups, memory in records:
        path = record(baselines_dir, profile, "hosts", calibration.key, header, speedups, memory)
        written_now(Recorded("hosts", calibration.key, path, len(speedups), len(memory),
                             processes=calibration.processes))
    if portable:
        measured = {calibration.portable_key for calibration in calibrations}
        classes: dict = {}
        for calibration in recorded_calibrations(path, profile, load_file(path, profile)["hosts"]):
            if calibration.portable_key in measured:
                classes.setdefault(calibration.portable_key, []).append(calibration)
        for members in classes.values():
            key, header, speedups, memory = portable_bands(members, command)
            path = record(baselines_dir, profile, "portable", key, header, speedups, memory)
            written_now(Recorded("portable", key, path, len(speedups), len(memory), hosts=len(members)))
    return written


def recorded_calibrations(path: Path, profile: str, hosts: dict) -> list[HostCalibration]:
    """The host records of a speedups.json (its ``hosts`` table) as calibrations.

    So that portable bands are derived from every host ever calibrated, not only from the runs at
    hand: the records keep each ratio's expected value, spread and memory ratio.
    """
    calibrations = []
    for key, entry in sorted(hosts.items()):
        recorded = parse_record(path, key, entry, HOST)
        fingerprint = entry.get("fingerprint") or {}
        label = entry.get("label") or key
        portable_key = entry.get("portable_key") or Host(
            label.split("-", 1)[0], fingerprint.get("model_name") or label, label.rsplit("-", 1)[-1], fingerprint,
        ).portable_key
        calibration = HostCalibration(
            key=key, label=label, portable_key=portable_key, fingerprint=fingerprint, profile=profile,
            processes=int(recorded.calibration.get("processes", 0)), rounds=int(recorded.calibration.get("rounds", 0)),
        )
        for name, expectation in recorded.speedups.items():
            if expectation.spread is None:
                continue
            memory = recorded.memory.get(name)
            calibration.cases[name] = CaseCalibration(expectation.reference, expectation.spread, [],
                                                      memory.expected if memory else None)
        calibrations.append(calibration)
    return calibrations


def _speedup_entry(case: CaseCalibration, tolerance: float) -> dict:
    spread = case.spread
    entry = {
        "reference": case.reference,
        "expected": round(spread.expected, 4),
        "tolerance": tolerance,
        "run_sd": round(spread.run_sd, 5),
        "between_sd": round(spread.between_sd, 5),
        "processes": spread.processes,
        "half_width": round(spread.half_width, 4),
        "resolves": ratios.resolvable_tolerance(spread),
    }
    if spread.host_run_sd is not None and spread.host_between_sd is not None:
        entry["host_run_sd"] = round(spread.host_run_sd, 5)
        entry["host_between_sd"] = round(spread.host_between_sd, 5)
    if case.process_medians:
        entry["process_medians"] = case.process_medians
    if case.process_half_widths:
        entry["process_half_widths"] = case.process_half_widths
    return entry


def _widest(values) -> float | None:
    known = [value for value in values if value is not None]
    return max(known) if known else None


def _info(run: Run, key: str):
    info = run.machine_info.get("diffperf")
    return info.get(key) if isinstance(info, dict) else None
