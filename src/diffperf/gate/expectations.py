"""Expected speed-ups and memory ratios, stored in ``baselines/<profile>/speedups.json``.

Written only by ``diffperf calibrate`` (several processes: :mod:`diffperf.history.calibrate`), read
by every run. Schema 2::

    {"schema": 2, "profile": "tiny",
     "hosts": {                       # one record per host fingerprint (diffperf.measure.host)
       "cpu-amd-epyc-2t-1a2b3c4d": {
         "label": "cpu-amd-epyc-2t", "fingerprint": {...},
         "calibrations": [{"command": ..., "processes": 10, "date": ..., "cases": [...]}],
         "speedups": {"bf16/vase": {"reference": "baseline", "expected": 1.12, "tolerance": 0.03,
                                    "run_sd": 0.011, "between_sd": 0.006, "processes": 10,
                                    "host_run_sd": 0.012, "host_between_sd": 0.009,
                                    "half_width": 0.018, "resolves": 0.03,
                                    "process_medians": [...]}},
         "memory": {"bf16/vase": {"reference": "baseline", "expected": 0.47, "tolerance": 0.05}}}},
     "portable": {                    # bands for hosts without a record of their own
       "cpu-x86_64-2t": {"hosts": [...], "calibrations": [...], "speedups": {...}, "memory": {...}}}}

A host uses its own record only when its fingerprint is the recorded one; otherwise the portable
bands of its class, and the run says what differs from the closest recorded host.
"""

from __future__ import annotations

import datetime
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from diffperf.files import write_json_atomic
from diffperf.stats.ratios import ProcessSpread, resolvable_tolerance
from diffperf.measure.host import Host, differences

SCHEMA = 2
HOST = "host"  # expectations calibrated on this very host
PORTABLE = "portable"  # bands measured to hold across hosts of this class
FORCED = "forced"  # a key the user named with --perf-baseline-key
PUBLISHED = "published"  # figures published for this GPU kind, until it is calibrated (diffperf.gate.published)


class ExpectationsError(ValueError):
    """A speed-up baseline file that cannot be used; the message names the file and what to do."""


@dataclass(frozen=True)
class Expectation:
    reference: str
    expected: float
    tolerance: float
    spread: ProcessSpread | None = None  # speed-ups only: how the ratio varies between processes
    resolution: float | None = None  # speed-ups only: what the calibration recorded this host resolves
    # The tolerance is a floor measured (portable bands) or stated (published figures) across hosts, which a band
    # a variant declares (Variant.tolerance) never narrows; on a host's own record the declared band replaces it.
    floor: bool = False

    def tolerance_for(self, declared: float | None) -> float:
        """The band a speed-up is judged in when its variant or family declares ``declared`` (None: nothing)."""
        if declared is None:
            return self.tolerance
        return max(declared, self.tolerance) if self.floor else declared

    @property
    def resolves(self) -> float | None:
        """The narrowest band this host shows the speed-up ``ok`` in (:func:`~diffperf.stats.ratios.resolvable_tolerance`):
        the recorded value, else the one its spread gives (records written before it was recorded); None without a
        spread."""
        if self.resolution is not None:
            return self.resolution
        return resolvable_tolerance(self.spread) if self.spread is not None else None


@dataclass(frozen=True)
class Expectations:
    """The expectations a run is judged against, and where they came from."""

    key: str
    source: str  # HOST | PORTABLE | FORCED
    calibration: dict
    speedups: dict[str, Expectation]
    memory: dict[str, Expectation]
    # For PORTABLE: the closest recorded host and how this one differs from it (field, recorded, here).
    closest_host: str | None = None
    differences: list[tuple[str, object, object]] = field(default_factory=list)


def case_id(variant: str, scenario: str) -> str:
    return f"{variant}/{scenario}"


def expectations_path(baselines_dir: str | Path, profile: str) -> Path:
    return Path(baselines_dir) / profile / "speedups.json"


def empty_file(profile: str) -> dict:
    return {"schema": SCHEMA, "profile": profile, "hosts": {}, "portable": {}}


