"""Unit tests for diffperf.images.baselines: the image baseline store and its index, on synthetic batches."""

from __future__ import annotations

import json
import os
import stat
import warnings

import numpy as np
import pytest
from imagedata import files_under, smooth_image

from diffperf.images.baselines import (
    BaselineIndexWarning,
    CorruptBaseline,
    ImageBaselines,
    MismatchedBaseline,
    MissingBaseline,
    profile_dir,
)

CONDITIONS = {"prompt": "a photo", "seed": 0, "steps": 5, "resolution": 32, "scheduler": "ddim", "images": 2}
VARIANTS = ("baseline", "attn-classic", "sdpa", "channels-last", "bf16", "fp16", "distilled", "distilled-taesd",
            "distilled-fp16", "distilled-taesd-fp16")
SCENARIOS = ("astronaut", "vase")


@pytest.fixture
def store(tmp_path):
    return ImageBaselines(tmp_path, "tiny", "cpu")


def raw_of(number: int) -> np.ndarray:
    """The raw output ``record_all`` records as its ``number``-th baseline."""
    return smooth_image() + number / 100


def record_all(store: ImageBaselines) -> None:
    """The tiny CPU set: 20 baselines, as `pytest perf --perf-update-baselines` records them."""
    for number, (variant, scenario) in enumerate((v, s) for v in VARIANTS for s in SCENARIOS):
        store.record(variant, scenario, raw_of(number), CONDITIONS, provenance={"torch": "2.13.0"})


def test_round_trip(store, tmp_path):
    raw = smooth_image()
    store.record("baseline", "astronaut", raw, CONDITIONS, provenance={"torch": "2.13.0"})
    directory = profile_dir(tmp_path, "tiny", "cpu") / "images"
    assert sorted(os.listdir(directory)) == ["baseline-astronaut.npz", "baseline-astronaut.png", "index.json"]
    for name in os.listdir(directory):
        assert stat.S_IMODE(os.stat(directory / name).st_mode) == 0o644

    loaded = store.load("baseline", "astronaut", expected=CONDITIONS)
    assert loaded.raw.dtype == np.float32 and np.array_equal(loaded.raw, raw)  # bit for bit
    assert loaded.meta["profile"] == "tiny" and loaded.meta["steps"] == 5
    assert np.array_equal(np.load(directory / "baseline-astronaut.npz")["raw"], raw)  # plain numpy opens it

    index = json.loads((directory / "index.json").read_text())
    entry = index["images"]["baseline-astronaut"]
    assert (index["profile"], index["device_type"]) == ("tiny", "cpu")
    for name in ("profile", "variant", "scenario", "seed", "steps", "resolution", "scheduler", "torch", "recorded"):
        assert name in entry
    assert entry["shape"] == [2, 32, 48, 3]
    assert loaded.provenance["torch"] == "2.13.0"


def test_rerecording_the_same_output_changes_no_file(store, tmp_path):
    store.record("baseline", "astronaut", smooth_image(), CONDITIONS)
    before = files_under(tmp_path)
    store.record("baseline", "astronaut", smooth_image(), CONDITIONS)
    assert files_under(tmp_path) == before  # no git churn, not even the index's date


def test_missing_baseline_message(store, tmp_path):
    with pytest.raises(MissingBaseline) as info:
        store.load("bf16", "vase")
    message = str(info.value)
    assert message.startswith("no baseline for bf16-vase at ")
    assert str(tmp_path / "tiny" / "cpu" / "images" / "bf16-vase.npz") in message
    assert message.endswith("record it with `pytest perf --perf-update-baselines`")
    assert "\n" not in message


@pytest.mark.parametrize("damage", ("garbage", "truncated", "wrong-content"))
def test_corrupt_baseline_message(store, damage):
    store.record("baseline", "astronaut", smooth_image(), CONDITIONS)
    path = store.data_path("baseline", "astronaut")
    if damage == "garbage":
        path.write_bytes(b"not a numpy archive")
    elif damage == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    else:
        np.savez(path.with_suffix(""), other=np.zeros(3))
    with pytest.raises(CorruptBaseline) as info:
        store.load("baseline", "astronaut")
    message = str(info.value)
    assert f"baseline {path} is unreadable" in message
    assert "re-record it with `pytest perf --perf-update-baselines` or restore it from git" in message
    assert "\n" not in message


