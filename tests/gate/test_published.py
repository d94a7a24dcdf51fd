"""Published figures: shown beside CUDA runs of the full profile, and judged on an uncalibrated GPU of their kind."""

import dataclasses

import pytest

from diffperf.gate import published
from diffperf.gate.expectations import PUBLISHED
from diffperf.measure.host import Host
from diffperf.models import sd1
from diffperf.options import PerfOptions
from diffperf.run_end import Measured, judge

from test_verdicts import paired_case

A100 = Host("cuda", "NVIDIA A100-SXM4-80GB", "x1", {"torch": "2.13.0+cu128", "gpu": "NVIDIA A100-SXM4-80GB"})
H100 = Host("cuda", "NVIDIA H100 80GB HBM3", "x1", {"torch": "2.13.0+cu128", "gpu": "NVIDIA H100 80GB HBM3"})


def test_the_documents_figures_are_declared_against_each_variants_own_reference():
    figures = {(variant.name, figure.scenario): (variant.reference, figure.speedup, figure.gpu)
               for variant in sd1.VARIANTS for figure in variant.published}
    assert figures == {
        ("tf32", "astronaut"): ("baseline", 1.273, "A100"),  # 5.27 s -> 4.14 s
        ("fp16", "astronaut"): ("baseline", 1.501, "A100"),  # -> 3.51 s
        ("tf32-fp16", "astronaut"): ("baseline", 1.545, "A100"),  # -> 3.41 s
        ("distilled-fp16", "vase"): ("fp16", 1.524, "A100"),  # 6.37 s -> 4.18 s
        ("distilled-taesd-fp16", "vase"): ("distilled-fp16", 1.091, "A100"),  # 4.18 s -> 3.83 s
    }


def figure(result, value=1.5, gpu="A100"):
    return dataclasses.replace(result, published=value, published_on=gpu)


def judged(results, host, tmp_path):
    options = PerfOptions(baselines_dir=str(tmp_path), baselines_given=True)
    return judge(Measured(results, {}, [], host, "full"), options)


def test_an_uncalibrated_a100_is_judged_against_the_published_figures_with_a_wide_band(tmp_path):
    unchanged = judged([figure(paired_case(1.45))], A100, tmp_path)
    assert unchanged.report.expectations.source == PUBLISHED and unchanged.exit_code is None
    text = " ".join(line.strip() for line in unchanged.lines)
    assert f"with a ±{published.TOLERANCE:.0%} band, stated not measured" in text and A100.key in text
    assert "distilled/astronaut: published x1.50 on A100; here x1.4" in text
    assert unchanged.lines[-1] == "speed-up gate: passed (1 ok)"

    halved = judged([figure(paired_case(1.5, slowdown=1.0))], A100, tmp_path)  # x0.75 against x1.50
    assert halved.exit_code == pytest.ExitCode.TESTS_FAILED and halved.lines[-1].startswith("speed-up gate: FAILED")


def test_other_gpus_show_the_figure_but_are_not_judged_by_it(tmp_path):
    result = judged([figure(paired_case(1.2))], H100, tmp_path)
    assert result.report.expectations is None and result.exit_code is None
    assert any("published x1.50 on A100; here x1.2" in line for line in result.lines)
    assert published.published_expectations([figure(paired_case(1.2))], H100) is None
    cpu = Host("cpu", "AMD EPYC", "2t", {})
    assert published.published_expectations([figure(paired_case(1.2), gpu="A100")], cpu) is None


def test_a_calibration_replaces_the_published_figures(tmp_path):
    from diffperf.gate import expectations

    expectations.record(tmp_path, "full", "hosts", A100.key, {"fingerprint": A100.fingerprint},
                        {"distilled/astronaut": {"reference": "baseline", "expected": 1.2, "tolerance": 0.03,
                                                 "run_sd": 0.01, "between_sd": 0.005, "processes": 10,
                                                 "half_width": 0.02}}, {})
    result = judged([figure(paired_case(1.2))], A100, tmp_path)
    assert result.report.expectations.source == expectations.HOST and result.lines[-1] == "speed-up gate: passed (1 ok)"


def test_the_early_look_and_the_gate_judge_an_uncalibrated_a100_against_the_same_published_figure(tmp_path):
    """One function gives a run its expectations (diffperf.run_end.run_expectations): the early look of a case and
    the gate at the end of the run both see the figure published for it on an A100 that has no calibration."""
    from types import SimpleNamespace

    from diffperf.cases.latency import looked_against
    from diffperf.gate.rounds import RoundPolicy
    from diffperf.models.builtin import builtin_registry
    from diffperf.session import Case, PerfSession

    registry = builtin_registry()
    fp16, astronaut = registry.variant("fp16"), registry.scenario("fp16", "astronaut")
    (figure,) = fp16.published
    case = Case(fp16, registry.variant("baseline"), astronaut, astronaut, figure, tolerance=None)
    options = PerfOptions(profile="full", min_rounds=6, baselines_dir=str(tmp_path), baselines_given=True)
    # An A100's session, as far as the early look reads it: nothing calibrated in tmp_path.
    session = SimpleNamespace(options=options, profile_name="full", host=A100, policy=RoundPolicy.for_profile(
        "full", min_rounds=6))
    session.stored_expectations = PerfSession.stored_expectations.func(session)  # as the session reads it once
    session.expectation = lambda case: PerfSession.expectation(session, case)
    early = looked_against(session, case, reference=lambda: None)
    measured = paired_case(figure.speedup)
    gate = judge(Measured([case.result("baseline", measured.variant_rounds, measured.reference_rounds)], {}, [], A100,
                          "full"), options)
    assert gate.report.expectations.source == PUBLISHED
    assert early is not None and early == gate.report.expectations.speedups[case.id]
    assert (early.expected, early.tolerance) == (figure.speedup, published.TOLERANCE)
