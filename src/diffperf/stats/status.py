"""Statuses: what a verdict or a comparison decided, as one vocabulary the gate, compare and rendering share.

A :class:`Status` is a ``str`` (its value), so it is stored in JSON as that word and compares equal
to it; :mod:`diffperf.render` decides how each is shown.
"""

from __future__ import annotations

from enum import Enum


class Status(str, Enum):
    # A ratio judged against its expectation (diffperf.stats.ratios, diffperf.gate.verdicts).
    REGRESSED = "regressed"
    IMPROVED = "improved"
    OK = "ok"
    INCONCLUSIVE = "inconclusive"
    UNCHECKED = "unchecked"  # no verdict: too few rounds, nothing stored, nothing timed
    ERROR = "error"  # the expectation cannot apply (its reference changed)
    # A change between saved runs (diffperf.history.compare).
    SLOWER = "slower"
    FASTER = "faster"
    LOWER = "lower"
    HIGHER = "higher"
    NO_CHANGE = "no change"
    UNTESTED = "untested"
    NOT_COMPARABLE = "not comparable"

    # The word itself wherever it is printed, hashed and formatted (Enum's own would be "Status.OK").
    __hash__ = str.__hash__

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)


FAILING = (Status.REGRESSED, Status.ERROR)
"""Gate statuses that fail a run."""