def load_file(path: Path, profile: str) -> dict:
    """The whole file (empty when absent); :class:`ExpectationsError` when it cannot be used."""
    if not path.exists():
        return empty_file(profile)
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExpectationsError(f"{path} is not valid JSON ({error})") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        found = data.get("schema") if isinstance(data, dict) else None
        raise ExpectationsError(f"{path} has schema {found!r}, not diffperf's speed-up schema {SCHEMA}")
    for table in ("hosts", "portable"):
        if not isinstance(data.get(table, {}), dict):
            raise ExpectationsError(f"{path}: '{table}' is not a table")
        data.setdefault(table, {})
    return data


def move_aside_if_unreadable(path: Path, profile: str) -> str | None:
    """Rename a speedups.json that cannot be read to ``<name>.unreadable-<date-time>`` beside it, so that a new
    one is started and nothing is overwritten. Returns what was wrong and where it went, or None when it reads."""
    try:
        load_file(path, profile)
    except ExpectationsError as error:
        kept = path.with_name(f"{path.name}.unreadable-{datetime.datetime.now():%Y%m%d-%H%M%S}")
        path.rename(kept)
        return f"{error}: moved it to {kept} and started a new file"
    return None


def lookup(baselines_dir: str | Path, profile: str, host: Host, forced_key: str | None = None) -> Expectations | None:
    """What this host is judged against: its own record, else its class's portable bands, else None.

    ``forced_key`` names a host or portable record to use whatever this host is; an unknown
    forced key raises :class:`ExpectationsError` (the user asked for something that cannot work).
    """
    path = expectations_path(baselines_dir, profile)
    data = load_file(path, profile)
    hosts, portable = data["hosts"], data["portable"]
    if forced_key is not None:
        table = hosts if forced_key in hosts else portable if forced_key in portable else None
        if table is None:
            known = ", ".join(sorted(hosts) + sorted(portable)) or "none"
            raise ExpectationsError(f"--perf-baseline-key {forced_key}: no such record in {path} (recorded: {known})")
        return parse_record(path, forced_key, table[forced_key], FORCED)
    if host.key in hosts:
        return parse_record(path, host.key, hosts[host.key], HOST)
    closest, differing = _closest(hosts, host)
    if host.portable_key in portable:
        expectations = parse_record(path, host.portable_key, portable[host.portable_key], PORTABLE)
        return Expectations(**{**expectations.__dict__, "closest_host": closest, "differences": differing})
    return None


def known_keys(baselines_dir: str | Path, profile: str) -> list[str]:
    data = load_file(expectations_path(baselines_dir, profile), profile)
    return sorted(data["hosts"]) + sorted(data["portable"])


def record(baselines_dir: str | Path, profile: str, table: str, key: str, header: dict, speedups: dict,
           memory: dict) -> Path:
    """Merge calibrated cases into record ``key`` of ``table`` ("hosts" or "portable"), atomically
    (:func:`merged_file`)."""
    path, data = merged_file(baselines_dir, profile, table, key, header, speedups, memory)
    write_json_atomic(path, data)
    return path


def merged_file(baselines_dir: str | Path, profile: str, table: str, key: str, header: dict, speedups: dict,
                memory: dict) -> tuple[Path, dict]:
    """The file :func:`record` would write, and where: nothing is written.

    Cases are merged one by one: a calibration of some cases keeps every other case of the record.
    ``header`` (fingerprint, label, ...) replaces the record's header fields, except its
    ``calibration`` notes (command, processes, date), which join the record's ``calibrations``
    with the cases they measured, so that every case keeps the command that measured it.
    :class:`ExpectationsError` when the merged record would not read back, as the gate reads it (a case
    kept from before holding a number no calibration writes, such as NaN).
    """
    path = expectations_path(baselines_dir, profile)
    data = load_file(path, profile)
    entry = data[table].setdefault(key, {})
    if not isinstance(entry, dict):
        raise ExpectationsError(f"{path}: record {key!r} is not a table")
    header = dict(header)
    notes = header.pop("calibration", None)
    entry.update(header)
    if notes is not None:
        entry["calibrations"] = _calibrations(entry, {**notes, "cases": sorted(speedups)})
    entry["speedups"] = {**entry.get("speedups", {}), **speedups}
    entry["memory"] = {**entry.get("memory", {}), **memory}
    data["profile"] = profile
    parse_record(path, key, entry, HOST if table == "hosts" else PORTABLE)
    return path, data