def test_baseline_of_another_profile_or_device_type(tmp_path):
    ImageBaselines(tmp_path, "tiny", "cpu").record("baseline", "astronaut", smooth_image(), CONDITIONS)
    # Someone copies the tiny CPU baselines where the full profile's CUDA ones belong.
    target = profile_dir(tmp_path, "full", "cuda")
    target.mkdir(parents=True)
    os.rename(profile_dir(tmp_path, "tiny", "cpu") / "images", target / "images")
    store = ImageBaselines(tmp_path, "full", "cuda")
    with pytest.raises(MismatchedBaseline) as info:
        store.load("baseline", "astronaut")
    message = str(info.value)
    assert "was recorded for profile tiny on cpu, not full on cuda" in message
    assert "restore" in message and "from git" in message and "\n" not in message
    with pytest.raises(MismatchedBaseline, match="recorded for profile tiny on cpu, not full on cuda"):
        store.index()
    # The index alone says so too (a data file recorded here, an index copied from elsewhere).
    with pytest.warns(BaselineIndexWarning):  # recording over the other profile's index rebuilds it
        store.record("baseline", "vase", smooth_image(), CONDITIONS)
    index = json.loads(store.index_path.read_text())
    store.index_path.write_text(json.dumps({**index, "profile": "tiny", "device_type": "cpu"}))
    with pytest.raises(MismatchedBaseline, match=r"^baseline index .* was recorded for profile tiny on cpu"):
        store.load("baseline", "vase")


def test_baseline_of_another_scenario_setting(store):
    store.record("baseline", "astronaut", smooth_image(), CONDITIONS)
    with pytest.raises(MismatchedBaseline, match=r"steps 5 \(this run: 4\)"):
        store.load("baseline", "astronaut", expected={**CONDITIONS, "steps": 4})


