"""The names of variants and scenarios, and the case each pair makes.

A variant's and a scenario's names make its case's id (``VARIANT-SCENARIO``: the pytest id and the image
baselines' file names) and its expectation's key (``VARIANT/SCENARIO``), so they keep to characters every file
system and pytest's ``-k`` take as they are.
"""

from __future__ import annotations

import re

NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
"""ASCII letters, digits, ``-``, ``.`` and ``_``, starting with a letter, a digit or ``_`` (no option-like ``-x``,
no hidden file, no ``..``)."""


def check_name(what: str, name: str) -> None:
    """One-line ValueError unless ``name`` (of a ``what``: variant, scenario) keeps to :data:`NAME`."""
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise ValueError(f"{what} name {name!r}: use letters, digits, '-', '.' and '_', starting with a letter, a "
                         "digit or '_' (it names the case, its baseline files and its expectation)")


def case_name(variant: str, scenario: str) -> str:
    """The id of a variant's case on a scenario: its pytest id and its image baselines' file name."""
    return f"{variant}-{scenario}"