def _calibrations(entry: dict, latest: dict) -> list[dict]:
    """The record's calibration notes with ``latest`` last; notes of calibrations it fully re-measured dropped."""
    earlier = list(entry.get("calibrations", []))
    if isinstance(entry.get("calibration"), dict):  # a record written before calibrations were kept per case
        earlier.append({**entry.pop("calibration"), "cases": sorted(set(entry.get("speedups", {})))})
    kept = []
    for notes in earlier:
        cases = [name for name in notes.get("cases", []) if name not in latest["cases"]]
        if cases:
            kept.append({**notes, "cases": cases})
    return [*kept, latest]


def latest_calibration(entry: dict) -> dict:
    """The notes of the record's latest calibration (``{}`` when it has none)."""
    calibrations = entry.get("calibrations")
    if isinstance(calibrations, list) and calibrations and isinstance(calibrations[-1], dict):
        return dict(calibrations[-1])
    return dict(entry.get("calibration") or {})


def _closest(hosts: dict, host: Host) -> tuple[str | None, list]:
    """The recorded host of the same device type with the fewest fingerprint differences."""
    best = None
    for key, entry in hosts.items():
        fingerprint = entry.get("fingerprint") if isinstance(entry, dict) else None
        if not isinstance(fingerprint, dict) or not key.startswith(host.device_type + "-"):
            continue
        found = differences(fingerprint, host.fingerprint)
        if best is None or len(found) < len(best[1]):
            best = (key, found)
    return best if best is not None else (None, [])


def parse_record(path: Path, key: str, entry, source: str) -> Expectations:
    """One record of the file (a host's or portable bands) as :class:`Expectations`."""
    if not isinstance(entry, dict):
        raise ExpectationsError(f"{path}: record {key!r} is not a table")
    return Expectations(
        key=key,
        source=source,
        calibration=latest_calibration(entry),
        speedups=_entries(path, key, entry.get("speedups", {}), "speed-up", source == PORTABLE),
        memory=_entries(path, key, entry.get("memory", {}), "memory ratio", source == PORTABLE),
    )


def _entries(path: Path, key: str, table, what: str, floor: bool) -> dict[str, Expectation]:
    if not isinstance(table, dict):
        raise ExpectationsError(f"{path}: {key} {what}s are not a table")
    entries = {}
    for case, entry in table.items():
        try:
            expected = float(entry["expected"])
            tolerance = float(entry["tolerance"])
            reference = str(entry.get("reference", ""))
            spread = None
            resolution = float(entry["resolves"]) if "resolves" in entry else None
            if "run_sd" in entry:
                spread = ProcessSpread(
                    expected=expected,
                    run_sd=float(entry["run_sd"]),
                    between_sd=float(entry["between_sd"]),
                    processes=int(entry["processes"]),
                    half_width=float(entry.get("half_width", 0.0)),
                    host_run_sd=float(entry["host_run_sd"]) if "host_run_sd" in entry else None,
                    host_between_sd=float(entry["host_between_sd"]) if "host_between_sd" in entry else None,
                )
        except (TypeError, KeyError, ValueError, OverflowError):  # OverflowError: int(Infinity)
            raise ExpectationsError(f"{path}: {key} {what} {case!r} lacks numeric fields") from None
        if not (math.isfinite(expected) and expected > 0 and 0 < tolerance < 1):
            raise ExpectationsError(
                f"{path}: {key} {what} {case!r} has expected {expected} and tolerance {tolerance}: "
                "expected must be a finite number > 0 and tolerance between 0 and 1"
            )
        if spread is not None:
            _check_spread(f"{path}: {key} {what} {case!r}", spread)
        if resolution is not None and not 0 < resolution < 1:
            raise ExpectationsError(f"{path}: {key} {what} {case!r} has resolves {resolution}: it must be between 0 "
                                    "and 1")
        entries[case] = Expectation(reference, expected, tolerance, spread, resolution, floor)
    return entries


def _check_spread(where: str, spread: ProcessSpread) -> None:
    """ExpectationsError naming the first field of a stored spread that no calibration writes (NaN, inf, < 0)."""
    if spread.processes < 2:
        raise ExpectationsError(f"{where} has processes {spread.processes}: a calibration measures at least 2")
    for name in ("run_sd", "between_sd", "half_width", "host_run_sd", "host_between_sd"):
        value = getattr(spread, name)
        if value is not None and not (math.isfinite(value) and value >= 0):
            raise ExpectationsError(f"{where} has {name} {value}: it must be a finite number, 0 or more")
