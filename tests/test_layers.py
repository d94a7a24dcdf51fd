"""The layers import only downward: pyproject.toml's import-linter contract holds (imports inside functions count)."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_linter_contract_holds():
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter), "--no-cache", "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout


def test_an_upward_import_breaks_it(tmp_path):
    """The contract is not vacuous: the same check on a copy of the package with one upward import fails."""
    package = tmp_path / "diffperf"
    subprocess.run(["cp", "-r", str(ROOT / "src" / "diffperf"), str(package)], check=True)
    ratios = package / "stats" / "ratios.py"
    ratios.write_text(ratios.read_text() + "\n\ndef _upward():\n    from diffperf.render import table  # noqa: F401\n")
    config = tmp_path / "pyproject.toml"
    config.write_text((ROOT / "pyproject.toml").read_text())
    linter = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run([str(linter), "--no-cache", "--config", str(config)], cwd=tmp_path,
                            capture_output=True, text=True, check=False, env={"PYTHONPATH": str(tmp_path), "PATH": ""})
    assert result.returncode != 0, result.stdout + result.stderr
    assert "diffperf.stats.ratios -> diffperf.render.table" in result.stdout
