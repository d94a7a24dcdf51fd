"""The GitHub workflows: valid against GitHub's schema, pinned, bounded, and running the README's commands."""

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
WORKFLOWS = sorted((ROOT / ".github" / "workflows").glob("*.yml"))
README = (ROOT / "README.md").read_text()


def load(path):
    return yaml.safe_load(path.read_text())


def steps(workflow):
    for job in workflow["jobs"].values():
        yield from job.get("steps", [])


def test_there_are_the_two_workflows():
    assert {path.name for path in WORKFLOWS} >= {"ci.yml", "perf-gpu.yml"}


@pytest.mark.skipif(importlib.util.find_spec("check_jsonschema") is None,
                    reason="check-jsonschema is not installed: pip install -e '.[dev]'")
@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_workflow_matches_githubs_schema(path):
    result = subprocess.run(
        [sys.executable, "-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True, text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_actions_are_pinned_and_jobs_have_timeouts(path):
    workflow = load(path)
    for step in steps(workflow):
        if "uses" in step:
            assert re.search(r"@(v\d+\.\d+\.\d+|[0-9a-f]{40})$", step["uses"]), f"{step['uses']} is not pinned to a version"
    for name, job in workflow["jobs"].items():
        assert job.get("timeout-minutes"), f"{path.name}: job {name} has no timeout"


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_commands_that_install_or_run_are_the_readmes(path):
    for step in steps(load(path)):
        run = " ".join(step.get("run", "").split())
        for command in re.split(r"\s*\|\s*|\n", run):
            if command.startswith(("python3 -m venv", ".venv/bin/pytest", ".venv/bin/diffperf")):
                words = command.split()
                program = " ".join(words[:2])
                assert program in README, f"{path.name} runs `{command}`, which README.md does not give"
                if command.startswith("python3 -m venv"):
                    assert command in " ".join(README.split()), f"{path.name}: `{command}` is not the README's"


def test_gpu_workflow_gates_pull_requests_without_changing_baselines():
    workflow = load(ROOT / ".github" / "workflows" / "perf-gpu.yml")
    triggers = workflow[True] if True in workflow else workflow["on"]  # YAML 1.1 reads `on` as True
    assert {"pull_request", "workflow_dispatch"} <= set(triggers)
    assert workflow["concurrency"]["cancel-in-progress"] is False
    ab, perf = workflow["jobs"]["ab"], workflow["jobs"]["perf"]
    assert "gpu" in ab["runs-on"] and "self-hosted" in ab["runs-on"]
    # the main-branch suite runs once per GPU kind: a matrix over runner label sets, one repository variable
    assert perf["runs-on"] == "${{ matrix.runner }}" and perf["strategy"]["fail-fast"] is False
    runners = perf["strategy"]["matrix"]["runner"]
    assert "vars.DIFFPERF_GPU_RUNNERS" in runners and '[["self-hosted", "linux", "gpu"]]' in runners
    gather = workflow["jobs"]["gather"]
    gather_runs = " ".join(step.get("run", "") for step in gather["steps"])
    assert gather["needs"] == "perf" and "diffperf gather hosts/*/run.json" in gather_runs
    assert "pull_request" in ab["if"] and "pull_request" in perf["if"]  # A/B on pull requests, the rest otherwise
    ab_runs = " ".join(step.get("run", "") for step in ab["steps"])
    # Both revisions side by side on the one runner, alternating processes, gating on their difference.
    assert "github.event.pull_request.base.sha" in str(ab["steps"])
    assert "diffperf ab --base-python ../base/.venv/bin/python" in ab_runs and "--fail-on-regression" in ab_runs
    assert "--benchmark-json" in ab_runs and "--perf-report" in ab_runs
    perf_runs = " ".join(step.get("run", "") for step in perf["steps"])
    assert "diffperf trend history/runs" in perf_runs and "diffperf calibrate --processes 5" in perf_runs
    assert "diffperf store-runs perf-output/run.json --branch perf-history --remote origin" in perf_runs
    update = workflow["jobs"]["update-baselines"]
    assert "workflow_dispatch" in update["if"] and "inputs.update-baselines" in update["if"]
    assert "pull_request" not in update["if"]


@pytest.mark.parametrize("path", WORKFLOWS, ids=lambda path: path.name)
def test_the_gates_section_reaches_the_job_summary_once(path):
    """pytest perf appends the gate's section to $GITHUB_STEP_SUMMARY itself: no step appends its
    --perf-summary file there again."""
    for name, job in load(path)["jobs"].items():
        runs = [" ".join(step.get("run", "").split()) for step in job.get("steps", [])]
        summaries = {Path(match).name for run in runs for match in re.findall(r"--perf-summary (\S+)", run)}
        for run in runs:
            if "GITHUB_STEP_SUMMARY" in run:
                assert not [summary for summary in summaries if summary in run], \
                    f"{path.name}: job {name} appends the gate's summary to the job summary a second time: `{run}`"


def test_the_ab_tables_reach_the_job_summary():
    ab = load(ROOT / ".github" / "workflows" / "perf-gpu.yml")["jobs"]["ab"]
    assert any("ab.md" in step.get("run", "") and "GITHUB_STEP_SUMMARY" in step.get("run", "")
               for step in ab["steps"])


def test_cpu_workflow_runs_unit_tests_and_the_tiny_suite():
    workflow = load(ROOT / ".github" / "workflows" / "ci.yml")
    runs = [step.get("run", "") for step in steps(workflow)]
    assert any(".venv/bin/pytest tests" in run for run in runs)
    assert any(run.rstrip().endswith(".venv/bin/pytest perf") for run in runs)
    triggers = workflow[True] if True in workflow else workflow["on"]
    assert "push" in triggers
