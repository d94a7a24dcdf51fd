"""A suite's declarations: the families and variants a ``pytest SUITE`` run would know.

pytest collects the suite (its ``conftest.py`` files and installed plugins declare through the
``pytest_diffperf_declare`` hook) and the run's registry is taken from the diffperf plugin at the end
of collection. Nothing is built or measured.
"""

from __future__ import annotations

import contextlib
import io

import pytest

from diffperf.models.builtin import builtin_registry
from diffperf.models.registry import Registry
from diffperf.options import check_suite

# The name diffperf.plugin registers its plugin object under (its PLUGIN_NAME: the plugin sits above this layer).
PLUGIN_NAME = "diffperf-run"


class _Grab:
    """Takes the run's registry at the end of collection, or the one line saying why it cannot work."""

    def __init__(self) -> None:
        self.registry: Registry | None = None
        self.error: str | None = None

    @pytest.hookimpl(tryfirst=True)  # before the plugin ends the run over a declaration that cannot work
    def pytest_collection_finish(self, session) -> None:
        plugin = session.config.pluginmanager.get_plugin(PLUGIN_NAME)
        try:
            self.registry = plugin.registry()
        except (ValueError, TypeError) as error:
            self.error = str(error)


def suite_registry(suite: str | None) -> Registry:
    """The families and variants a ``pytest SUITE`` run would know (its conftest.py declarations included),
    or the built-in ones alone when ``suite`` is None. Collects the suite; builds nothing.

    A one-line ValueError when the suite is not a directory or a Python file (before collecting anything), when a
    declaration cannot work or the suite cannot be collected."""
    if suite is None:
        return builtin_registry()
    check_suite(suite)
    grab = _Grab()
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        code = pytest.main([suite, "--collect-only", "-q", "-p", "no:cacheprovider"], plugins=[grab])
    if grab.error is not None:
        raise ValueError(f"{suite}: {grab.error}")
    if grab.registry is None:
        lines = [line for line in output.getvalue().splitlines() if line.strip()]
        raise ValueError(f"collecting {suite} failed (pytest exit {int(code)}): {lines[-1] if lines else 'no output'}")
    return grab.registry

