"""The image checks can fail: planted changes on the tiny profile, unhealthy output, and the
baseline store (diffperf.baselines) with the similarity case (diffperf.image_checks).

The tiny pipeline is built once per module and runs the astronaut scenario as the tiny profile
scales it (128x128, 5 DDIM steps, 1 image), decoded by the KL autoencoder and by the
random-weight tiny autoencoder (TAESD), whose almost flat output hides changes from plain
cosine similarity.
"""

from __future__ import annotations

import json
import os
import re
import stat

import numpy as np
import pytest
import torch

from diffperf import image_checks, zoo
from diffperf.baselines import (
    CorruptBaseline,
    ImageBaselines,
    MismatchedBaseline,
    MissingBaseline,
    profile_dir,
)
from diffperf.image_checks import perturbed_copy, raw_output, run_similarity_case
from diffperf.options import PerfOptions
from diffperf.ordering import group_by_variant
from diffperf.profiles import TINY
from diffperf.similarity import THRESHOLDS, ImageHealthError, compare, diagnose, to_uint8
from diffperf.workloads import get_scenario

CPU = torch.device("cpu")
SCENARIO = get_scenario("astronaut").scaled(TINY)  # 128x128, 5 DDIM steps, seed 0
PLANTED = ("seed", "steps", "weights", "scheduler")
DECODERS = (zoo.KL_VAE, zoo.TINY_VAE)


@pytest.fixture(scope="module")
def components():
    source = zoo.SyntheticSource(TINY, CPU)
    built = {name: source.build(name) for name in (zoo.TEACHER_UNET, zoo.TEXT_ENCODER, zoo.KL_VAE, zoo.TINY_VAE)}
    built["tokenizer"] = source.tokenizer()
    built["scheduler_config"] = source.scheduler_config()
    return built


def pipeline(components, vae: str, unet=None, scheduler: str | None = None):
    return zoo.assemble_pipeline(
        unet=unet if unet is not None else components[zoo.TEACHER_UNET],
        text_encoder=components[zoo.TEXT_ENCODER],
        tokenizer=components["tokenizer"],
        vae=components[vae],
        scheduler=zoo.make_scheduler(scheduler or SCENARIO.scheduler, components["scheduler_config"]),
    )


@pytest.fixture(scope="module")
def outputs(components):
    """Raw output of the clean run, a rerun and each planted change, per decoder."""
    perturbed_unet = perturbed_copy(components[zoo.TEACHER_UNET], relative=1e-3)
    result = {}
    for vae in DECODERS:
        pipe = pipeline(components, vae)
        result[vae] = {
            "clean": raw_output(pipe, SCENARIO),
            "rerun": raw_output(pipeline(components, vae), SCENARIO),
            "seed": raw_output(pipe, SCENARIO, seed=SCENARIO.seed + 1),
            "steps": raw_output(pipe, SCENARIO, steps=SCENARIO.steps - 1),
            "weights": raw_output(pipeline(components, vae, unet=perturbed_unet), SCENARIO),
            "scheduler": raw_output(pipeline(components, vae, scheduler="pndm"), SCENARIO),
        }
    return result


# -- planted changes ---------------------------------------------------------------------------


@pytest.mark.parametrize("vae", DECODERS)
def test_clean_rerun_passes(outputs, vae):
    result = compare(outputs[vae]["rerun"], outputs[vae]["clean"], "same")
    assert result.passed, result.summary()


@pytest.mark.parametrize("change", PLANTED)
@pytest.mark.parametrize("vae", DECODERS)
def test_planted_change_is_caught(outputs, vae, change):
    result = compare(outputs[vae][change], outputs[vae]["clean"], "same")
    assert not result.passed, f"{change} with {vae} was not caught: {result.summary()}"
    # Caught by more than one metric, so no single metric's threshold decides alone.
    assert len(result.failures) >= 2, result.summary()


def test_weakest_planted_change_is_caught_with_margin(outputs):
    """The 1e-3 weight perturbation, the smallest change, is beyond the thresholds by a wide margin."""
    limits = THRESHOLDS["same"]
    for vae in DECODERS:
        result = compare(outputs[vae]["weights"], outputs[vae]["clean"], "same")
        assert result.psnr_db < limits.min_psnr_db - 10, result.summary()
        assert result.cosine_distance > 10 * limits.max_cosine_distance, result.summary()


