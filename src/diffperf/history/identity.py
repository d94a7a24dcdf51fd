"""What makes two saved runs comparable: diffperf's schema version and the identity of what a run measured.

Every run ``pytest perf`` saves records ``machine_info["diffperf"]["schema"]`` (:data:`SCHEMA`) beside
what its identity is read from: the profile, the workload overrides (``--perf-steps``,
``--perf-resolution``), the host's fingerprint key and the torch, diffusers and transformers
versions; each case records its scenario's definition (prompt, images, steps, scheduler, seed,
resolution) in its ``extra_info``. As asv marks a pair "not comparable" (``x``):

* runs whose :data:`SETUP` fields differ are never put into one test or one series; the field is named;
* the :data:`SOFTWARE` fields may differ between the two sides of a comparison (a torch or diffusers
  upgrade is what ``diffperf ab`` compares) but not within one side or a history, and a trend's
  change points restart where any field changes;
* a case whose scenario definition differs between runs is not comparable, whatever the runs.

Files saved before the schema existed (and plain pytest-benchmark files) are read as one explicit
legacy identity, :data:`LEGACY`: comparable with each other as before, with no run of a schema.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Iterable, Mapping

SCHEMA = 1
"""The version of what diffperf writes into a saved run (machine_info["diffperf"] and each case's extra_info)."""

LEGACY = "legacy"
SETUP = ("schema", "profile", "workload", "host")
SOFTWARE = ("torch", "diffusers", "transformers")
FIELDS = SETUP + SOFTWARE
CASE_FIELDS = ("prompt", "images", "steps", "scheduler", "seed", "resolution", "arguments", "call_changes")
"""A case's definition: its scenario's fields, the scenario's other call arguments and what the variant's speed-ups
changed in each call (diffperf.models.calls.CallPlan.changes); the last two are "-" where there are none."""

Difference = tuple[str, str, str]  # (field, one run's value, the other's)


@dataclass(frozen=True)
class Identity:
    """One run's identity: a value per field of :data:`FIELDS`, as text."""

    values: tuple[str, ...]

    def __getitem__(self, name: str) -> str:
        return self.values[FIELDS.index(name)]

    @property
    def legacy(self) -> bool:
        return self["schema"] == LEGACY

    def differences(self, other: Identity, fields: Iterable[str] = FIELDS) -> list[Difference]:
        """The fields where ``other`` differs from this identity: (field, this value, other's)."""
        return [(name, self[name], other[name]) for name in fields if self[name] != other[name]]


def run_identity(machine_info: Mapping) -> Identity:
    """The identity of a run from its ``machine_info``; :data:`LEGACY` everywhere for a file without a schema."""
    info = machine_info.get("diffperf")
    if not isinstance(info, Mapping) or "schema" not in info:
        return Identity((LEGACY,) * len(FIELDS))
    overrides = info.get("workload_overrides")
    workload = json.dumps(dict(overrides), sort_keys=True) if isinstance(overrides, Mapping) and overrides else \
        "the profile's own"
    values = {"schema": str(info["schema"]), "profile": str(info.get("profile")), "workload": workload,
              "host": str(info.get("host_key")), **{name: str(info.get(name)) for name in SOFTWARE}}
    return Identity(tuple(values[name] for name in FIELDS))


def case_definition(extra_info: Mapping) -> tuple[str, ...]:
    """A case's scenario definition, as text per field of :data:`CASE_FIELDS` ("-" where not recorded or empty: a
    run saved before a field existed reads as one without it)."""
    return tuple(_definition_text(extra_info.get(name)) for name in CASE_FIELDS)


def _definition_text(value) -> str:
    if value is None or value == {} or value == []:
        return "-"
    if isinstance(value, Mapping):
        return json.dumps(value, sort_keys=True)
    return str(value)


def definition_differences(one: Mapping, other: Mapping) -> list[Difference]:
    """The scenario fields two cases' ``extra_info`` differ in."""
    return [(name, a, b) for name, a, b in zip(CASE_FIELDS, case_definition(one), case_definition(other)) if a != b]


def first_difference(identities: list[Identity], fields: Iterable[str] = FIELDS) -> tuple[int, Difference] | None:
    """The first run (index) whose identity differs from the one before it, and the first such field; None if
    all agree."""
    fields = tuple(fields)
    for index in range(1, len(identities)):
        found = identities[index - 1].differences(identities[index], fields)
        if found:
            return index, found[0]
    return None
