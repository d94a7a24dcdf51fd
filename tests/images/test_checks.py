"""The similarity case (diffperf.cases.similarity) on a tiny CPU session: what it compares, records and says."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
from imagedata import files_under

from diffperf.cases import similarity as checks
from diffperf.images.baselines import BaselineIndexWarning, ImageBaselines
from diffperf.cases.similarity import (
    PlannedCheck, commit_image_baselines, planned_checks, record_image_baseline, run_similarity_case,
)
from diffperf.models import sd1
from diffperf.models.builtin import builtin_registry
from diffperf.options import PerfOptions
from diffperf.render.image_text import short_path

CASE = ("baseline", "astronaut")
REGISTRY = builtin_registry()
SCENARIO_CONDITIONS = {"prompt", "seed", "steps", "resolution", "scheduler", "images"}


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A tiny CPU PerfSession, built once (its models are shared); each test gives it its own options."""
    from diffperf.session import PerfSession

    root = tmp_path_factory.mktemp("perf")
    return PerfSession(PerfOptions(profile="tiny", device="cpu", variants=("baseline", "attn-classic"),
                                   baselines_dir=str(root / "baselines"), output_dir=str(root / "out")), REGISTRY)


@pytest.fixture
def configure(session, tmp_path):
    """``configure(**options)``: the session with fresh directories under tmp_path and these options."""
    original = session.options

    def configure(**changes):
        # A new configuration is a new run: what the last one recorded is written, as at the end of a run.
        commit_image_baselines(session, completed=True)
        session.image_baselines = None
        session.options = dataclasses.replace(original, baselines_dir=str(tmp_path / "baselines"),
                                              output_dir=str(tmp_path / "out"), **changes)
        return session

    configure()
    yield configure
    session.image_baselines = None
    session.options = original


def fail_message(call) -> str:
    with pytest.raises(pytest.fail.Exception) as info:
        call()
    # What pytest prints for the failure: the message and any exception chained to it.
    assert str(info.getrepr(style="value")).count(str(info.value)) == 1
    return str(info.value)


def store_of(session) -> ImageBaselines:
    return ImageBaselines(session.options.baselines_dir, "tiny", "cpu")


# -- what a case compares ----------------------------------------------------------------------


@pytest.mark.parametrize(("variant", "recording", "expected"), [
    ("baseline", False, [PlannedCheck("own", "same", "baseline")]),
    ("baseline", True, []),
    ("attn-classic", False, [PlannedCheck("own", "same", "attn-classic"), PlannedCheck("fp32", "fp32", "baseline")]),
    ("attn-classic", True, [PlannedCheck("fp32", "fp32", "baseline")]),
    ("bf16", False, [PlannedCheck("own", "half", "bf16"), PlannedCheck("fp32", "half", "baseline")]),
    ("distilled", False, [PlannedCheck("own", "same", "distilled")]),
    ("distilled-fp16", False, [PlannedCheck("own", "half", "distilled-fp16")]),
])
def test_planned_checks(variant, recording, expected):
    declared = REGISTRY.variant(variant)
    assert declared.family == sd1.NAME
    assert planned_checks(declared, recording, sd1.FAMILY.baseline) == expected


# -- the case ----------------------------------------------------------------------------------


def test_case_records_then_passes_and_never_writes_otherwise(configure, tmp_path):
    session = configure(update_baselines=True)
    assert run_similarity_case(session, "baseline", "astronaut") == {}
    recorded = run_similarity_case(session, "attn-classic", "astronaut")  # checked against fp32 while recording
    assert set(recorded) == {"fp32"} and recorded["fp32"].passed
    assert not (tmp_path / "baselines").exists()  # staged: written when the run completes
    assert commit_image_baselines(session, completed=True).startswith("image baselines: recorded 2 in ")
    baselines = files_under(tmp_path / "baselines")
    assert {os.path.basename(path) for path in baselines} == {
        "index.json", "baseline-astronaut.npz", "baseline-astronaut.png",
        "attn-classic-astronaut.npz", "attn-classic-astronaut.png",
    }
    entry = json.loads(store_of(session).index_path.read_text())["images"]["attn-classic-astronaut"]
    assert entry["torch"] and entry["threads"] >= 1 and SCENARIO_CONDITIONS <= set(entry)

    session = configure()
    results = run_similarity_case(session, "attn-classic", "astronaut")
    assert {label: result.kind for label, result in results.items()} == {"own": "same", "fp32": "fp32"}
    assert results["own"].psnr_db == float("inf") and results["own"].failed == ()
    assert results["fp32"].passed
    assert files_under(tmp_path / "baselines") == baselines
    # A passing run leaves only the report's images (current, baseline, difference), no fp32 failure images.
    assert {os.path.basename(path) for path in files_under(tmp_path / "out")} == {
        "attn-classic-astronaut-actual.png", "attn-classic-astronaut-expected.png", "attn-classic-astronaut-diff.png",
    }


