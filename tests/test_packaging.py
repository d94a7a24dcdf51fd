"""pyproject.toml's dependency floors: none may claim a version the suite does not work with."""

from pathlib import Path

import pytest
from packaging.requirements import Requirement

tomllib = pytest.importorskip("tomllib")

PROJECT = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())["project"]


def requirement(name: str) -> Requirement:
    listed = PROJECT["dependencies"] + [item for extra in PROJECT["optional-dependencies"].values() for item in extra]
    (found,) = [Requirement(item) for item in listed if Requirement(item).name == name]
    return found


@pytest.mark.parametrize("older", ["4.0", "5.2"])
def test_pytest_benchmark_floor_takes_benchmark_json_as_a_path(older):
    """--perf-report sets --benchmark-json to a path: pytest-benchmark before 5.3 declares it an open file."""
    assert not requirement("pytest-benchmark").specifier.contains(older)
