"""The speed-up gate on synthetic paired rounds, and the expected speed-up store."""

import json

import numpy as np
import pytest

from diffperf import expectations, gate
from diffperf.expectations import Expectation, ExpectationsError, HardwareExpectations

CPU = {"device_type": "cpu", "device_name": "AMD EPYC 7B13", "device_count": 1, "threads": 2}
GPU = {"device_type": "cuda", "device_name": "NVIDIA H100 80GB HBM3", "device_count": 1, "threads": 16}


def paired_case(speedup, slowdown=0.0, n=12, noise=0.01, seed=0, variant="distilled", scenario="astronaut"):
    """Reference and variant rounds with a shared drift, the variant ``speedup`` times faster."""
    rng = np.random.default_rng(seed)
    drift = 1 + 0.05 * np.sin(np.arange(n))  # shared by both members of a pair
    reference = 0.2 * drift * np.exp(rng.normal(0, noise, n))
    variant_times = 0.2 / speedup * (1 + slowdown) * drift * np.exp(rng.normal(0, noise, n))
    return gate.CaseResult(variant, "baseline", scenario, list(variant_times), list(reference), 100, 200)


def stored(expected=1.5, tolerance=0.05, memory=0.5):
    case = expectations.case_id("distilled", "astronaut")
    return HardwareExpectations(
        key="cpu-test-2t",
        recorded={},
        speedups={case: Expectation("baseline", expected, tolerance)},
        memory={case: Expectation("baseline", memory, 0.1)},
    )


def verdict(report, kind="speed-up"):
    return next(row for row in report.rows if row.kind == kind)


@pytest.mark.parametrize("slowdown", [0.10, 0.20, 0.30])
def test_planted_slowdown_fails_the_gate(slowdown):
    report = gate.evaluate([paired_case(1.5, slowdown)], stored(tolerance=0.05), "note")
    row = verdict(report)
    assert row.status == "regressed", row.message
    assert report.failed
    assert "below expected" in row.message


def test_unchanged_run_passes():
    report = gate.evaluate([paired_case(1.5)], stored(tolerance=0.05), "note")
    assert verdict(report).status == "ok"
    assert not report.failed
    assert verdict(report).low <= 1.5 <= verdict(report).high


def test_faster_run_is_improved_and_does_not_fail():
    report = gate.evaluate([paired_case(1.5, slowdown=-0.3)], stored(tolerance=0.05), "note")
    assert verdict(report).status == "improved"
    assert "--perf-update-baselines" in verdict(report).message
    assert not report.failed


def test_noisy_run_near_threshold_is_inconclusive_with_rounds_needed():
    report = gate.evaluate([paired_case(1.5, slowdown=0.05, noise=0.08, n=8)], stored(tolerance=0.05), "note")
    row = verdict(report)
    assert row.status == "inconclusive"
    assert row.rounds_needed is None or row.rounds_needed > 8


def test_too_few_rounds_gives_no_verdict_and_says_how_many():
    report = gate.evaluate([paired_case(1.5, n=4)], stored(), "note")
    row = verdict(report)
    assert row.status == "unchecked"
    assert "--perf-rounds 6" in row.message
    assert not report.failed
    assert any("UNCHECKED: speed-up distilled/astronaut: no verdict" in line for line in gate.terminal_lines(report))


def test_memory_ratio_regression_fails():
    case = paired_case(1.5)
    case.peak_memory = 200  # lost the memory saving: ratio 1.0 against expected 0.5
    row = verdict(gate.evaluate([case], stored(), "note"), kind="memory")
    assert row.status == "regressed"
    assert row.value == pytest.approx(1.0)


def test_no_expectations_gates_nothing():
    report = gate.evaluate([paired_case(1.5, slowdown=0.5)], None, "no expected speed-ups")
    assert {row.status for row in report.rows} == {"unchecked"}
    assert not report.failed


def test_stored_case_that_did_not_run_is_reported():
    other = paired_case(1.5, scenario="vase")
    report = gate.evaluate([other], stored(), "note", skipped={"distilled/astronaut": "needs a CUDA GPU"})
    assert report.problems == ["distilled/astronaut has a stored expectation but did not run (needs a CUDA GPU)"]


def test_reference_changed_since_recording_is_an_error():
    case = paired_case(1.5)
    case.reference = "fp16"
    row = verdict(gate.evaluate([case], stored(), "note"))
    assert row.status == "error" and "re-record" in row.message


