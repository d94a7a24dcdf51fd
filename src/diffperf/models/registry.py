"""The registry: the families and variants one run knows, built-in and the user's alike.

Every ``pytest perf`` run gets a new registry, filled through the ``pytest_diffperf_declare`` hook
(diffperf.hookspec): diffperf's plugin declares the built-in families there, and a
``conftest.py`` or an installed plugin declares its own the same way (docs/extending.md).
"""

from __future__ import annotations

import torch

from diffperf.models.family import Family
from diffperf.models.names import case_name
from diffperf.models.variants import Variant


class Registry:
    """Families and variants by name, in the order they were declared."""

    def __init__(self):
        self.families: dict[str, Family] = {}
        self.variants: dict[str, Variant] = {}

    def add(self, *items: Family | Variant) -> None:
        """Declare families and variants (a family before the variants of it)."""
        for item in items:
            if isinstance(item, Family):
                self.add_family(item)
            elif isinstance(item, Variant):
                self.add_variant(item)
            else:
                raise TypeError(f"registry.add takes Family and Variant objects, not {type(item).__name__}")

    def add_family(self, family: Family) -> None:
        if family.name in self.families:
            raise ValueError(f"family {family.name!r} is declared twice")
        scenarios = {scenario.name: name for name, known in self.families.items() for scenario in known.scenarios}
        for scenario in family.scenarios:
            if scenario.name in scenarios:
                raise ValueError(f"family {family.name}: scenario {scenario.name!r} is family "
                                 f"{scenarios[scenario.name]}'s already: give it another name")
        self.families[family.name] = family

    def add_variant(self, variant: Variant) -> None:
        if variant.name in self.variants:
            raise ValueError(f"variant {variant.name!r} is declared twice (family {self.variants[variant.name].family} "
                             f"and {variant.family})")
        family = self.family(variant.family)
        variant.plan(family)  # an unknown component fails here, with its name
        variant.unsupported(family)  # and an answer that is not one line
        taken = {case_name(*case): case for case in self.cases()}
        for scenario in family.scenarios:
            other = taken.get(case_name(variant.name, scenario.name))
            if other is not None:
                raise ValueError(f"variant {variant.name} on scenario {scenario.name} and variant {other[0]} on "
                                 f"scenario {other[1]} share the case id {case_name(*other)}: rename one of them (the "
                                 "id names the case's image baselines)")
        self.variants[variant.name] = variant

    def check(self) -> None:
        """Every reference is declared, of the same family, without a cycle; one-line ValueError otherwise."""
        for variant in self.variants.values():
            chain = [variant.name]
            current = variant
            while current.reference is not None:
                if current.reference not in self.variants:
                    raise ValueError(f"variant {current.name} is measured against {current.reference!r}, "
                                     f"which is not declared")
                reference = self.variants[current.reference]
                if reference.family != current.family:
                    raise ValueError(f"variant {current.name} ({current.family}) is measured against "
                                     f"{reference.name} of another family ({reference.family})")
                if reference.name in chain:
                    raise ValueError(f"variant references form a cycle: {' -> '.join(chain + [reference.name])}")
                chain.append(reference.name)
                current = reference

    def family(self, name: str) -> Family:
        try:
            return self.families[name]
        except KeyError:
            raise ValueError(f"unknown family {name!r}: declared are {', '.join(self.families) or 'none'}") from None

    def variant(self, name: str) -> Variant:
        """The declared variant called ``name`` (one-line error listing the names otherwise)."""
        try:
            return self.variants[name]
        except KeyError:
            raise ValueError(f"unknown variant {name!r}: choose one of {', '.join(self.variants)}") from None

    def family_of(self, variant: Variant | str) -> Family:
        return self.family((self.variant(variant) if isinstance(variant, str) else variant).family)

    def reference_chain(self, name: str) -> list[str]:
        """``name`` and the variants it is measured against, transitively (the fp32 baseline last)."""
        chain = [name]
        while (reference := self.variant(chain[-1]).reference) is not None:
            chain.append(reference)
        return chain

    def cases(self) -> list[tuple[str, str]]:
        """Every (variant, scenario) pair, variant by variant, each with its family's scenarios."""
        return [(variant.name, scenario.name)
                for variant in self.variants.values()
                for scenario in self.family(variant.family).scenarios]

    def scenario(self, variant: str, scenario: str):
        return self.family_of(variant).scenario(scenario)

    def skip_reason(self, variant: Variant, scenario: str | None, device: torch.device,
                    enabled: frozenset[str] = frozenset()) -> str | None:
        """Why ``variant`` cannot run on ``scenario`` here (one line), or None; its reference must run too."""
        if scenario is not None:
            declared = self.family(variant.family).scenario(scenario)
            if declared.opt_in is not None:
                reason = declared.opt_in.reason(f"scenario {scenario}", device.type, enabled)
                if reason:
                    return reason
        reason = variant.requirement(device, enabled)
        if reason is not None:
            return reason
        reason = variant.unsupported(self.family(variant.family))
        if reason is not None:
            return reason
        # Its reference runs as its partner whether or not the reference's own cases are opt-in.
        for name in self.reference_chain(variant.name)[1:]:
            reference = self.variant(name).unavailable(device) or self.variant(name).unsupported(self.family_of(name))
            if reference is not None:
                return f"its reference cannot run: {reference}"
        return None