def test_recording_a_variant_records_the_fp32_images_its_check_needs(configure, tmp_path):
    """`pytest perf -k "attn-classic" --perf-update-baselines`: the fp32 baseline's image, which its check compares
    with, is made and recorded too, when it is missing or cannot be used."""
    session = configure(update_baselines=True)
    recorded = run_similarity_case(session, "attn-classic", "astronaut")
    assert set(recorded) == {"fp32"} and recorded["fp32"].passed
    assert commit_image_baselines(session, completed=True).startswith("image baselines: recorded 2 in ")
    store = store_of(session)
    assert {os.path.basename(path) for path in files_under(tmp_path / "baselines")} == {
        "index.json", "baseline-astronaut.npz", "baseline-astronaut.png",
        "attn-classic-astronaut.npz", "attn-classic-astronaut.png",
    }
    fp32 = store.load(*CASE).raw
    store.data_path(*CASE).write_bytes(b"not a numpy archive")  # unreadable: recorded again
    session = configure(update_baselines=True)
    assert run_similarity_case(session, "attn-classic", "astronaut")["fp32"].passed
    commit_image_baselines(session, completed=True)
    assert np.array_equal(store.load(*CASE).raw, fp32)


def test_a_case_that_fails_while_recording_records_nothing_and_discards_no_other(configure, tmp_path, monkeypatch):
    session = configure(update_baselines=True)
    run_similarity_case(session, *CASE)
    made = checks.variant_output
    monkeypatch.setattr(checks, "variant_output",  # attn-classic drifts from fp32 (healthy, but 5 % dimmer)
                        lambda session, variant, scenario: made(session, variant, scenario) *
                        (0.95 if variant.name == "attn-classic" else 1.0))
    assert fail_message(lambda: run_similarity_case(session, "attn-classic", "astronaut")).startswith(
        "attn-classic-astronaut vs baseline (fp32) baseline")
    line = commit_image_baselines(session, completed=False)
    assert line.startswith("image baselines: recorded 1 in ")
    assert {os.path.basename(path) for path in files_under(tmp_path / "baselines")} == {
        "index.json", "baseline-astronaut.npz", "baseline-astronaut.png",
    }


def test_case_fails_with_paths_and_metrics(configure, tmp_path):
    session = configure(update_baselines=True)
    run_similarity_case(session, *CASE)
    commit_image_baselines(session, completed=True)
    store = store_of(session)
    clean = store.load(*CASE).raw
    store.record(*CASE, clean * 1.001, checks.scenario_conditions(session.scenario(*CASE)))  # off by 0.1 %
    baselines = files_under(tmp_path / "baselines")
    message = fail_message(lambda: run_similarity_case(configure(), *CASE))
    assert "\n" not in message
    assert message.startswith("baseline-astronaut vs its own baseline")
    out = tmp_path / "out" / "images"
    for suffix in ("actual", "expected", "diff"):
        path = out / f"baseline-astronaut-{suffix}.png"  # where the HTML report looks for them
        assert path.is_file() and short_path(path) in message
    assert files_under(tmp_path / "baselines") == baselines  # a failing run writes no baseline


def test_case_missing_baseline_fails_or_skips(configure):
    message = fail_message(lambda: run_similarity_case(configure(), *CASE))
    assert message.startswith("no baseline for baseline-astronaut at ") and "\n" not in message
    assert message.endswith("`pytest perf --perf-update-baselines --perf-profile tiny`")
    with pytest.raises(pytest.skip.Exception, match="no baseline for baseline-astronaut"):
        run_similarity_case(configure(allow_missing_baselines=True), *CASE)


def test_record_hint_repeats_the_baselines_directory(configure, tmp_path):
    """A run reading --perf-baselines DIR is told to record into DIR, not into the default baselines/."""
    session = configure(baselines_given=True)
    message = fail_message(lambda: run_similarity_case(session, *CASE))
    directory = str(tmp_path / "baselines")
    assert message.endswith(f"`pytest perf --perf-update-baselines --perf-profile tiny --perf-baselines {directory}`")


def test_truncated_index_is_reported_and_images_still_checked(configure):
    session = configure(update_baselines=True)
    run_similarity_case(session, *CASE)
    commit_image_baselines(session, completed=True)
    index = store_of(session).index_path
    index.write_text(index.read_text()[:40])
    with pytest.warns(BaselineIndexWarning, match="restore it from git"):
        results = run_similarity_case(configure(), *CASE)
    assert results["own"].passed and results["own"].psnr_db == float("inf")