def test_random_taesd_output_is_almost_flat(outputs):
    clean = outputs[zoo.TINY_VAE]["clean"]
    assert -1.3 < clean.min() and clean.max() < -0.6
    assert diagnose(clean) is None  # dark but structured: healthy


@pytest.mark.parametrize("change", ("steps", "weights", "scheduler"))
def test_plain_cosine_distance_misses_taesd_changes(outputs, change):
    """diffusers' 1 - cos with its usual 1e-3 bar misses these changes on the flat TAESD output."""
    result = compare(outputs[zoo.TINY_VAE][change], outputs[zoo.TINY_VAE]["clean"], "same")
    assert result.plain_cosine_distance < 1e-3
    assert not result.passed


def test_raw_output_matches_the_pipeline(components):
    """Decoding the latents ourselves gives the pipeline's own output_type="np" images."""
    for vae in DECODERS:
        pipe = pipeline(components, vae)
        raw = raw_output(pipe, SCENARIO)
        generator = torch.Generator("cpu").manual_seed(SCENARIO.seed)
        with torch.inference_mode():
            images = pipe(**SCENARIO.pipeline_kwargs(), generator=generator, output_type="np").images
        assert raw.shape == images.shape == (1, 128, 128, 3)
        np.testing.assert_allclose(np.clip(raw / 2 + 0.5, 0, 1), images, atol=1e-6)
        pil = np.asarray(pipe.numpy_to_pil(images)[0])
        assert np.abs(to_uint8(raw)[0].astype(int) - pil).max() <= 1


# -- unhealthy output --------------------------------------------------------------------------


def poisoned_vae(components, bias: float):
    """The KL autoencoder whose last convolution outputs ``bias`` everywhere (NaN, inf, -4)."""
    vae = perturbed_copy(components[zoo.KL_VAE], relative=0.0)
    with torch.no_grad():
        vae.decoder.conv_out.weight.zero_()
        vae.decoder.conv_out.bias.fill_(bias)
    return vae


@pytest.mark.parametrize(("bias", "diagnosis"), [
    (float("nan"), r"^49152 NaN and 0 inf values in the output: the fp16 overflow symptom"),
    (float("inf"), r"^0 NaN and 49152 inf values in the output: the fp16 overflow symptom"),
    (-4.0, r"^image 0 of 1 is all black"),
])
def test_unhealthy_output_fails_with_its_diagnosis(components, outputs, bias, diagnosis):
    pipe = pipeline(components, zoo.KL_VAE)
    pipe.vae = poisoned_vae(components, bias)
    raw = raw_output(pipe, SCENARIO)
    message = diagnose(raw)
    assert message is not None and "\n" not in message
    assert re.search(diagnosis, message), message
    with pytest.raises(ImageHealthError, match=diagnosis):
        compare(raw, outputs[zoo.KL_VAE]["clean"], "same")


# -- the baseline store ------------------------------------------------------------------------

CONDITIONS = {"prompt": SCENARIO.prompt, "seed": 0, "steps": 5, "resolution": 128, "scheduler": "ddim", "images": 1}


