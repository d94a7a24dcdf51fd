"""A suite's declarations (diffperf.cases.declarations): the registry a ``pytest SUITE`` run would know."""

import re

import pytest

from diffperf import cli
from diffperf.cases.declarations import suite_registry
from diffperf.models.builtin import builtin_registry

BUILTIN = list(builtin_registry().variants)
DECLARE = '''
from diffperf.models.speedups import Attention
from diffperf.models.variants import Variant


def pytest_diffperf_declare(registry):
    registry.add(Variant("mine", "sd1", (Attention("classic"),), REFERENCE))
'''


def suite(tmp_path, reference="baseline", conftest=None):
    directory = tmp_path / "suite"
    directory.mkdir()
    (directory / "conftest.py").write_text(conftest or DECLARE.replace("REFERENCE", repr(reference)))
    return str(directory)


def test_no_suite_is_the_builtin_registry():
    assert list(suite_registry(None).variants) == BUILTIN


def test_a_suite_adds_its_conftest_declarations(tmp_path, suite_imports, capsys):
    registry = suite_registry(suite(tmp_path))
    assert list(registry.variants) == [*BUILTIN, "mine"]
    assert registry.variant("mine").reference == "baseline" and registry.family_of("mine").name == "sd1"
    assert capsys.readouterr() == ("", "")  # pytest's collection output is kept from the caller's streams


def test_a_declaration_that_cannot_work_is_one_line(tmp_path, suite_imports):
    path = suite(tmp_path, reference="nope")
    with pytest.raises(ValueError) as error:
        suite_registry(path)
    assert str(error.value) == f"{path}: variant mine is measured against 'nope', which is not declared"


def test_a_suite_that_cannot_be_collected_says_how_pytest_ended(tmp_path, suite_imports):
    path = suite(tmp_path, conftest="raise ImportError('no such thing')\n")
    with pytest.raises(ValueError, match=rf"^collecting {path} failed \(pytest exit \d+\): \S"):
        suite_registry(path)


def test_speedups_given_as_a_string_are_one_line(tmp_path, suite_imports):
    path = suite(tmp_path, conftest=DECLARE.replace('(Attention("classic"),)', '"sdpa"').replace("REFERENCE",
                                                                                                  "'baseline'"))
    with pytest.raises(ValueError) as error:
        suite_registry(path)
    assert str(error.value) == (f"{path}: variant mine: speedups 'sdpa' is a str, not a list of speed-ups: give "
                                "SpeedUp objects, e.g. [Attention('sdpa')]")


def test_a_suite_that_does_not_exist_is_refused_before_collecting(tmp_path, capsys):
    missing = str(tmp_path / "nonexistent")
    line = f"suite {missing} does not exist: give the directory of its conftest.py"
    with pytest.raises(ValueError, match=rf"^{re.escape(line)}$"):
        suite_registry(missing)
    assert cli.main(["variants", "--suite", missing]) == 2
    assert capsys.readouterr() == ("", f"diffperf: {line}\n")


def test_a_suite_that_is_a_plain_file_is_refused_before_collecting(tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not a suite\n")
    with pytest.raises(ValueError, match=rf"^suite {re.escape(str(notes))} is neither a directory nor a Python file: "
                                         r"give the directory of its conftest\.py$"):
        suite_registry(str(notes))
