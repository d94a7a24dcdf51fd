"""Unit tests for diffperf.models.zoo, diffperf.models.profiles and the SD v1 family's declaration: the offline
tokenizer, the scheduler, and the synthetic profiles' architectures (``full`` counted on the meta device, ``tiny``
built for real)."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDIMScheduler,
    PNDMScheduler,
    UNet2DConditionModel,
)
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2DCrossAttn
from transformers import CLIPTextModel, CLIPTokenizer

from diffperf.models import sd1, zoo
from diffperf.models.family import HubId
from diffperf.models.profiles import check_profile_name, default_profile_name
from diffperf.models.workloads import Scale

CPU = torch.device("cpu")
FAMILY = sd1.FAMILY
TINY_BUILT = ("unet", "text_encoder", "vae", "taesd")


def full_meta(component: str) -> torch.nn.Module:
    return zoo.SyntheticSource("full", CPU).build(FAMILY, component, meta=True)


# --------------------------------------------------------------------------- tokenizer


def test_offline_tokenizer_vocabulary_and_length():
    tokenizer = zoo.offline_clip_tokenizer()
    assert isinstance(tokenizer, CLIPTokenizer)
    # 256 byte symbols + their "</w>" forms + <|startoftext|> + <|endoftext|>
    assert len(tokenizer) == 514
    assert tokenizer.vocab_size == 514
    assert tokenizer.model_max_length == 77
    assert tokenizer.bos_token_id == 512
    assert tokenizer.eos_token_id == 513
    # CLIPTextModel's legacy pooling takes the argmax id as the end-of-text position.
    assert tokenizer.eos_token_id == max(tokenizer.get_vocab().values())


def test_offline_tokenizer_ids():
    tokenizer = zoo.offline_clip_tokenizer()
    # bytes_to_unicode lists "!".."~" first, so "a" (0x61) is symbol 0x61 - 0x21 = 64; the last
    # character of a word takes its "</w>" form, 256 further on. No merges: one token per character.
    assert tokenizer("ab c").input_ids == [512, 64, 256 + 65, 256 + 66, 513]
    assert tokenizer("a photo").input_ids == [512, 256 + 64, 79, 71, 78, 83, 256 + 78, 513]
    assert tokenizer("A B").input_ids == tokenizer("a b").input_ids  # CLIP lower-cases
    padded = tokenizer("a photo", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[8:] == [513] * 69
    long = tokenizer("x" * 200, truncation=True, max_length=77).input_ids
    assert len(long) == 77 and long[0] == 512 and long[-1] == 513


def test_offline_tokenizer_custom_max_length():
    assert zoo.offline_clip_tokenizer(model_max_length=32).model_max_length == 32


def test_synthetic_tokenizer_component_is_the_offline_tokenizer():
    tokenizer = zoo.SyntheticSource("tiny", CPU).build(FAMILY, "tokenizer")
    assert zoo.is_tokenizer(FAMILY.component("tokenizer")) and not zoo.is_tokenizer(FAMILY.component("unet"))
    assert isinstance(tokenizer, CLIPTokenizer) and tokenizer.model_max_length == 77
    assert tokenizer.get_vocab() == zoo.offline_clip_tokenizer().get_vocab()


def test_offline_tokenizer_save_and_load_round_trip(tmp_path):
    tokenizer = zoo.offline_clip_tokenizer()
    tokenizer.save_pretrained(tmp_path)
    loaded = CLIPTokenizer.from_pretrained(tmp_path)
    assert len(loaded) == 514
    assert loaded.model_max_length == 77
    assert loaded.get_vocab() == tokenizer.get_vocab()
    for prompt in ("a photo of an astronaut riding a horse on mars", "a golden vase with different flowers"):
        assert loaded(prompt).input_ids == tokenizer(prompt).input_ids


# --------------------------------------------------------------------------- scheduler


def test_ddim_scheduler_is_configured_from_pndm():
    scheduler = FAMILY.make_scheduler("ddim", sd1.SCHEDULER)
    assert type(scheduler) is DDIMScheduler
    assert scheduler.config.beta_schedule == "scaled_linear"
    assert scheduler.config.clip_sample is False
    assert scheduler.config.set_alpha_to_one is False
    assert scheduler.config.steps_offset == 1
    assert scheduler.config.num_train_timesteps == 1000
    assert scheduler.betas[0].item() == pytest.approx(0.00085, rel=1e-5)
    assert scheduler.betas[-1].item() == pytest.approx(0.012, rel=1e-5)
    # What a bare DDIMScheduler() would have given (wrong for SD): the test can tell the two apart.
    bare = DDIMScheduler()
    assert bare.config.beta_schedule == "linear" and bare.config.clip_sample is True


def test_pndm_scheduler_and_its_unet_calls():
    scheduler = FAMILY.make_scheduler("pndm", sd1.SCHEDULER)
    assert type(scheduler) is PNDMScheduler
    assert scheduler.config.skip_prk_steps is True
    assert scheduler.config.beta_schedule == "scaled_linear"
    scheduler.set_timesteps(25)
    assert len(scheduler.timesteps) == 26  # 25 PNDM steps = 26 UNet calls


def test_schedulers_default_to_the_family_config():
    scheduler = FAMILY.make_scheduler("ddim")
    assert type(scheduler) is DDIMScheduler
    for key, value in sd1.SCHEDULER.items():
        if key in scheduler.config:
            assert scheduler.config[key] == value, key


def test_unknown_scheduler_message():
    with pytest.raises(ValueError, match=r"^unknown scheduler 'euler': choose one of pndm, ddim$"):
        FAMILY.make_scheduler("euler", sd1.SCHEDULER)


# --------------------------------------------------------------------------- full profile (meta)


@pytest.mark.parametrize(
    ("component", "cls", "parameters"),
    [
        ("unet", UNet2DConditionModel, 859_520_964),
        ("text_encoder", CLIPTextModel, 123_060_480),
        ("vae", AutoencoderKL, 83_653_863),
        ("taesd", AutoencoderTiny, 2_445_063),
        ("bk-sdm-small", UNet2DConditionModel, 482_346_884),
    ],
)
def test_full_profile_parameter_counts(component, cls, parameters):
    module = full_meta(component)
    assert type(module) is cls
    assert zoo.count_parameters(module) == parameters
    assert FAMILY.component(component).published_parameters == parameters
    assert all(parameter.is_meta for parameter in module.parameters())  # no memory was used
    assert not module.training
    assert not any(parameter.requires_grad for parameter in module.parameters())


def test_full_profile_autoencoder_halves():
    vae = full_meta("vae")
    assert zoo.count_parameters(vae.encoder) == 34_163_592
    assert zoo.count_parameters(vae.decoder) == 49_490_179
    taesd = full_meta("taesd")
    assert zoo.count_parameters(taesd.encoder) == 1_222_532
    assert zoo.count_parameters(taesd.decoder) == 1_222_531


def test_full_profile_unet_is_sd_v1():
    unet = full_meta("unet")
    config = unet.config
    assert list(config.block_out_channels) == [320, 640, 1280, 1280]
    assert config.cross_attention_dim == 768  # the class default is 1280
    assert config.layers_per_block == 2
    assert config.sample_size == 64
    assert isinstance(unet.mid_block, UNetMidBlock2DCrossAttn)


def test_unknown_component():
    with pytest.raises(ValueError, match=r"^family sd1 has no component 'nope': choose one of unet, "):
        zoo.SyntheticSource("tiny", CPU).build(FAMILY, "nope", meta=True)


# --------------------------------------------------------------------------- tiny profile


@pytest.fixture(scope="module")
def tiny_components():
    source = zoo.SyntheticSource("tiny", CPU)
    return {name: source.build(FAMILY, name) for name in TINY_BUILT}


def test_tiny_profile_keeps_the_structure(tiny_components):
    unet = tiny_components["unet"]
    assert len(unet.down_blocks) == 4 and len(unet.up_blocks) == 4
    assert [hasattr(block, "attentions") for block in unet.down_blocks] == [True, True, True, False]
    assert [hasattr(block, "attentions") for block in unet.up_blocks] == [False, True, True, True]
    assert isinstance(unet.mid_block, UNetMidBlock2DCrossAttn)
    assert [len(block.resnets) for block in unet.down_blocks] == [2, 2, 2, 2]
    assert [len(block.resnets) for block in unet.up_blocks] == [3, 3, 3, 3]
    # The UNet attends over the text encoder's hidden states: the widths must agree.
    text_encoder = tiny_components["text_encoder"]
    assert unet.config.cross_attention_dim == text_encoder.config.hidden_size
    assert text_encoder.config.max_position_embeddings == 77
    # The KL VAE is heavier than the tiny autoencoder, as in the full profile.
    vae, taesd = tiny_components["vae"], tiny_components["taesd"]
    assert isinstance(vae, AutoencoderKL) and isinstance(taesd, AutoencoderTiny)
    assert zoo.count_parameters(vae) > 3 * zoo.count_parameters(taesd)
    # ... and it is much smaller than the full profile.
    assert zoo.count_parameters(unet) < 859_520_964 // 100
    assert all(parameter.device.type == "cpu" for parameter in unet.parameters())


def test_tiny_profile_scales_workloads():
    assert FAMILY.scale("tiny") == Scale(resolution=128, step_fraction=0.1)
    assert FAMILY.scale("full") is None and FAMILY.scale("hub") is None
    astronaut = FAMILY.scenario("astronaut")
    assert astronaut.resolution == 512 and astronaut.steps == 50
    tiny = astronaut.scaled(FAMILY.scale("tiny"))
    assert tiny.resolution == 128 and tiny.steps == 5
    assert astronaut.scaled(FAMILY.scale("full")) == astronaut
    full, tiny_source = zoo.SyntheticSource("full", CPU), zoo.SyntheticSource("tiny", CPU)
    assert full.scheduler_config(FAMILY) == tiny_source.scheduler_config(FAMILY) == sd1.SCHEDULER


@pytest.mark.parametrize(("field", "value", "wanted"), [
    ("images", 0, "a whole number of at least 1"),
    ("images", 1.5, "a whole number of at least 1"),
    ("steps", 0, "a whole number of at least 1"),
    ("steps", True, "a whole number of at least 1"),
    ("resolution", -512, "a positive multiple of 64 pixels"),
    ("resolution", 500, "a positive multiple of 64 pixels"),
])
def test_a_scenario_number_that_cannot_run_is_refused(field, value, wanted):
    with pytest.raises(ValueError, match=rf"^scenario astronaut: {field}={value!r}: give {wanted}"):
        dataclasses.replace(FAMILY.scenario("astronaut"), **{field: value})


@pytest.mark.parametrize(("changes", "message"), [
    ({"resolution": 0}, r"resolution=0: give a positive multiple of 64 pixels, or None"),
    ({"resolution": 100}, r"resolution=100: give a positive multiple of 64 pixels, or None"),
    ({"step_fraction": 0}, r"step_fraction=0: give a fraction of the steps above 0 and at most 1"),
    ({"step_fraction": 1.5}, r"step_fraction=1.5: give a fraction of the steps above 0 and at most 1"),
])
def test_a_scale_that_cannot_run_is_refused(changes, message):
    with pytest.raises(ValueError, match=rf"^Scale {message}"):
        dataclasses.replace(Scale(resolution=128, step_fraction=0.1), **changes)
    assert Scale(resolution=None, step_fraction=1).step_fraction == 1


def test_tiny_unet_runs_on_text_encoder_output(tiny_components):
    unet, text_encoder = tiny_components["unet"], tiny_components["text_encoder"]
    ids = zoo.offline_clip_tokenizer()("a photo", padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        hidden = text_encoder(ids).last_hidden_state
        out = unet(torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(0)), 10, hidden).sample
    assert hidden.shape == (1, 77, 64)
    assert out.shape == (1, 4, 16, 16)
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("component", TINY_BUILT)
def test_seeded_builds_are_deterministic(component, tiny_components):
    again = zoo.SyntheticSource("tiny", CPU).build(FAMILY, component).state_dict()
    first = tiny_components[component].state_dict()
    assert again.keys() == first.keys()
    for key in first:
        assert torch.equal(again[key], first[key]), key


def test_seed_changes_weights_and_global_rng_is_untouched(tiny_components):
    torch.manual_seed(1234)
    expected = torch.rand(4)
    torch.manual_seed(1234)
    reseeded = dataclasses.replace(FAMILY, components=tuple(
        dataclasses.replace(component, seed=7) if component.name == "unet" else component
        for component in FAMILY.components))
    other = zoo.SyntheticSource("tiny", CPU).build(reseeded, "unet")
    assert torch.equal(torch.rand(4), expected)  # building forks the RNG
    key = "conv_in.weight"
    assert not torch.equal(other.state_dict()[key], tiny_components["unet"].state_dict()[key])


def test_components_get_distinct_seeds():
    seeds = [component.weight_seed(FAMILY.name) for component in FAMILY.components]
    assert len(set(seeds)) == len(seeds)
    assert FAMILY.component("unet").weight_seed("sd1") == 0  # the seed the recorded images were made with


# --------------------------------------------------------------------------- profiles and sources


def test_profile_names():
    assert default_profile_name(cuda_available=True) == "full"
    assert default_profile_name(cuda_available=False) == "tiny"
    assert check_profile_name("hub") == "hub"
    with pytest.raises(ValueError, match=r"^unknown profile 'nope': choose one of full, short, tiny, hub$"):
        check_profile_name("nope")


def test_the_short_profile_builds_the_full_architectures_at_a_fifth_of_the_steps():
    astronaut, vase = FAMILY.scenario("astronaut"), FAMILY.scenario("vase")
    short = FAMILY.scale("short")
    assert (astronaut.scaled(short).steps, astronaut.scaled(short).resolution) == (10, 512)
    assert (vase.scaled(short).steps, vase.scaled(short).images) == (5, 4)
    source = zoo.make_source("short", torch.device("cpu"))
    assert source.profile == "full"
    assert FAMILY.component("unet").config("short") == FAMILY.component("unet").config("full")


def test_make_source():
    tiny = zoo.make_source("tiny", CPU)
    assert isinstance(tiny, zoo.SyntheticSource) and tiny.profile == "tiny" and tiny.derives_students
    hub = zoo.make_source("hub", CPU, {"sd1": "/some/dir"})
    assert isinstance(hub, zoo.HubSource) and not hub.derives_students
    assert hub.overrides == {"sd1": "/some/dir"}
    # The family's own components come from the override; the others from their own hub ids.
    assert hub.hub_id(FAMILY, FAMILY.component("unet")) == HubId("/some/dir", "unet")
    assert hub.hub_id(FAMILY, FAMILY.component("bk-sdm-small")) == HubId("nota-ai/bk-sdm-small", "unet")
    assert hub.hub_id(FAMILY, FAMILY.component("taesd")) == HubId("madebyollin/taesd")
    default = zoo.make_source("hub", CPU)
    assert default.hub_id(FAMILY, FAMILY.component("unet")) == HubId(sd1.HUB_MODEL, "unet")
    with pytest.raises(ValueError, match=r"^unknown profile 'nope': choose one of full, short, tiny, hub$"):
        zoo.make_source("nope", CPU)
