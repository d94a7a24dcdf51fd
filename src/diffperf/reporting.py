"""The end of a ``pytest perf`` run: the gate's verdicts to the terminal, Markdown and baselines."""

from __future__ import annotations

import os
from pathlib import Path

from diffperf import gate
from diffperf.files import write_json_atomic, write_text_atomic


def run_document(config) -> dict:
    """This run as pytest-benchmark JSON with raw rounds, exactly as ``--benchmark-json`` writes it."""
    benchmark_session = config._benchmarksession  # pytest-benchmark keeps its session there
    hook = config.hook
    commit_info = hook.pytest_benchmark_generate_commit_info(config=config)
    hook.pytest_benchmark_update_commit_info(config=config, commit_info=commit_info)
    document = hook.pytest_benchmark_generate_json(
        config=config,
        benchmarks=benchmark_session.benchmarks,
        include_data=True,
        machine_info=benchmark_session.get_machine_info(),
        commit_info=commit_info,
    )
    hook.pytest_benchmark_update_json(config=config, benchmarks=benchmark_session.benchmarks, output_json=document)
    return document


def write_run_report(perf, config) -> str:
    """--perf-report DIR: the run's JSON and its self-contained HTML report."""
    from diffperf.report import write_report

    directory = Path(perf.options.report_dir)
    document = run_document(config)
    write_json_atomic(directory / "run.json", document)
    images = Path(perf.options.output_dir) / "images"
    path = write_report(document, directory / "report.html", images_dir=images)
    return f"report written to {path}"


def finish_run(perf, config) -> tuple[bool, list[str]]:
    """Judge the run; record expectations with --perf-update-baselines; write the Markdown summaries.

    Returns whether the gate failed and the lines for the terminal summary.
    """
    report = perf.gate_report()
    lines = gate.terminal_lines(report)
    failed = report.failed
    if perf.options.update_baselines:
        lines += perf.record_expectations()
        failed = False  # recording is the point of the run; the verdicts above were against the old values
    text = gate.markdown(report)
    if perf.options.summary_path:
        write_text_atomic(perf.options.summary_path, text)
        lines.append(f"summary written to {perf.options.summary_path}")
    step_summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if step_summary:
        with Path(step_summary).open("a") as stream:  # GitHub's file: append, as actions do
            stream.write(text)
    if perf.options.report_dir:
        lines.append(write_run_report(perf, config))
    return failed, lines
