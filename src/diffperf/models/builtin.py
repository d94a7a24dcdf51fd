"""The families and variants diffperf ships, declared through the public API like any user's."""

from __future__ import annotations

from diffperf.models import flux, sd1, sd3, sdxl
from diffperf.models.registry import Registry


def declare(registry: Registry) -> None:
    sd1.declare(registry)
    sdxl.declare(registry)
    flux.declare(registry)
    sd3.declare(registry)


def builtin_registry() -> Registry:
    """A registry with the built-in families only (tools and tests; a run's registry also has the user's)."""
    registry = Registry()
    declare(registry)
    registry.check()
    return registry
