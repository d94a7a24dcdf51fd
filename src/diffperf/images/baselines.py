"""Stored image baselines, one directory per profile and device type.

Layout (``root`` is ``--perf-baselines``, default ``baselines/`` under the rootdir)::

    <root>/<profile>/<device_type>/          profile_dir(): one per profile and device type,
                                             because numerics differ between device types
        images/
            index.json                       how each image baseline was produced
            <variant>-<scenario>.png         what the pipeline made, for a person to open
            <variant>-<scenario>.npz         the exact raw decoder output the check compares

Image baselines
---------------
The ``.npz`` (a standard NumPy archive, ``numpy.load`` opens it) holds ``raw``, the float32
(N, H, W, C) decoder output before the pipeline's ``(x / 2 + 0.5).clamp(0, 1)``, bit for bit,
and ``meta``, a JSON string: the conditions the comparison depends on (profile, device type,
variant, scenario, prompt, seed, steps, resolution, scheduler, images). It is written deterministically
(fixed zip timestamps), so re-recording an unchanged output leaves the file byte-identical and
git sees no change. The ``.npz`` is authoritative; the PNG (8-bit, the batch tiled left to right)
and ``index.json`` (the same conditions plus device name, thread count, library versions and
date) are for people and tools. Every file is replaced atomically; a normal run never writes
here, only ``--perf-update-baselines`` does (:meth:`ImageBaselines.record`).

Loading fails with one line (:class:`BaselineError`): a missing baseline says how to record it,
an unreadable one names the file and says to re-record it or restore it from git, one recorded
for another profile or device type says so. An unreadable ``index.json`` does not stop a check
(:class:`BaselineIndexWarning` says so), and recording never drops an entry: an unusable index is
rebuilt from the ``.npz`` files (their ``meta``) plus what is recorded.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffperf.files import atomic_path, write_json_atomic
from diffperf.models.names import case_name

RECORD_HINT = "pytest perf --perf-update-baselines"
"""The command that records baselines, quoted in the one-line errors."""

FORMAT_VERSION = 1


class BaselineError(Exception):
    """A stored baseline cannot be used; ``str()`` is one line saying what to do."""


class MissingBaseline(BaselineError):
    """No baseline is recorded for this case yet."""


class CorruptBaseline(BaselineError):
    """A baseline file exists but cannot be read."""


class MismatchedBaseline(BaselineError):
    """A baseline was recorded under other conditions (profile, device type, scenario)."""


class BaselineIndexWarning(UserWarning):
    """``index.json`` could not be used: the check goes on from the ``.npz`` files, or the index was rebuilt."""


def profile_dir(root: str | os.PathLike, profile: str, device_type: str) -> Path:
    """The directory of every baseline of one profile on one device type."""
    return Path(root) / profile / device_type


IMAGES_DIR = "images"
INDEX_NAME = "index.json"

# Conditions an image depends on: a stored baseline must match the run in all of these.
CONDITIONS = ("profile", "device_type", "variant", "scenario", "prompt", "seed", "steps", "resolution", "scheduler",
              "images")
# ... and, where a scenario has them, its other call arguments (guidance_scale, max_sequence_length, ...).
OPTIONAL_CONDITIONS = ("arguments",)


@dataclass(frozen=True)
class ImageBaseline:
    """One stored image baseline."""

    raw: np.ndarray
    """float32 (N, H, W, C) raw decoder output."""
    meta: dict
    """The conditions it was recorded under (``CONDITIONS``)."""
    data_path: Path
    png_path: Path
    provenance: dict
    """Its ``index.json`` entry (library versions, device name, date), or {} if absent."""


class ImageBaselines:
    """The image baselines of one profile on one device type."""

    def __init__(self, root: str | os.PathLike, profile: str, device_type: str, record_hint: str = RECORD_HINT):
        self.profile = profile
        self.device_type = device_type
        self.directory = profile_dir(root, profile, device_type) / IMAGES_DIR
        self.record_hint = record_hint
        # Recordings of this run, written only by commit(), at the run's end: a case stages its image once it passed.
        self.staged: dict[str, tuple] = {}

    @staticmethod
    def key(variant: str, scenario: str) -> str:
        return case_name(variant, scenario)

    def data_path(self, variant: str, scenario: str) -> Path:
        return self.directory / f"{self.key(variant, scenario)}.npz"

    def png_path(self, variant: str, scenario: str) -> Path:
        return self.directory / f"{self.key(variant, scenario)}.png"

    @property
    def index_path(self) -> Path:
        return self.directory / INDEX_NAME

    # -- reading -------------------------------------------------------------------------------

    def index(self) -> dict:
        """The parsed index (an empty one when absent); CorruptBaseline or MismatchedBaseline when unusable."""
        path = self.index_path
        if not path.exists():
            return {"format": FORMAT_VERSION, "profile": self.profile, "device_type": self.device_type, "images": {}}
        try:
            index = json.loads(path.read_text())
            if not isinstance(index, dict) or not isinstance(index.get("images"), dict):
                raise ValueError("not a diffperf image index")
        except (OSError, ValueError) as error:
            raise CorruptBaseline(
                f"baseline index {path} is unreadable ({_first_line(error)}): "
                f"restore it from git or rebuild it with `{self.record_hint}`"
            ) from None
        self._check_recorded_for(index, f"baseline index {path}")
        return index

    def load(self, variant: str, scenario: str, expected: dict | None = None,
             shape: tuple[int, ...] | None = None) -> ImageBaseline:
        """The stored baseline of ``variant`` on ``scenario``.

        ``expected`` maps some of ``CONDITIONS`` to this run's values, ``shape`` is the shape of this
        run's batch; a baseline recorded under other values or holding images of another shape raises
        MismatchedBaseline. Raises MissingBaseline or CorruptBaseline too,
        each with a one-line message. An unreadable index does not stop the check (the ``.npz``
        is authoritative): it is reported as a ``BaselineIndexWarning``.
        """
        staged = self.staged.get(self.key(variant, scenario))
        if staged is not None:  # recorded by this run: what later cases compare with
            _, _, raw, conditions, _ = staged
            meta = self._meta(variant, scenario, conditions)
            return ImageBaseline(raw=raw, meta=meta, data_path=self.data_path(variant, scenario),
                                 png_path=self.png_path(variant, scenario), provenance={})
        path = self.data_path(variant, scenario)
        if not path.exists():
            raise MissingBaseline(
                f"no baseline for {self.key(variant, scenario)} at {path}: record it with `{self.record_hint}`"
            )
        raw, meta = self._read_data_file(path)
        self._check_recorded_for(meta, f"baseline {path}")
        wanted = {"variant": variant, "scenario": scenario, **(expected or {})}
        differences = [
            f"{name} {meta.get(name)!r} (this run: {value!r})"
            for name, value in wanted.items()
            if meta.get(name) != value
        ]
        if differences:
            raise MismatchedBaseline(
                f"baseline {path} was recorded with {', '.join(differences)}: "
                f"re-record it with `{self.record_hint}` if the change is intended"
            )
        if shape is not None and tuple(raw.shape) != tuple(shape):
            raise MismatchedBaseline(
                f"baseline {path} holds images of shape {tuple(raw.shape)}, this run makes {tuple(shape)}: it was "
                f"recorded for another workload or resolution; re-record it with `{self.record_hint}`"
            )
        return ImageBaseline(raw=raw, meta=meta, data_path=path, png_path=self.png_path(variant, scenario),
                             provenance=self._provenance(self.key(variant, scenario)))

    def _read_data_file(self, path: Path) -> tuple[np.ndarray, dict]:
        """The raw output and conditions stored in one ``.npz``; CorruptBaseline when unreadable."""
        try:
            if not zipfile.is_zipfile(path):
                raise ValueError("not a NumPy .npz archive")
            with np.load(path, allow_pickle=False) as archive:
                raw = np.asarray(archive["raw"])
                meta = json.loads(str(archive["meta"]))
            if raw.dtype != np.float32 or raw.ndim != 4 or not isinstance(meta, dict):
                raise ValueError(f"unexpected content: raw {raw.dtype} {raw.shape}")
        except Exception as error:  # zipfile.BadZipFile, zlib.error, KeyError, ValueError, EOFError...
            raise CorruptBaseline(
                f"baseline {path} is unreadable ({type(error).__name__}: {_first_line(error)}): "
                f"re-record it with `{self.record_hint}` or restore it from git"
            ) from None
        return raw, meta

    def _check_recorded_for(self, recorded: dict, what: str) -> None:
        """MismatchedBaseline when ``recorded`` (an index or a ``meta``) is another profile's or device type's."""
        recorded_for = (recorded.get("profile"), recorded.get("device_type"))
        if recorded_for != (self.profile, self.device_type):
            raise MismatchedBaseline(
                f"{what} was recorded for profile {recorded_for[0]} on {recorded_for[1]}, "
                f"not {self.profile} on {self.device_type}: restore {self.directory} from git "
                f"or re-record it with `{self.record_hint}`"
            )

    def _provenance(self, key: str) -> dict:
        """The index entry of ``key`` ({} when absent); a BaselineIndexWarning when the index is unreadable."""
        try:
            return self.index()["images"].get(key, {})
        except CorruptBaseline as error:
            warnings.warn(BaselineIndexWarning(f"{error}; meanwhile each image is checked against its .npz file"),
                          stacklevel=3)
            return {}

    # -- writing (only with --perf-update-baselines) -------------------------------------------

    def stage(self, variant: str, scenario: str, raw: np.ndarray, conditions: dict,
              provenance: dict | None = None) -> None:
        """Keep ``raw`` as the new baseline of ``variant`` on ``scenario`` until :meth:`commit` (or forever)."""
        self.staged[self.key(variant, scenario)] = (variant, scenario, np.ascontiguousarray(raw, dtype=np.float32),
                                                    dict(conditions), dict(provenance or {}))

    def commit(self) -> int:
        """Record every staged baseline (each file atomically); returns how many were recorded."""
        count = 0
        for key, (variant, scenario, raw, conditions, provenance) in list(self.staged.items()):
            self.record(variant, scenario, raw, conditions, provenance)
            del self.staged[key]
            count += 1
        return count

    def record(self, variant: str, scenario: str, raw: np.ndarray, conditions: dict,
               provenance: dict | None = None) -> ImageBaseline:
        """Store ``raw`` as the baseline of ``variant`` on ``scenario``, each file atomically.

        ``conditions`` gives the values of ``CONDITIONS`` other than profile, device type,
        variant and scenario; ``provenance`` adds index-only facts (device name, library versions).
        Every other index entry is kept; an unusable index is rebuilt from the ``.npz`` files.
        """
        from diffperf.images.similarity import save_png, to_uint8

        raw = np.ascontiguousarray(raw, dtype=np.float32)
        if raw.ndim != 4:
            raise ValueError(f"need an (N, H, W, C) batch, got shape {raw.shape}")
        meta = self._meta(variant, scenario, conditions)
        data_path = self.data_path(variant, scenario)
        png_path = self.png_path(variant, scenario)
        data = _npz_bytes({"raw": raw, "meta": np.array(json.dumps(meta, sort_keys=True))})
        key = self.key(variant, scenario)
        entries, index_intact = self._entries_to_keep()
        if index_intact and key in entries and png_path.exists() and _same_bytes(data_path, data):
            # Unchanged: keep every file as it is (the index's date included), so git sees no change.
            return ImageBaseline(raw=raw, meta=meta, data_path=data_path, png_path=png_path,
                                 provenance=entries[key])
        with atomic_path(data_path) as temp:
            temp.write_bytes(data)
        save_png(png_path, to_uint8(raw))
        entries[key] = {**self._entry(meta, raw.shape), **(provenance or {}), "recorded": _now()}
        self._write_index(entries)
        return ImageBaseline(raw=raw, meta=meta, data_path=data_path, png_path=png_path, provenance=entries[key])

    def _meta(self, variant: str, scenario: str, conditions: dict) -> dict:
        """The ``CONDITIONS`` a baseline is stored with; a ValueError when ``conditions`` lacks some."""
        meta = {"profile": self.profile, "device_type": self.device_type, "variant": variant, "scenario": scenario}
        meta.update({name: conditions[name] for name in CONDITIONS + OPTIONAL_CONDITIONS if name in conditions})
        missing = [name for name in CONDITIONS if name not in meta]
        if missing:
            raise ValueError(f"conditions lack {', '.join(missing)}")
        return meta

    def _entry(self, meta: dict, shape: tuple[int, ...]) -> dict:
        """The index entry of one baseline, before provenance."""
        key = self.key(meta["variant"], meta["scenario"])
        return {**meta, "shape": list(shape), "data": f"{key}.npz", "png": f"{key}.png"}

    def _entries_to_keep(self) -> tuple[dict, bool]:
        """The index entries to keep, and whether the index held them all.

        The index's own entries, plus an entry rebuilt from each ``.npz`` file it lacks (every
        file, when the index is unreadable or another profile's), so recording never drops one.
        """
        try:
            entries = dict(self.index()["images"])
            usable = True
        except (CorruptBaseline, MismatchedBaseline):
            entries, usable = {}, False
        unindexed = [path for path in sorted(self.directory.glob("*.npz")) if path.stem not in entries]
        rebuilt = self._entries_from_data_files(unindexed)
        if not usable or rebuilt:
            problem = "could not be used" if not usable else f"had no entry for {len(rebuilt)} .npz files"
            warnings.warn(BaselineIndexWarning(
                f"baseline index {self.index_path} {problem}: rebuilt {len(rebuilt)} entries from the .npz files' "
                "own conditions (how they were recorded is lost; git has the old index)"
            ), stacklevel=3)
        return {**rebuilt, **entries}, usable and not rebuilt

    def _entries_from_data_files(self, paths: list[Path]) -> dict:
        """An index entry for each readable ``.npz`` of ``paths`` recorded for this profile and device type."""
        entries = {}
        for path in paths:
            try:
                raw, meta = self._read_data_file(path)
                self._check_recorded_for(meta, f"baseline {path}")
                entry = {**self._entry(meta, raw.shape), "rebuilt": _now()}
            except (BaselineError, KeyError):
                continue  # nothing trustworthy to index; its own check fails with one line
            if entry["data"] == path.name:
                entries[path.stem] = entry
        return entries

    def _write_index(self, entries: dict) -> None:
        write_json_atomic(self.index_path, {
            "format": FORMAT_VERSION,
            "profile": self.profile,
            "device_type": self.device_type,
            "about": "diffperf image baselines: <variant>-<scenario>.npz holds the exact float32 raw decoder "
                     "output (numpy.load(path)['raw']), .png the 8-bit image; written by "
                     f"`{self.record_hint}`",
            "images": dict(sorted(entries.items())),
        })


def _npz_bytes(arrays: dict) -> bytes:
    """A deflated .npz of ``arrays`` with fixed timestamps: same arrays, same bytes."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.asanyarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue(), compresslevel=9)
    return buffer.getvalue()


def _same_bytes(path: Path, data: bytes) -> bool:
    try:
        return path.read_bytes() == data
    except OSError:
        return False


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]

