"""The catalogue of variants: each one's family, what it changes, its components' parameter counts, and whether
it runs on a device (``diffperf variants``). Parameter counts come from meta-device builds: nothing is loaded."""

from __future__ import annotations

import torch

from diffperf.models import zoo
from diffperf.models.builtin import builtin_registry
from diffperf.models.registry import Registry


def variants_table(profile: str, device: torch.device, registry: Registry | None = None) -> list[dict]:
    """Each variant of ``registry`` (the built-in one when None): its family, what it changes, its components'
    parameter counts under ``profile``, whether it runs on ``device`` and why not."""
    registry = registry or builtin_registry()
    source = zoo.make_source(profile, torch.device("meta"))
    counts: dict[tuple[str, str], int] = {}
    rows = []
    for variant in registry.variants.values():
        family = registry.family(variant.family)
        plan = variant.plan(family)
        parameters = {}
        for slot, name in plan.components.items():
            if zoo.is_tokenizer(family.component(name)):
                continue
            if (family.name, name) not in counts:
                counts[family.name, name] = zoo.count_parameters(source.build(family, name, meta=True))
            parameters[name] = counts[family.name, name]
        enabled = frozenset({variant.opt_in.option}) if variant.opt_in else frozenset()
        reason = registry.skip_reason(variant, None, device, enabled)
        rows.append({
            "variant": variant.name,
            "family": variant.family,
            "changes": variant.describe(),
            "speedups": [speedup.name for speedup in variant.speedups],
            "reference": variant.reference,
            "dtype": plan.dtype,
            "parameters": parameters,
            "runs_here": reason is None,
            "why_not": reason,
            # the option it needs on this device (the optional speed-ups are opt-in on some devices only)
            "opt_in": variant.opt_in.option if variant.opt_in and variant.opt_in.applies(device.type) else None,
            "opt_in_why": variant.opt_in.why if variant.opt_in else None,
            "best_stack": variant.best_stack,
        })
    return rows
