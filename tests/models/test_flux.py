"""Unit tests of the FLUX.1-dev family: the exact full-size architectures (counted on the meta device: full-size
FLUX is 48 GB in fp32), a tiny profile that keeps their structure, the offline T5 tokenizer, a tiny pipeline
call, and the hub loading path on a saved tiny FLUX pipeline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import BertTokenizer, CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from diffperf.cases.similarity import raw_output
from diffperf.measure.timing import TimedPipeline
from diffperf.models import flux, sd1, zoo
from diffperf.models.builtin import builtin_registry
from diffperf.models.store import PipelineStore
from diffperf.models.zoo import HubSource, SyntheticSource, count_parameters, save_synthetic_pipeline

CPU = torch.device("cpu")
FAMILY = flux.FAMILY
PROMPT = "a photo of an astronaut riding a horse on mars"


class Untimed:
    """A timed call's instrument with nothing to synchronise."""

    @staticmethod
    def synchronize() -> None:
        return None


def meta(profile: str, name: str):
    return SyntheticSource(profile, CPU).build(FAMILY, name, meta=True)


def tiny_call(pipe) -> np.ndarray:
    """The tiny profile's call of the scenario: 7 steps at 128 px, guidance 3.5, 32 T5 tokens."""
    scenario = FAMILY.scenario("astronaut-flux").scaled(FAMILY.scale("tiny"))
    return pipe(**scenario.pipeline_kwargs(), generator=torch.Generator().manual_seed(scenario.seed),
                output_type="np").images


def tiny_pipeline(source) -> FluxPipeline:
    modules = {slot: source.build(FAMILY, slot) for slot in FAMILY.slots}
    scheduler = FAMILY.make_scheduler("flow-match-euler", source.scheduler_config(FAMILY))
    return zoo.assemble_pipeline(FAMILY, modules, scheduler)


# --------------------------------------------------------------------------- full-size architectures


@pytest.mark.parametrize(("component", "cls", "parameters"), [
    ("transformer", FluxTransformer2DModel, 11_901_408_320),  # FLUX.1-dev
    ("transformer-schnell", FluxTransformer2DModel, 11_891_178_560),  # no guidance embedding
    ("text_encoder", CLIPTextModel, 123_060_480),  # CLIP ViT-L/14, as SD v1's
    ("text_encoder_2", T5EncoderModel, 4_762_310_656),  # T5 v1.1 XXL's encoder
    ("vae", AutoencoderKL, 83_819_683),  # the SD autoencoder with 16 latent channels, no quant convolutions
])
def test_full_profile_parameter_counts(component, cls, parameters):
    module = meta("full", component)
    assert type(module) is cls and all(parameter.is_meta for parameter in module.parameters())
    assert count_parameters(module) == parameters
    declared = FAMILY.component(component).published_parameters
    assert declared is None or declared == parameters


def test_full_transformer_is_flux_dev():
    transformer = meta("full", "transformer")
    assert (len(transformer.transformer_blocks), len(transformer.single_transformer_blocks)) == (19, 38)
    config = transformer.config
    assert config.guidance_embeds and not meta("full", "transformer-schnell").config.guidance_embeds
    assert sum(config.axes_dims_rope) == config.attention_head_dim == 128
    assert config.in_channels == 4 * flux.VAE["latent_channels"]  # 2x2 patches of the 16 latent channels
    assert config.joint_attention_dim == flux.T5_XXL["d_model"]
    assert config.pooled_projection_dim == sd1.TEXT_ENCODER["hidden_size"]
    vae = meta("full", "vae")
    assert vae.quant_conv is None and vae.post_quant_conv is None
    assert (vae.config.scaling_factor, vae.config.shift_factor) == (0.3611, 0.1159)
    assert FAMILY.component("transformer-schnell").hub.repo == "black-forest-labs/FLUX.1-schnell"


