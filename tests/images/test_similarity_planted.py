"""The image checks can fail: planted changes on the tiny profile, and unhealthy output.

The tiny pipeline is built once per module and runs the astronaut scenario as the tiny profile
scales it (128x128, 5 DDIM steps, 1 image), decoded by the KL autoencoder and by the
random-weight tiny autoencoder (TAESD), whose almost flat output hides changes from plain
cosine similarity.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from diffperf.cases.similarity import raw_output
from diffperf.models.store import perturbed_copy
from diffperf.images.similarity import (
    ALL_BLACK,
    NON_FINITE,
    THRESHOLDS,
    HealthProblem,
    ImageHealthError,
    check_health,
    compare,
    to_uint8,
)
from diffperf.models import sd1, zoo
from diffperf.render.image_text import comparison_line

CPU = torch.device("cpu")
FAMILY = sd1.FAMILY
SCENARIO = FAMILY.scenario("astronaut").scaled(FAMILY.scale("tiny"))  # 128x128, 5 DDIM steps, seed 0
PLANTED = ("seed", "steps", "weights", "scheduler")
KL_VAE, TINY_VAE = "vae", "taesd"  # SD v1's KL autoencoder and the tiny autoencoder that can take its slot
DECODERS = (KL_VAE, TINY_VAE)


@pytest.fixture(scope="module")
def components():
    source = zoo.SyntheticSource("tiny", CPU)
    built = {name: source.build(FAMILY, name) for name in ("unet", "text_encoder", "tokenizer", KL_VAE, TINY_VAE)}
    built["scheduler_config"] = source.scheduler_config(FAMILY)
    return built


def pipeline(components, vae: str, unet=None, scheduler: str | None = None):
    modules = {
        "unet": unet if unet is not None else components["unet"],
        "text_encoder": components["text_encoder"],
        "tokenizer": components["tokenizer"],
        "vae": components[vae],
    }
    scheduler = FAMILY.make_scheduler(scheduler or SCENARIO.scheduler, components["scheduler_config"])
    return zoo.assemble_pipeline(FAMILY, modules, scheduler)


@pytest.fixture(scope="module")
def outputs(components):
    """Raw output of the clean run, a rerun and each planted change, per decoder."""
    perturbed_unet = perturbed_copy(components["unet"], relative=1e-3)
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
    assert result.passed, comparison_line(result)
    assert result.psnr_db == float("inf")  # bit for bit


@pytest.mark.parametrize("change", PLANTED)
@pytest.mark.parametrize("vae", DECODERS)
def test_planted_change_is_caught(outputs, vae, change):
    result = compare(outputs[vae][change], outputs[vae]["clean"], "same")
    assert not result.passed, f"{change} with {vae} was not caught: {comparison_line(result)}"
    # Caught by more than one metric, so no single metric's threshold decides alone.
    assert len(result.failed) >= 2, comparison_line(result)


def test_weakest_planted_change_is_caught_with_margin(outputs):
    """The 1e-3 weight perturbation, the smallest change, is beyond the thresholds by a wide margin."""
    limits = THRESHOLDS["same"]
    for vae in DECODERS:
        result = compare(outputs[vae]["weights"], outputs[vae]["clean"], "same")
        assert result.psnr_db < limits.min_psnr_db - 10, comparison_line(result)
        assert result.cosine_distance > 10 * limits.max_cosine_distance, comparison_line(result)


def test_random_taesd_output_is_almost_flat(outputs):
    clean = outputs[TINY_VAE]["clean"]
    assert -1.3 < clean.min() and clean.max() < -0.6
    assert check_health(clean) is None  # dark but structured: healthy


@pytest.mark.parametrize("change", ("steps", "weights", "scheduler"))
def test_plain_cosine_distance_misses_taesd_changes(outputs, change):
    """diffusers' 1 - cos with its usual 1e-3 bar misses these changes on the flat TAESD output."""
    result = compare(outputs[TINY_VAE][change], outputs[TINY_VAE]["clean"], "same")
    assert result.plain_cosine_distance < 1e-3
    assert not result.passed


def test_raw_output_matches_the_pipeline(components):
    """The autoencoder's raw decoded output, mapped as the pipeline maps it, is the pipeline's own
    output_type="np" images."""
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
    vae = perturbed_copy(components[KL_VAE], relative=0.0)
    with torch.no_grad():
        vae.decoder.conv_out.weight.zero_()
        vae.decoder.conv_out.bias.fill_(bias)
    return vae


PIXELS = 128 * 128 * 3


@pytest.mark.parametrize(("bias", "health"), [
    (float("nan"), HealthProblem(NON_FINITE, batch_size=1, nan_count=PIXELS)),
    (float("inf"), HealthProblem(NON_FINITE, batch_size=1, inf_count=PIXELS)),
    (-4.0, HealthProblem(ALL_BLACK, batch_size=1, image=0, raw_max=-4.0)),
])
def test_unhealthy_output_is_diagnosed(components, outputs, bias, health):
    pipe = pipeline(components, KL_VAE)
    pipe.vae = poisoned_vae(components, bias)
    raw = raw_output(pipe, SCENARIO)
    assert check_health(raw) == health
    with pytest.raises(ImageHealthError) as info:
        compare(raw, outputs[KL_VAE]["clean"], "same")
    assert info.value.health == health
