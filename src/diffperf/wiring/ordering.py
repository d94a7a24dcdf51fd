"""Run order of the collected ``perf`` cases (light: no torch import)."""

from __future__ import annotations


CASE_ARGUMENTS = ("variant", "scenario")


def is_perf_case(metafunc) -> bool:
    """Whether diffperf parametrizes this test: it uses ``perf_session`` and takes ``variant`` and
    ``scenario``, which no ``parametrize`` mark of its own gives."""
    names = set(metafunc.fixturenames)
    if "perf_session" not in names or not set(CASE_ARGUMENTS) <= names:
        return False
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0] if mark.args else mark.kwargs.get("argnames", ())
        if isinstance(argnames, str):
            argnames = [name.strip() for name in argnames.split(",")]
        if set(argnames) & set(CASE_ARGUMENTS):
            return False
    return True


def variant_of(item) -> str | None:
    """The ``variant`` parameter of a collected perf case (one using ``perf_session``), or None."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or "perf_session" not in getattr(item, "fixturenames", ()):
        return None
    return callspec.params.get("variant")


def group_by_variant(items: list) -> None:
    """Reorder ``items`` in place so each variant's cases run together, across test files.

    A stable sort: a variant's cases move up to where its first case was collected (so the
    variants keep their declared order and each file's cases their order within a variant);
    cases without a variant keep their place. The session then builds each variant's models once
    and releases them after its last case, whichever file its cases come from.
    """
    first: dict[str, int] = {}
    keys = []
    for position, item in enumerate(items):
        variant = variant_of(item)
        if variant is None:
            keys.append(position)
        else:
            keys.append(first.setdefault(variant, position))
    order = sorted(range(len(items)), key=lambda position: (keys[position], position))
    items[:] = [items[position] for position in order]
