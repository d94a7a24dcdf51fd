"""Changes planted on purpose, to show that a check catches them: one :class:`Plants` value per run.

Each plant says what it changes (its :class:`Kind`: ``--perf-plant-slowdown``, ``--perf-plant-memory`` or
``--perf-plant-perturbation``), where (a variant, or ``*`` for every variant where the kind allows it) and
how much. The options read them (:meth:`Plants.parsed`), the pipeline store applies them
(:meth:`diffperf.models.store.PipelineStore.models`), a run records them in its ``machine_info``
(:meth:`Plants.record`) and a saved run reads them back from there (:meth:`Plants.from_record`).

Light: no torch import (the options read plants before torch is imported).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

EVERY_VARIANT = "*"  # --perf-plant-slowdown / --perf-plant-memory *=FRACTION: every variant's UNet


@dataclass(frozen=True)
class Kind:
    """What a plant changes: the option that plants it, the ``machine_info`` key a run records it under, the
    amounts it takes and, for a saved run's warnings, what it did to the variants."""

    option: str
    record_key: str
    limit: float  # amounts lie strictly between 0 and this
    limit_text: str  # the refusal of an amount outside them, after "{option} {variant}={amount}: "
    every_variant: bool  # ``*`` plants it in every variant
    measured: bool  # it changes what the speed-up and memory gates measure: such a run is never calibrated from
    did: str  # "slowed": what it did to the variants


SLOWDOWN = Kind("--perf-plant-slowdown", "planted_slowdowns", 10, "the fraction must be between 0 and 10",
                every_variant=True, measured=True, did="slowed")
MEMORY = Kind("--perf-plant-memory", "planted_memory", 10, "the fraction must be between 0 and 10",
              every_variant=True, measured=True, did="made to hold more memory")
PERTURBATION = Kind("--perf-plant-perturbation", "planted_perturbations", 1,
                    "the relative size must be between 0 and 1 (1e-3 is a change a careless kernel makes)",
                    every_variant=False, measured=False, did="perturbed")
KINDS = (SLOWDOWN, MEMORY, PERTURBATION)


@dataclass(frozen=True)
class Plant:
    """One planted change: what it changes, in which variant (or ``*``), and how much."""

    what: Kind
    where: str
    amount: float

    def describe(self) -> str:
        """``--perf-plant-slowdown distilled=0.5``, as the option is given."""
        return f"{self.what.option} {self.where}={self.amount:g}"


@dataclass(frozen=True)
class Plants:
    """Every change a run plants, in the order of :data:`KINDS`; empty: none (a normal run)."""

    plants: tuple[Plant, ...] = ()

    @classmethod
    def of(cls, **amounts: Mapping[str, float]) -> "Plants":
        """``Plants.of(slowdown={"distilled": 0.1}, memory={"*": 0.06})``: each kind by its name in :data:`KINDS`."""
        names = {"slowdown": SLOWDOWN, "memory": MEMORY, "perturbation": PERTURBATION}
        unknown = set(amounts) - set(names)
        if unknown:
            raise TypeError(f"no such kind of plant: {', '.join(sorted(unknown))}")
        return cls.by_kind({names[name]: given for name, given in amounts.items()})

    @classmethod
    def by_kind(cls, amounts: Mapping[Kind, Mapping[str, float]]) -> "Plants":
        return cls(tuple(Plant(kind, where, amount) for kind in KINDS
                         for where, amount in (amounts.get(kind) or {}).items()))

    @classmethod
    def parsed(cls, texts: Mapping[Kind, str]) -> "Plants":
        """The plants of each kind's option text (``"distilled=0.1,sdpa=0.2"``); a one-line ValueError naming the
        option for an item that is not VARIANT=NUMBER."""
        amounts = {}
        for kind, text in texts.items():
            found = amounts.setdefault(kind, {})
            for item in filter(None, (part.strip() for part in (text or "").split(","))):
                name, _, value = item.partition("=")
                try:
                    found[name.strip()] = float(value)
                except ValueError:
                    raise ValueError(f"{kind.option} {item!r}: write VARIANT=NUMBER, e.g. distilled=0.1") from None
        return cls.by_kind(amounts)

    @classmethod
    def from_record(cls, info) -> "Plants":
        """The plants a saved run recorded in its ``machine_info["diffperf"]`` (``info``; anything else: none)."""
        if not isinstance(info, Mapping):
            return cls()
        recorded = {kind: info.get(kind.record_key) for kind in KINDS}
        return cls.by_kind({kind: dict(found) for kind, found in recorded.items() if isinstance(found, Mapping)})

    def __bool__(self) -> bool:
        return bool(self.plants)

    def of_kind(self, kind: Kind) -> dict[str, float]:
        """``{variant or "*": amount}`` of one kind, as its option was given."""
        return {plant.where: plant.amount for plant in self.plants if plant.what == kind}

    def amount(self, kind: Kind, variant: str) -> float | None:
        """What ``kind`` plants in ``variant``: its own entry, else the ``*`` one where the kind takes it, else None."""
        found = self.of_kind(kind)
        every = found.get(EVERY_VARIANT) if kind.every_variant else None
        return found.get(variant, every)

    def measured(self) -> "Plants":
        """The plants that change what the gates measure (a run with any is never calibrated from or stored)."""
        return Plants(tuple(plant for plant in self.plants if plant.what.measured))

    def variant_names(self) -> set[str]:
        """The variants named (``*`` left out where the kind takes it: the registry knows every other name)."""
        return {plant.where for plant in self.plants if not (plant.what.every_variant and plant.where == EVERY_VARIANT)}

    def check(self) -> None:
        """A one-line ValueError for an amount outside its kind's range."""
        for plant in self.plants:
            if not 0 < plant.amount < plant.what.limit:
                raise ValueError(f"{plant.what.option} {plant.where}={plant.amount}: {plant.what.limit_text}")

    def record(self) -> dict:
        """What a run's ``machine_info["diffperf"]`` records: each kind's ``{variant: amount}`` under its key, None
        for a kind not planted (a run planted with any slowdown or memory is never calibrated from)."""
        return {kind.record_key: self.of_kind(kind) or None for kind in KINDS}

    def text(self) -> str:
        """'--perf-plant-slowdown distilled=0.5: those variants were slowed on purpose', one clause per kind."""
        return "; ".join(
            f"{kind.option} {','.join(f'{name}={amount}' for name, amount in self.of_kind(kind).items())}: those "
            f"variants were {kind.did} on purpose" for kind in KINDS if self.of_kind(kind))
