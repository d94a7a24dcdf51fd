"""Unit tests of the Stable Diffusion 3.5 Medium family: the exact full-size architectures (counted on the meta
device), a tiny profile that keeps their structure (dual attention, query-key norms, three text encoders), and a
tiny pipeline call."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from transformers import CLIPTextModelWithProjection, T5EncoderModel, T5TokenizerFast

from diffperf.models import sd3, zoo
from diffperf.models.builtin import builtin_registry
from diffperf.models.optin import TIME_BUDGET
from diffperf.models.zoo import SyntheticSource, count_parameters

CPU = torch.device("cpu")
FAMILY = sd3.FAMILY
PROMPT = "a photo of an astronaut riding a horse on mars"


def meta(profile: str, name: str):
    return SyntheticSource(profile, CPU).build(FAMILY, name, meta=True)


def dual(transformer) -> list[bool]:
    """Whether each joint block has MMDiT-X's second attention over the image tokens."""
    return [block.attn2 is not None for block in transformer.transformer_blocks]


def rms_normed(transformer) -> bool:
    attention = transformer.transformer_blocks[0].attn
    return type(attention.norm_q).__name__ == "RMSNorm" and type(attention.norm_added_k).__name__ == "RMSNorm"


# --------------------------------------------------------------------------- full-size architectures


@pytest.mark.parametrize(("component", "cls", "parameters"), [
    ("transformer", SD3Transformer2DModel, 2_243_171_520),
    ("text_encoder", CLIPTextModelWithProjection, 123_650_304),  # CLIP ViT-L/14 with its projection
    ("text_encoder_2", CLIPTextModelWithProjection, 694_659_840),  # OpenCLIP ViT-bigG/14 with its projection
    ("text_encoder_3", T5EncoderModel, 4_762_310_656),  # T5 v1.1 XXL's encoder
    ("vae", AutoencoderKL, 83_819_683),  # FLUX's autoencoder config
])
def test_full_profile_parameter_counts(component, cls, parameters):
    module = meta("full", component)
    assert type(module) is cls and all(parameter.is_meta for parameter in module.parameters())
    assert count_parameters(module) == parameters
    declared = FAMILY.component(component).published_parameters
    assert declared is None or declared == parameters


def test_full_transformer_is_sd35_medium():
    transformer = meta("full", "transformer")
    # The positional embeddings of a 384 x 384 patch grid, a buffer beside the learnable parameters.
    assert transformer.pos_embed.pos_embed.shape == (1, 384 * 384, 1536)
    assert sum(buffer.numel() for buffer in transformer.buffers()) == 226_492_416
    assert dual(transformer) == [True] * 13 + [False] * 11 and rms_normed(transformer)
    config = transformer.config
    assert config.caption_projection_dim == config.num_attention_heads * config.attention_head_dim == 1536
    assert config.pooled_projection_dim == sd3.TEXT_ENCODER["projection_dim"] + sd3.TEXT_ENCODER_2["projection_dim"]
    assert config.joint_attention_dim == sd3.TEXT_ENCODER_3["d_model"]
    vae = meta("full", "vae")
    assert vae.config.latent_channels == 16 and vae.quant_conv is None and vae.post_quant_conv is None
    assert (vae.config.scaling_factor, vae.config.shift_factor) == (1.5305, 0.0609)


def test_scheduler_and_scenario():
    scheduler = FAMILY.make_scheduler("flow-match-euler")
    assert type(scheduler) is FlowMatchEulerDiscreteScheduler
    assert scheduler.config.shift == 3.0 and not scheduler.config.use_dynamic_shifting
    scenario = FAMILY.scenario("astronaut-sd35")
    assert (scenario.prompt, scenario.images, scenario.steps, scenario.resolution, scenario.seed) == (
        PROMPT, 1, 28, 1024, 0)
    assert scenario.arguments == {"guidance_scale": 7.0, "max_sequence_length": 256}  # the pipeline's defaults
    tiny = scenario.scaled(FAMILY.scale("tiny"))
    assert (tiny.resolution, tiny.steps) == (128, 3)
    assert tiny.arguments == {"guidance_scale": 7.0, "max_sequence_length": 32}  # the tiny T5 reads 32 tokens