def files_under(root) -> dict:
    """Every file under ``root`` with its bytes and modification time."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                found[path] = (handle.read(), os.stat(path).st_mtime_ns)
    return found


def test_store_round_trip(tmp_path, outputs):
    raw = outputs[zoo.KL_VAE]["clean"]
    store = ImageBaselines(tmp_path, "tiny", "cpu")
    store.record("baseline", "astronaut", raw, CONDITIONS, provenance={"torch": torch.__version__})
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
    assert loaded.provenance["torch"] == torch.__version__

    # Re-recording the same output leaves the data file byte-identical (no git churn).
    before = (directory / "baseline-astronaut.npz").read_bytes()
    store.record("baseline", "astronaut", raw, CONDITIONS)
    assert (directory / "baseline-astronaut.npz").read_bytes() == before


def test_missing_baseline_message(tmp_path):
    with pytest.raises(MissingBaseline) as info:
        ImageBaselines(tmp_path, "tiny", "cpu").load("bf16", "vase")
    message = str(info.value)
    assert message.startswith("no baseline for bf16-vase at ")
    assert str(tmp_path / "tiny" / "cpu" / "images" / "bf16-vase.npz") in message
    assert message.endswith("record it with `pytest perf --perf-update-baselines`")
    assert "\n" not in message


@pytest.mark.parametrize("damage", ("garbage", "truncated", "wrong-content"))
def test_corrupt_baseline_message(tmp_path, outputs, damage):
    store = ImageBaselines(tmp_path, "tiny", "cpu")
    store.record("baseline", "astronaut", outputs[zoo.KL_VAE]["clean"], CONDITIONS)
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


def test_baseline_of_another_profile_or_device_type(tmp_path, outputs):
    ImageBaselines(tmp_path, "tiny", "cpu").record("baseline", "astronaut", outputs[zoo.KL_VAE]["clean"], CONDITIONS)
    # Someone copies the tiny CPU baselines where the full profile's CUDA ones belong.
    source = profile_dir(tmp_path, "tiny", "cpu")
    target = profile_dir(tmp_path, "full", "cuda")
    target.mkdir(parents=True)
    os.rename(source / "images", target / "images")
    store = ImageBaselines(tmp_path, "full", "cuda")
    with pytest.raises(MismatchedBaseline) as info:
        store.load("baseline", "astronaut")
    message = str(info.value)
    assert "was recorded for profile tiny on cpu, not full on cuda" in message
    assert "restore" in message and "from git" in message and "\n" not in message
    with pytest.raises(MismatchedBaseline, match="recorded for profile tiny on cpu, not full on cuda"):
        store.index()
    # The index alone says so too (a data file recorded here, an index copied from elsewhere).
    store.record("baseline", "vase", outputs[zoo.KL_VAE]["clean"], {**CONDITIONS, "images": 1})
    index = json.loads(store.index_path.read_text())
    store.index_path.write_text(json.dumps({**index, "profile": "tiny", "device_type": "cpu"}))
    with pytest.raises(MismatchedBaseline, match=r"^baseline index .* was recorded for profile tiny on cpu"):
        store.load("baseline", "vase")


def test_baseline_of_another_scenario_setting(tmp_path, outputs):
    store = ImageBaselines(tmp_path, "tiny", "cpu")
    store.record("baseline", "astronaut", outputs[zoo.KL_VAE]["clean"], CONDITIONS)
    with pytest.raises(MismatchedBaseline, match=r"steps 5 \(this run: 4\)"):
        store.load("baseline", "astronaut", expected={**CONDITIONS, "steps": 4})


def test_record_is_atomic(tmp_path, outputs, monkeypatch):
    store = ImageBaselines(tmp_path, "tiny", "cpu")
    raw = outputs[zoo.KL_VAE]["clean"]
    store.record("baseline", "astronaut", raw, CONDITIONS)
    before = files_under(tmp_path)

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np.lib.format, "write_array", fail)
    with pytest.raises(OSError, match="disk full"):
        store.record("baseline", "astronaut", raw + 1, CONDITIONS)
    assert files_under(tmp_path) == before  # old baseline intact, no temporary file left behind


# -- the similarity case -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """A tiny CPU PerfSession, built once; each test points it at its own directories."""
    from diffperf.session import PerfSession

    root = tmp_path_factory.mktemp("perf")
    return PerfSession(PerfOptions(profile="tiny", device="cpu", variants=("baseline", "attn-classic"),
                                   baselines_dir=str(root / "baselines"), output_dir=str(root / "out")))


@pytest.fixture
def case_session(session, tmp_path):
    session.options.baselines_dir = str(tmp_path / "baselines")
    session.options.output_dir = str(tmp_path / "out")
    session.options.update_baselines = False
    session.options.allow_missing_baselines = False
    return session


def fail_message(call) -> str:
    with pytest.raises(pytest.fail.Exception) as info:
        call()
    return str(info.value)


def test_case_records_then_passes_and_never_writes_otherwise(case_session, tmp_path):
    case_session.options.update_baselines = True
    run_similarity_case(case_session, "baseline", "astronaut")
    run_similarity_case(case_session, "attn-classic", "astronaut")  # also checked against fp32 while recording
    recorded = files_under(tmp_path / "baselines")
    assert {os.path.basename(path) for path in recorded} == {
        "index.json", "baseline-astronaut.npz", "baseline-astronaut.png",
        "attn-classic-astronaut.npz", "attn-classic-astronaut.png",
    }
    case_session.options.update_baselines = False
    results = run_similarity_case(case_session, "attn-classic", "astronaut")
    assert results["own"].passed and results["own"].psnr_db == float("inf")
    assert results["fp32"].passed and results["fp32"].kind == "fp32"
    assert files_under(tmp_path / "baselines") == recorded
    # A passing run leaves only the report's images (current, baseline, difference), no fp32 failure images.
    assert {os.path.basename(path) for path in files_under(tmp_path / "out")} == {
        "attn-classic-astronaut-actual.png", "attn-classic-astronaut-expected.png", "attn-classic-astronaut-diff.png",
    }


def test_case_fails_with_paths_and_metrics(case_session, tmp_path, outputs):
    store = ImageBaselines(case_session.options.baselines_dir, "tiny", "cpu")
    planted = outputs[zoo.KL_VAE]["steps"]  # a baseline that is one step off
    store.record("baseline", "astronaut", planted, CONDITIONS)
    recorded = files_under(tmp_path / "baselines")
    message = fail_message(lambda: run_similarity_case(case_session, "baseline", "astronaut"))
    assert "\n" not in message
    assert message.startswith("baseline-astronaut vs its own baseline")
    assert "FAIL" in message and "PSNR" in message and "SSIM" in message and "centred cos dist" in message
    out = tmp_path / "out" / "images"
    for suffix in ("actual", "expected", "diff"):
        path = out / f"baseline-astronaut-{suffix}.png"  # where the HTML report looks for them
        assert path.is_file() and image_checks._show(path) in message
    assert files_under(tmp_path / "baselines") == recorded  # a failing run writes no baseline


def test_case_missing_baseline_fails_or_skips(case_session):
    message = fail_message(lambda: run_similarity_case(case_session, "baseline", "astronaut"))
    assert message.startswith("no baseline for baseline-astronaut at ") and "\n" not in message
    assert "pytest perf --perf-update-baselines --perf-profile tiny" in message
    case_session.options.allow_missing_baselines = True
    with pytest.raises(pytest.skip.Exception, match="no baseline for baseline-astronaut"):
        run_similarity_case(case_session, "baseline", "astronaut")


def test_case_unhealthy_output_fails_with_diagnosis(case_session, tmp_path, monkeypatch):
    nan = np.full((1, 128, 128, 3), np.nan, dtype=np.float32)
    monkeypatch.setattr(image_checks, "raw_output", lambda *args, **kwargs: nan)
    message = fail_message(lambda: run_similarity_case(case_session, "baseline", "astronaut"))
    assert message.startswith("baseline-astronaut: 49152 NaN and 0 inf values") and "fp16 overflow" in message
    assert (tmp_path / "out" / "images" / "baseline-astronaut-actual.png").is_file()
    case_session.options.update_baselines = True  # nor is an unhealthy image ever recorded
    fail_message(lambda: run_similarity_case(case_session, "baseline", "astronaut"))
    assert not (tmp_path / "baselines").exists()


def test_case_skips_variants_that_cannot_run(case_session):
    with pytest.raises(pytest.skip.Exception, match="not in --perf-variants"):
        run_similarity_case(case_session, "distilled", "astronaut")


# -- run order ---------------------------------------------------------------------------------


class FakeItem:
    def __init__(self, name, variant=None):
        self.name = name
        self.fixturenames = ["perf_session"] if variant else []
        if variant:
            self.callspec = type("CallSpec", (), {"params": {"variant": variant, "scenario": "s"}})()

    def __repr__(self):
        return self.name


def test_cases_run_variant_by_variant_across_files():
    items = [FakeItem("unit"), FakeItem("lat-a", "a"), FakeItem("lat-b", "b"),
             FakeItem("sim-a", "a"), FakeItem("sim-b", "b"), FakeItem("last")]
    group_by_variant(items)
    assert [item.name for item in items] == ["unit", "lat-a", "sim-a", "lat-b", "sim-b", "last"]
