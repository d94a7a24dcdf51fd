"""Expected speed-ups and memory ratios, stored in baselines/<profile>/speedups.json.

One file per profile holds an entry per *hardware key* (GPU name or CPU model, device or thread
count), each with the software it was recorded with and, per ``variant/scenario`` case, the
expected speed-up over its reference, its tolerance and the interval half-width it was recorded
with. A portable entry (``<device type>-any-<arch>-<threads>``) can stand in for machines that
have no entry of their own.
"""

from __future__ import annotations

import json
import math
import platform
import re
from dataclasses import dataclass
from pathlib import Path

from diffperf.files import write_json_atomic

SCHEMA = 1
UPDATE_HINT = "record them with `pytest perf --perf-update-baselines`"


class ExpectationsError(ValueError):
    """A speed-up baseline file that cannot be used; the message names the file and the fix."""


def hardware_key(hardware: dict) -> str:
    """``cuda-nvidia-h100-80gb-hbm3-x1`` or ``cpu-amd-epyc-2t``: what makes timings comparable."""
    name = re.sub(r"[^a-z0-9]+", "-", hardware["device_name"].lower()).strip("-")
    if hardware["device_type"] == "cpu":
        return f"cpu-{name}-{hardware['threads']}t"
    return f"{hardware['device_type']}-{name}-x{hardware['device_count']}"


def portable_key(hardware: dict) -> str:
    """The key of expectations meant for any machine of this device type, architecture and size."""
    size = f"{hardware['threads']}t" if hardware["device_type"] == "cpu" else f"x{hardware['device_count']}"
    return f"{hardware['device_type']}-any-{platform.machine().lower()}-{size}"


def case_id(variant: str, scenario: str) -> str:
    return f"{variant}/{scenario}"


@dataclass(frozen=True)
class Expectation:
    reference: str
    expected: float
    tolerance: float


@dataclass(frozen=True)
class HardwareExpectations:
    key: str
    recorded: dict
    speedups: dict[str, Expectation]
    memory: dict[str, Expectation]


def expectations_path(baselines_dir: str | Path, profile: str) -> Path:
    return Path(baselines_dir) / profile / "speedups.json"


def load_file(path: Path) -> dict:
    """The whole file (empty when absent); a corrupt or hand-broken file raises ExpectationsError."""
    if not path.exists():
        return {"schema": SCHEMA, "hardware": {}}
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ExpectationsError(f"{path} is not valid JSON ({error}): restore it from git or {UPDATE_HINT}") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or not isinstance(data.get("hardware"), dict):
        raise ExpectationsError(
            f"{path} is not a diffperf speed-up file (schema {SCHEMA} with a 'hardware' table): "
            f"restore it from git or {UPDATE_HINT}"
        )
    return data


def _parse_entries(path: Path, key: str, table: dict, what: str) -> dict[str, Expectation]:
    entries = {}
    for case, entry in table.items():
        try:
            expected = float(entry["expected"])
            tolerance = float(entry["tolerance"])
            reference = str(entry.get("reference", ""))
        except (TypeError, KeyError, ValueError):
            raise ExpectationsError(
                f"{path}: {key} {what} {case!r} needs numeric 'expected' and 'tolerance': fix it or {UPDATE_HINT}"
            ) from None
        if not (math.isfinite(expected) and expected > 0 and 0 < tolerance < 1):
            raise ExpectationsError(
                f"{path}: {key} {what} {case!r} has expected {expected} and tolerance {tolerance}: "
                f"expected must be > 0 and tolerance between 0 and 1"
            )
        entries[case] = Expectation(reference, expected, tolerance)
    return entries


def lookup(baselines_dir: str | Path, profile: str, hardware: dict, forced_key: str | None = None):
    """The expectations to gate against and a one-line note on where they came from.

    Order: the forced key, else this machine's key, else the portable key. Returns (None, note)
    when there are none.
    """
    path = expectations_path(baselines_dir, profile)
    table = load_file(path)["hardware"]
    own = hardware_key(hardware)
    if forced_key is not None:
        candidates = [forced_key]
    else:
        candidates = [own, portable_key(hardware)]
    for key in candidates:
        if key in table:
            entry = table[key]
            if not isinstance(entry, dict):
                raise ExpectationsError(f"{path}: entry {key!r} is not a table: fix it or {UPDATE_HINT}")
            expectations = HardwareExpectations(
                key=key,
                recorded=dict(entry.get("recorded", {})),
                speedups=_parse_entries(path, key, entry.get("speedups", {}), "speed-up"),
                memory=_parse_entries(path, key, entry.get("memory", {}), "memory ratio"),
            )
            if key == own:
                note = f"gating against expected speed-ups of this machine ({key})"
            elif forced_key is not None:
                note = f"gating against {key} (forced with --perf-baseline-key; this machine is {own})"
            else:
                note = f"gating against the portable expectations {key}: this machine ({own}) has none of its own"
            return expectations, note
    known = ", ".join(sorted(table)) or "none"
    if forced_key is not None:
        return None, f"no expected speed-ups for key {forced_key} in {path} (stored: {known})"
    return None, f"no expected speed-ups for {own} in {path} (stored: {known}): nothing gated; {UPDATE_HINT}"


def record(baselines_dir: str | Path, profile: str, key: str, recorded: dict, speedups: dict, memory: dict) -> Path:
    """Store this run's expectations under ``key`` (atomically), keeping other keys and hand-set tolerances."""
    path = expectations_path(baselines_dir, profile)
    data = load_file(path)
    previous = data["hardware"].get(key, {})
    for table, old in ((speedups, previous.get("speedups", {})), (memory, previous.get("memory", {}))):
        for case, entry in table.items():
            if case in old and "tolerance" in old[case]:
                entry["tolerance"] = max(entry["tolerance"], float(old[case]["tolerance"]))
    data["hardware"][key] = {"recorded": recorded, "speedups": speedups, "memory": memory}
    data["profile"] = profile
    write_json_atomic(path, data)
    return path