def test_record_is_atomic(store, tmp_path, monkeypatch):
    raw = smooth_image()
    store.record("baseline", "astronaut", raw, CONDITIONS)
    before = files_under(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", fail)
    with pytest.raises(OSError, match="disk full"):
        store.record("baseline", "astronaut", raw + 1, CONDITIONS)
    assert files_under(tmp_path) == before  # old baseline intact, no temporary file left behind


# -- an unusable index -------------------------------------------------------------------------


def truncate_index(store: ImageBaselines) -> None:
    text = store.index_path.read_text()
    store.index_path.write_text(text[: len(text) // 3])


def test_truncated_index_is_reported_and_the_check_goes_on(store):
    record_all(store)
    truncate_index(store)
    with pytest.warns(BaselineIndexWarning) as warned:
        loaded = store.load("bf16", "vase", expected=CONDITIONS)
    assert np.array_equal(loaded.raw, raw_of(9))  # still checked against the .npz
    assert loaded.provenance == {}
    messages = [str(warning.message) for warning in warned if warning.category is BaselineIndexWarning]
    assert len(messages) == 1
    message = messages[0]
    assert "\n" not in message and str(store.index_path) in message
    assert "restore it from git" in message and "pytest perf --perf-update-baselines" in message


def test_update_rebuilds_a_truncated_index_without_dropping_entries(store):
    record_all(store)
    recorded = json.loads(store.index_path.read_text())["images"]
    truncate_index(store)
    with pytest.warns(BaselineIndexWarning, match="rebuilt 20 entries"):
        store.record("bf16", "vase", smooth_image() + 0.5, CONDITIONS, provenance={"torch": "2.14.0"})
    images = json.loads(store.index_path.read_text())["images"]
    assert sorted(images) == sorted(recorded)  # all 20 entries, not only the one recorded
    assert images["bf16-vase"]["torch"] == "2.14.0" and "recorded" in images["bf16-vase"]
    for key, entry in images.items():
        for name in ("profile", "device_type", "variant", "scenario", "prompt", "seed", "steps", "resolution",
                     "scheduler", "images", "shape", "data", "png"):
            assert entry[name] == recorded[key][name], (key, name)
    assert [name for name in os.listdir(store.directory) if name.endswith(".tmp")] == []
    # The index is usable again: loading says nothing, and recording an unchanged output writes nothing.
    with warnings.catch_warnings():
        warnings.simplefilter("error", BaselineIndexWarning)
        store.load("baseline", "astronaut")
        before = files_under(store.directory)
        store.record("baseline", "astronaut", raw_of(0), CONDITIONS)
    assert files_under(store.directory) == before


def test_update_restores_entries_missing_from_the_index(store):
    record_all(store)
    store.index_path.unlink()
    with pytest.warns(BaselineIndexWarning, match="had no entry for 20 .npz files"):
        store.record("baseline", "vase", raw_of(1), CONDITIONS)
    assert len(json.loads(store.index_path.read_text())["images"]) == 20


def test_rebuilding_skips_unreadable_and_foreign_files(store, tmp_path):
    record_all(store)
    store.data_path("sdpa", "vase").write_bytes(b"not a numpy archive")
    other = ImageBaselines(tmp_path / "elsewhere", "full", "cuda")
    other.record("baseline", "vase", smooth_image(), CONDITIONS)
    os.replace(other.data_path("baseline", "vase"), store.directory / "copied-vase.npz")
    truncate_index(store)
    with pytest.warns(BaselineIndexWarning, match="rebuilt 19 entries"):
        store.record("bf16", "vase", smooth_image(), CONDITIONS)
    images = json.loads(store.index_path.read_text())["images"]
    assert "sdpa-vase" not in images and "copied-vase" not in images and len(images) == 19


def test_staged_baselines_are_read_back_but_written_only_on_commit(store, tmp_path):
    raw = smooth_image()
    store.stage("baseline", "astronaut", raw, CONDITIONS, provenance={"torch": "2.13.0"})
    assert files_under(tmp_path) == {}  # nothing on disk yet
    assert np.array_equal(store.load("baseline", "astronaut", expected=CONDITIONS).raw, raw)  # later cases see it
    assert store.commit() == 1 and store.staged == {}
    assert np.array_equal(ImageBaselines(tmp_path, "tiny", "cpu").load("baseline", "astronaut").raw, raw)


def test_a_run_that_did_not_complete_still_records_what_its_passing_cases_staged(tmp_path):
    """A case stages its image only once its checks passed: a neighbour that failed discards none of them."""
    from diffperf.cases.similarity import commit_image_baselines
    from diffperf.models.builtin import builtin_registry
    from diffperf.options import PerfOptions
    from diffperf.session import PerfSession

    session = PerfSession(PerfOptions(profile="tiny", device="cpu", baselines_dir=str(tmp_path)), builtin_registry())
    session.image_baselines = ImageBaselines(tmp_path, "tiny", "cpu")
    session.image_baselines.stage("baseline", "vase", smooth_image(), CONDITIONS)
    line = commit_image_baselines(session, completed=False)
    assert line == (f"image baselines: recorded 1 in {session.image_baselines.directory} (the run failed or was "
                    "interrupted: the cases that failed or did not run recorded nothing)")
    assert np.array_equal(ImageBaselines(tmp_path, "tiny", "cpu").load("baseline", "vase").raw, smooth_image())
    session.image_baselines.stage("baseline", "astronaut", smooth_image(), CONDITIONS)
    assert commit_image_baselines(session, completed=True) == (f"image baselines: recorded 1 in "
                                                              f"{session.image_baselines.directory}")
    assert commit_image_baselines(session, completed=True) is None  # nothing left staged


def test_a_baseline_holding_images_of_another_size_says_to_rerecord_it(store):
    store.record("baseline", "astronaut", smooth_image(), CONDITIONS)
    stored = store.load("baseline", "astronaut").raw
    with pytest.raises(MismatchedBaseline) as error:
        store.load("baseline", "astronaut", expected=CONDITIONS, shape=(2, 128, 128, 3))
    message = str(error.value)
    assert "\n" not in message and f"holds images of shape {stored.shape}, this run makes (2, 128, 128, 3)" in message
    assert message.endswith("recorded for another workload or resolution; re-record it with "
                            "`pytest perf --perf-update-baselines`")
    assert store.load("baseline", "astronaut", shape=stored.shape).raw.shape == stored.shape


def test_a_scenarios_call_arguments_are_a_condition_of_its_baseline(store):
    """A scenario with call arguments (FLUX's guidance 3.5, its T5 tokens) stores them; another value is named. A
    scenario without any stores none, so baselines recorded before the condition existed still load."""
    flux = {**CONDITIONS, "arguments": {"guidance_scale": 3.5, "max_sequence_length": 32}}
    store.record("flux", "astronaut-flux", smooth_image(), flux)
    assert store.load("flux", "astronaut-flux", expected=flux).meta["arguments"] == flux["arguments"]
    with pytest.raises(MismatchedBaseline, match=r"arguments .*'guidance_scale': 3\.5.*this run: .*'guidance_scale': 1\.0"):
        store.load("flux", "astronaut-flux", expected={**flux, "arguments": {**flux["arguments"], "guidance_scale": 1.0}})
    store.record("baseline", "astronaut", smooth_image(), CONDITIONS)
    assert "arguments" not in store.load("baseline", "astronaut", expected=CONDITIONS).meta
