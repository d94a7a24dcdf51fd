"""Opt-in: a variant or scenario that runs only when an option asks for it, on some device types."""

from __future__ import annotations

from dataclasses import dataclass

OPTIONS = ("--perf-speedups", "--perf-compile")
"""The options that enable opt-in cases (diffperf.options declares them)."""


@dataclass(frozen=True)
class OptIn:
    """Runs only with ``option`` on ``devices``; ``why`` says in a few words why it is left out by default."""

    option: str = "--perf-speedups"
    devices: tuple[str, ...] = ("cpu", "cuda")
    why: str | None = None

    def __post_init__(self):
        if self.option not in OPTIONS:
            raise ValueError(f"opt-in option {self.option!r}: choose one of {', '.join(OPTIONS)}")

    def applies(self, device_type: str) -> bool:
        return device_type in self.devices

    def reason(self, name: str, device_type: str, enabled: frozenset[str]) -> str | None:
        """Why ``name`` does not run here (one line), or None when it runs."""
        if not self.applies(device_type) or self.option in enabled:
            return None
        where = "" if {"cpu", "cuda"} <= set(self.devices) else f" on {device_type}"
        why = f" ({self.why})" if self.why else ""
        return f"{name} is opt-in{where}{why}: pass {self.option}"


# The reasons the built-in families leave variants out of the CPU's default run (docs/variants.md).
SLOWER_ON_CPUS = OptIn(devices=("cpu",), why="slower than fp32 on CPUs; time budget")
NO_FASTER_ON_TINY = OptIn(devices=("cpu",), why="no faster on the tiny CPU profile")
TIME_BUDGET = OptIn(devices=("cpu",), why="time budget")
SLOW_TO_BUILD = OptIn("--perf-compile", why="slow to build")