def test_scheduler_shifts_with_the_image_size():
    scheduler = FAMILY.make_scheduler("flow-match-euler")
    assert type(scheduler) is FlowMatchEulerDiscreteScheduler
    config = scheduler.config
    assert config.use_dynamic_shifting and (config.base_shift, config.max_shift) == (0.5, 1.15)
    assert (config.base_image_seq_len, config.max_image_seq_len, config.shift) == (256, 4096, 3.0)


def test_scenario_is_the_pipeline_default_and_tiny_runs_7_steps_at_128_px():
    scenario = FAMILY.scenario("astronaut-flux")
    assert (scenario.prompt, scenario.images, scenario.steps, scenario.resolution, scenario.seed) == (
        PROMPT, 1, 28, 1024, 0)
    assert scenario.arguments == {"guidance_scale": 3.5, "max_sequence_length": 512}  # FluxPipeline's defaults
    tiny = scenario.scaled(FAMILY.scale("tiny"))
    assert (tiny.resolution, tiny.steps) == (128, 7)
    assert tiny.arguments == {"guidance_scale": 3.5, "max_sequence_length": 32}  # the tiny T5 reads 32 tokens
    assert scenario.scaled(FAMILY.scale("full")) == scenario


def test_flux_schnell_and_the_first_block_cache_run_by_default_on_the_cpu_the_rest_is_opt_in_there():
    registry = builtin_registry()
    variants = [variant for variant in registry.variants.values() if variant.family == "flux"]
    assert [variant.name for variant in variants] == ["flux", "flux-bf16", "flux-schnell",
                                                      *(f"flux-{label}" for label in flux.CACHES)]
    default = {"flux", "flux-schnell", "flux-fbcache"}
    assert {variant.name for variant in variants if registry.skip_reason(variant, None, CPU) is None} == default
    # Two FLUX.1 models in one case pass 80 GB of device memory: opt-in on CUDA too.
    cuda = torch.device("cuda")
    assert {variant.name for variant in variants if registry.skip_reason(variant, None, cuda) is not None} == {
        "flux-bf16", "flux-schnell"}
    assert "115 GB" in registry.skip_reason(registry.variant("flux-schnell"), None, cuda)
    assert all(variant.planned_tier == 2 for variant in variants)  # the GPU jobs are sized on tier 1
    assert registry.reference_chain("flux-bf16") == ["flux-bf16", "flux"]
    assert registry.skip_reason(registry.variant("flux-bf16"), None, CPU).startswith("flux-bf16 is opt-in (fp32 ")
    assert registry.skip_reason(registry.variant("flux-bf16"), None, CPU, frozenset({"--perf-speedups"})) is None


# --------------------------------------------------------------------------- the tiny profile


def test_tiny_profile_keeps_the_structure():
    transformer = meta("tiny", "transformer")
    assert len(transformer.transformer_blocks) >= 1 and len(transformer.single_transformer_blocks) >= 1
    config = transformer.config
    assert config.guidance_embeds and not meta("tiny", "transformer-schnell").config.guidance_embeds
    assert sum(config.axes_dims_rope) == config.attention_head_dim
    assert config.in_channels == 64 and config.patch_size == 1
    assert config.joint_attention_dim == flux.TINY_T5["d_model"]
    assert config.pooled_projection_dim == flux.TINY_TEXT_ENCODER["hidden_size"]
    for key in ("feed_forward_proj", "vocab_size", "relative_attention_num_buckets"):
        assert flux.TINY_T5[key] == flux.T5_XXL[key], key
    vae = meta("tiny", "vae")
    assert vae.config.latent_channels == 16 and len(vae.config.block_out_channels) == 4  # 8x downsampling
    assert vae.config.down_block_types == flux.VAE["down_block_types"]
    assert vae.quant_conv is None and vae.post_quant_conv is None
    assert (vae.config.scaling_factor, vae.config.shift_factor) == (0.3611, 0.1159)
    assert sum(count_parameters(meta("tiny", name)) for name in ("transformer", "text_encoder_2", "vae")) < 10e6