@pytest.mark.parametrize(("variant", "dtype_advice"), [("baseline", False), ("fp16", True)])
def test_case_unhealthy_output_fails_with_a_diagnosis_for_its_dtype(configure, tmp_path, monkeypatch, variant,
                                                                    dtype_advice):
    nan = np.full((1, 128, 128, 3), np.nan, dtype=np.float32)
    monkeypatch.setattr(checks, "variant_output", lambda *args: nan)
    session = configure(variants=())
    monkeypatch.setattr(session, "skip_reason", lambda variant, scenario=None: None)  # fp16: opt-in, few CPU kernels
    message = fail_message(lambda: run_similarity_case(session, variant, "astronaut"))
    assert message.startswith(f"{variant}-astronaut: 49152 NaN and 0 inf values")
    assert ("fp16 overflow" in message) is dtype_advice
    assert (tmp_path / "out" / "images" / f"{variant}-astronaut-actual.png").is_file()
    session = configure(variants=(), update_baselines=True)  # nor is an unhealthy image ever recorded
    fail_message(lambda: run_similarity_case(session, variant, "astronaut"))
    assert not (tmp_path / "baselines").exists()


def test_case_with_an_unhealthy_stored_baseline_fails_in_one_line(configure):
    session = configure(update_baselines=True)
    run_similarity_case(session, *CASE)
    commit_image_baselines(session, completed=True)
    black = np.full((1, 128, 128, 3), -1.0, dtype=np.float32)
    store_of(session).record(*CASE, black, checks.scenario_conditions(session.scenario(*CASE)))
    message = fail_message(lambda: run_similarity_case(configure(), *CASE))
    assert message.startswith("baseline ") and "image 0 of 1 is all black" in message and "\n" not in message


def test_case_skips_variants_that_cannot_run(configure):
    with pytest.raises(pytest.skip.Exception, match="not in --perf-variants"):
        run_similarity_case(configure(), "distilled", "astronaut")


def test_record_image_baseline_notes_why(configure):
    session = configure()
    stored = record_image_baseline(session, *CASE, note="recorded for a test")
    assert stored.provenance["note"] == "recorded for a test"
    assert np.array_equal(store_of(session).load(*CASE).raw, stored.raw)


def test_a_model_that_cannot_be_loaded_fails_the_case_in_one_line(tmp_path):
    """The hub error is printed once: not again as the exception the failure was raised while handling."""
    from diffperf.session import PerfSession

    not_a_pipeline = tmp_path / "not-a-pipeline"
    (not_a_pipeline / "unet").mkdir(parents=True)
    session = PerfSession(PerfOptions(profile="hub", device="cpu", hub_models={"sd1": str(not_a_pipeline)},
                                      baselines_dir=str(tmp_path / "baselines"), output_dir=str(tmp_path / "out")),
                          REGISTRY)
    message = fail_message(lambda: run_similarity_case(session, *CASE))
    assert str(not_a_pipeline) in message and "model_index.json" in message and "\n" not in message


def test_failure_repr_counts_chained_messages():
    """The check in ``fail_message`` sees a message printed twice (the defect it guards against)."""
    try:
        try:
            raise RuntimeError("cannot load")
        except RuntimeError as error:
            pytest.fail(str(error), pytrace=False)
    except pytest.fail.Exception as failed:
        assert str(pytest.ExceptionInfo.from_exception(failed).getrepr(style="value")).count("cannot load") == 2


def test_an_overridden_workload_checks_health_only_and_says_so(configure):
    """The stored images are of the profile's own workload: a --perf-steps run neither fails against them nor
    is told to re-record them (which would overwrite them)."""
    run_similarity_case(configure(update_baselines=True), *CASE)
    with pytest.raises(pytest.skip.Exception) as skipped:
        run_similarity_case(configure(steps=1), *CASE)
    message = str(skipped.value)
    assert message.startswith("image checked for health only: --perf-steps 1 changed the workload")
    assert "\n" not in message and "--perf-update-baselines" not in message


def test_a_baseline_of_another_size_fails_in_one_line_saying_to_rerecord_it(configure):
    session = configure(update_baselines=True)
    run_similarity_case(session, *CASE)
    commit_image_baselines(session, completed=True)
    store = store_of(session)
    clean = store.load(*CASE).raw
    store.record(*CASE, np.ascontiguousarray(clean[:, ::2, ::2]), checks.scenario_conditions(session.scenario(*CASE)))
    message = fail_message(lambda: run_similarity_case(configure(), *CASE))
    assert "\n" not in message and f"this run makes {clean.shape}" in message
    assert "recorded for another workload or resolution; re-record it with `pytest perf --perf-update-baselines" \
        in message
