"""diffperf's pytest hooks (registered by the plugin with ``pytest_addhooks``)."""

import pytest


@pytest.hookspec(historic=True)
def pytest_diffperf_declare(registry):
    """Declare model families and variants for ``pytest perf``.

    Implement it in a ``conftest.py`` beside your suite, or in an installed pytest plugin::

        def pytest_diffperf_declare(registry):
            registry.add(Variant("my-speedup", "sd1", (MySpeedUp(),), reference="baseline"))

    ``registry`` is a :class:`diffperf.models.registry.Registry`; diffperf declares its own
    families (SD v1, SDXL) through this very hook. docs/extending.md has the whole API.
    """