def test_sd35_runs_by_default_on_the_cpu_and_bf16_is_opt_in_there():
    registry = builtin_registry()
    variants = [variant for variant in registry.variants.values() if variant.family == "sd35"]
    assert [variant.name for variant in variants] == ["sd35", "sd35-bf16", *(f"sd35-{label}" for label in sd3.CACHES)]
    assert all((variant.opt_in == TIME_BUDGET) == (variant.name == "sd35-bf16") for variant in variants)
    assert all(variant.opt_in is None for variant in variants if variant.name != "sd35-bf16")
    assert all(variant.planned_tier == 2 for variant in variants)  # the GPU jobs are sized on tier 1
    assert registry.reference_chain("sd35-bf16") == ["sd35-bf16", "sd35"]


# --------------------------------------------------------------------------- the tiny profile


def test_tiny_profile_keeps_the_structure():
    transformer = meta("tiny", "transformer")
    blocks = dual(transformer)
    assert True in blocks and False in blocks[:-1]  # a dual block and a plain one besides the last
    assert rms_normed(transformer)
    config = transformer.config
    assert config.caption_projection_dim == config.num_attention_heads * config.attention_head_dim
    first, second, third = sd3.TINY_TEXT_ENCODER, sd3.TINY_TEXT_ENCODER_2, sd3.TINY_TEXT_ENCODER_3
    assert config.pooled_projection_dim == first["projection_dim"] + second["projection_dim"]
    assert config.joint_attention_dim == third["d_model"] >= first["hidden_size"] + second["hidden_size"]
    assert config.sample_size * 8 == 128 and config.pos_embed_max_size * config.patch_size * 8 >= 1024
    vae = meta("tiny", "vae")
    assert vae.config.latent_channels == 16 and len(vae.config.block_out_channels) == 4
    assert (vae.config.scaling_factor, vae.config.shift_factor) == (1.5305, 0.0609)
    tokenizer = SyntheticSource("tiny", CPU).build(FAMILY, "tokenizer_3")
    assert isinstance(tokenizer, T5TokenizerFast) and tokenizer.pad_token_id == 0
    assert len(tokenizer(PROMPT).input_ids) <= 32


# --------------------------------------------------------------------------- pipelines


@pytest.mark.slow
def test_tiny_pipeline_makes_a_healthy_image_with_guidance():
    source = SyntheticSource("tiny", CPU)
    modules = {slot: source.build(FAMILY, slot) for slot in FAMILY.slots}
    pipe = zoo.assemble_pipeline(FAMILY, modules, FAMILY.make_scheduler("flow-match-euler"))
    assert type(pipe) is StableDiffusion3Pipeline
    calls = []
    handle = pipe.transformer.register_forward_pre_hook(lambda module, args, kwargs: calls.append(kwargs),
                                                        with_kwargs=True)
    scenario = FAMILY.scenario("astronaut-sd35").scaled(FAMILY.scale("tiny"))
    try:
        image = pipe(**scenario.pipeline_kwargs(), generator=torch.Generator().manual_seed(scenario.seed),
                     output_type="np").images
    finally:
        handle.remove()
    assert image.shape == (1, 128, 128, 3) and np.isfinite(image).all()
    assert image.std() > 0.02 and image.max() - image.min() > 0.2  # not flat
    assert len(calls) == 3  # one call per step, both guidance halves in one batch
    first = calls[0]
    assert first["hidden_states"].shape == (2, 16, 16, 16)
    # The two CLIP encoders' 77 states, padded to T5's width, then T5's 32.
    assert first["encoder_hidden_states"].shape == (2, 77 + 32, sd3.TINY_TEXT_ENCODER_3["d_model"])
    assert first["pooled_projections"].shape == (2, FAMILY.component("transformer").tiny["pooled_projection_dim"])