def test_offline_t5_tokenizer():
    tokenizer = SyntheticSource("tiny", CPU).build(FAMILY, "tokenizer_2")
    assert isinstance(tokenizer, T5TokenizerFast) and zoo.is_tokenizer(FAMILY.component("tokenizer_2"))
    assert (tokenizer.pad_token, tokenizer.eos_token, tokenizer.unk_token) == ("<pad>", "</s>", "<unk>")
    assert (tokenizer.pad_token_id, tokenizer.eos_token_id, tokenizer.unk_token_id) == (0, 1, 2)
    assert tokenizer.model_max_length == 512 and len(tokenizer) <= flux.TINY_T5["vocab_size"]
    ids = tokenizer(PROMPT).input_ids
    assert ids[-1] == 1 and 2 not in ids and len(ids) == 27  # the prompt fits the tiny profile's 32 tokens
    assert tokenizer.decode(ids, skip_special_tokens=True) == PROMPT
    # As the pipelines' encode_prompt calls it.
    batch = tokenizer([PROMPT, ""], padding="max_length", max_length=32, truncation=True, return_tensors="pt")
    assert batch.input_ids.shape == (2, 32)
    assert batch.input_ids[0, :len(ids)].tolist() == ids and (batch.input_ids[0, len(ids):] == 0).all()
    assert batch.input_ids[1].tolist() == [1] + [0] * 31
    assert tokenizer(PROMPT, max_length=8, truncation=True).input_ids == ids[:7] + [1]
    assert tokenizer("x\u00e9").input_ids == [tokenizer.convert_tokens_to_ids("▁x"), 2, 1]  # not in the vocabulary
    # The CLIP tokenizer is CLIP's, as SD v1's.
    assert SyntheticSource("tiny", CPU).build(FAMILY, "tokenizer")(PROMPT).input_ids == \
        zoo.offline_clip_tokenizer()(PROMPT).input_ids


def test_a_tokenizer_without_an_offline_builder_is_refused():
    family = replace(FAMILY, components=tuple(
        replace(component, cls=BertTokenizer) if component.name == "tokenizer_2" else component
        for component in FAMILY.components))
    offline = ", ".join(cls.__name__ for cls in (CLIPTokenizer, T5TokenizerFast))
    with pytest.raises(ValueError, match=f"^tokenizer tokenizer_2: no offline BertTokenizer on the synthetic "
                                         f"profiles: declare one of {offline}$"):
        SyntheticSource("tiny", CPU).build(family, "tokenizer_2")


# --------------------------------------------------------------------------- pipelines


@pytest.mark.slow
def test_tiny_pipeline_makes_a_healthy_image_with_the_guidance_embedding():
    pipe = tiny_pipeline(SyntheticSource("tiny", CPU))
    assert type(pipe) is FluxPipeline and pipe.vae_scale_factor == 8
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs),
                                                        with_kwargs=True)
    try:
        image = tiny_call(pipe)
    finally:
        handle.remove()
    assert image.shape == (1, 128, 128, 3) and np.isfinite(image).all()
    assert image.std() > 0.02 and image.max() - image.min() > 0.2  # not flat
    assert len(calls) == 7  # one call per step: the guidance is an embedding, no doubled batch
    first = calls[0]
    assert first["hidden_states"].shape == (1, 8 * 8, 64)  # 128 px: a 16x16 latent in 2x2 patches
    assert first["encoder_hidden_states"].shape == (1, 32, flux.TINY_T5["d_model"])  # max_sequence_length 32
    assert first["guidance"].tolist() == [3.5]
    assert np.array_equal(image, tiny_call(pipe))  # seeded: the same image again