def test_markdown_and_terminal_name_the_regression():
    report = gate.evaluate([paired_case(1.5, 0.3)], stored(), "gating against cpu-test-2t")
    text = gate.markdown(report)
    assert "failed" in text and "| speed-up | distilled vs baseline | astronaut |" in text
    lines = gate.terminal_lines(report)
    assert lines[-1] == "speed-up gate: FAILED"
    assert any(line.strip().startswith("REGRESSED: speed-up distilled/astronaut") for line in lines)
    assert report.to_json()["failed"] is True


def test_hardware_keys():
    assert expectations.hardware_key(CPU) == "cpu-amd-epyc-7b13-2t"
    assert expectations.hardware_key(GPU) == "cuda-nvidia-h100-80gb-hbm3-x1"
    assert expectations.portable_key(CPU).startswith("cpu-any-")


def test_record_and_lookup_round_trip(tmp_path):
    report = gate.evaluate([paired_case(1.5)], None, "none")
    speedups, memory, refused = gate.new_expectations(report, "cpu")
    assert refused == []
    path = expectations.record(tmp_path, "tiny", expectations.hardware_key(CPU), {"torch": "x"}, speedups, memory)
    assert path == tmp_path / "tiny" / "speedups.json"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    found, note = expectations.lookup(tmp_path, "tiny", CPU)
    entry = found.speedups["distilled/astronaut"]
    assert entry.expected == pytest.approx(1.5, rel=0.03)
    assert gate.MIN_TOLERANCE <= entry.tolerance < 0.2
    assert "this machine" in note


def test_record_keeps_a_wider_hand_set_tolerance(tmp_path):
    key = expectations.hardware_key(CPU)
    entry = {"reference": "baseline", "expected": 1.5, "tolerance": 0.2}
    expectations.record(tmp_path, "tiny", key, {}, {"distilled/astronaut": dict(entry)}, {})
    entry["tolerance"] = 0.03
    expectations.record(tmp_path, "tiny", key, {}, {"distilled/astronaut": entry}, {})
    found, _ = expectations.lookup(tmp_path, "tiny", CPU)
    assert found.speedups["distilled/astronaut"].tolerance == 0.2


def test_lookup_other_hardware_falls_back_to_portable_then_says_how_to_record(tmp_path):
    path = expectations.expectations_path(tmp_path, "tiny")
    path.parent.mkdir(parents=True)
    table = {"speedups": {"distilled/astronaut": {"reference": "baseline", "expected": 1.5, "tolerance": 0.2}}}
    path.write_text(json.dumps({"schema": 1, "hardware": {expectations.portable_key(CPU): table}}))
    found, note = expectations.lookup(tmp_path, "tiny", CPU)
    assert found.key == expectations.portable_key(CPU) and "portable" in note
    found, note = expectations.lookup(tmp_path, "tiny", GPU)
    assert found is None and "--perf-update-baselines" in note and "cuda-nvidia-h100" in note
    found, note = expectations.lookup(tmp_path, "tiny", GPU, forced_key=expectations.portable_key(CPU))
    assert found is not None and "forced" in note


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "is not valid JSON"),
        ('{"schema": 99, "hardware": {}}', "is not a diffperf speed-up file"),
        ('{"schema": 1, "hardware": {"cpu-amd-epyc-7b13-2t": {"speedups": {"a/b": {"expected": "fast"}}}}}',
         "needs numeric 'expected' and 'tolerance'"),
        ('{"schema": 1, "hardware": {"cpu-amd-epyc-7b13-2t": {"speedups": {"a/b": {"expected": 1.2, "tolerance": 5}}}}}',
         "tolerance between 0 and 1"),
    ],
)
def test_corrupt_or_hand_broken_file_is_one_clear_line_and_untouched(tmp_path, content, fragment):
    path = expectations.expectations_path(tmp_path, "tiny")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ExpectationsError, match=fragment) as error:
        expectations.lookup(tmp_path, "tiny", CPU)
    assert "\n" not in str(error.value)
    assert path.read_text() == content


def test_too_noisy_case_is_not_recorded_and_says_why():
    report = gate.evaluate([paired_case(1.5, noise=0.6, n=8)], None, "none")
    speedups, _, refused = gate.new_expectations(report, "cpu")
    assert speedups == {}
    assert refused and refused[0].startswith("not recorded distilled/astronaut: ") and "rounds" in refused[0]