@pytest.mark.slow
def test_tiny_pipeline_on_the_hub_profile_loads_what_was_saved(tmp_path):
    """The real loading path, offline: a tiny FLUX saved with save_pretrained loads back with equal weights and
    the same tokenizers and scheduler, and makes the same image."""
    pipeline_dir = save_synthetic_pipeline(FAMILY, "tiny", tmp_path / "flux")
    hub = HubSource(CPU, {"flux": str(pipeline_dir)})
    source = SyntheticSource("tiny", CPU)
    for name in FAMILY.slots:
        loaded, built = hub.build(FAMILY, name), source.build(FAMILY, name)
        if zoo.is_tokenizer(FAMILY.component(name)):
            assert type(loaded) is type(built) and loaded.model_max_length == built.model_max_length, name
            assert loaded(PROMPT).input_ids == built(PROMPT).input_ids, name
            continue
        expected, got = built.state_dict(), loaded.state_dict()
        assert got.keys() == expected.keys() and all(torch.equal(got[key], expected[key]) for key in expected), name
        assert count_parameters(hub.build(FAMILY, name, meta=True)) == count_parameters(loaded), name
    config = hub.scheduler_config(FAMILY)
    assert config["_class_name"] == "FlowMatchEulerDiscreteScheduler"
    assert all(config[key] == value for key, value in flux.SCHEDULER.items())
    assert np.array_equal(tiny_call(tiny_pipeline(hub)), tiny_call(tiny_pipeline(source)))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["flux", "flux-bf16"])
def test_variants_run_as_a_timed_case_runs_them(name):
    """Through the store and the timed call, with the call plan's arguments, as `pytest perf --perf-speedups` does."""
    registry = builtin_registry()
    variant = registry.variant(name)
    reason = registry.skip_reason(variant, None, CPU, frozenset({"--perf-speedups"}))
    if reason is not None:
        pytest.skip(reason)  # bf16 kernels
    store = PipelineStore(registry, SyntheticSource("tiny", CPU), CPU)
    scenario = FAMILY.scenario("astronaut-flux").scaled(FAMILY.scale("tiny"))
    pipe = store.pipeline(variant, scenario)
    call = store.call_plan(variant, scenario)
    assert call.arguments["max_sequence_length"] == 32 and call.arguments["guidance_scale"] == 3.5
    assert pipe.transformer.dtype == (torch.bfloat16 if name == "flux-bf16" else torch.float32)
    timed = TimedPipeline(pipe, scenario, Untimed(), lambda: store.during_calls(variant), call.arguments)
    image = timed().images
    assert image.shape == (1, 128, 128, 3) and np.isfinite(image).all()
    assert set(timed.stage_history[-1]) == {"text_encoding", "denoising", "decoding"}
    assert np.isfinite(raw_output(store.pipeline(variant, scenario), scenario, arguments=call.arguments)).all()


def test_schnell_is_its_transformer_at_4_steps_guidance_0_a_static_shift_and_at_most_256_tokens():
    registry = builtin_registry()
    variant = registry.variant("flux-schnell")
    plan = variant.plan(FAMILY)
    assert plan.components["transformer"] == "transformer-schnell" and variant.reference == "flux"
    full = variant.call_plan(FAMILY, FAMILY.scenario("astronaut-flux"))
    assert (full.steps, full.arguments["guidance_scale"], full.arguments["max_sequence_length"]) == (4, 0.0, 256)
    assert full.scheduler_config == {"use_dynamic_shifting": False, "shift": 1.0}
    tiny = variant.call_plan(FAMILY, FAMILY.scenario("astronaut-flux").scaled(FAMILY.scale("tiny")))
    assert tiny.arguments["max_sequence_length"] == 32  # the tiny profile's fewer tokens are kept
    scheduler = FAMILY.make_scheduler(tiny.scheduler, None, tiny.scheduler_config)
    assert not scheduler.config.use_dynamic_shifting and scheduler.config.shift == 1.0
    assert variant.fp32_check() is None  # another model and another sampler: its own image only
