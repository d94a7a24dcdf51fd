"""Stable Diffusion 3.5 Medium: an MMDiT transformer family and its variants, declared with the same API as any
user's family (docs/extending.md).

``full`` is the exact SD3.5 Medium architecture (stabilityai/stable-diffusion-3.5-medium's config.json
files): an SD3Transformer2DModel of 24 joint blocks (the image and text tokens with their own weights, one
joint attention) whose first 13 add a second attention over the image tokens alone (MMDiT-X's dual
attention), RMS-normalised queries and keys, 2x2 patches with a 384 x 384 table of positional embeddings
cropped to the image, three text encoders (CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 with their projections,
whose pooled outputs make the 2048-dimensional pooled conditioning and whose penultimate states, padded to
4096, precede T5 v1.1 XXL's states in the sequence), and FLUX's 16-channel autoencoder with its own scaling
and shift. Classifier-free guidance doubles the batch of every transformer call.

``tiny`` keeps all of that, dual and plain joint blocks, the query-key norms and the three text encoders, at
a size two CPU cores run.
"""

from __future__ import annotations

from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, SD3Transformer2DModel, StableDiffusion3Pipeline
from transformers import CLIPTextModelWithProjection, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from diffperf.models import flux, sd1, sdxl
from diffperf.models.family import Component, Family, HubId
from diffperf.models.optin import TIME_BUDGET
from diffperf.models.caches import Cache
from diffperf.models.speedups import Precision
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scale, Scenario

NAME = "sd35"
HUB_MODEL = "stabilityai/stable-diffusion-3.5-medium"

# stabilityai/stable-diffusion-3.5-medium transformer/config.json (SD3Transformer2DModel's defaults are SD3
# Medium's, none of SD3.5's)
TRANSFORMER = {
    "sample_size": 128,
    "patch_size": 2,
    "in_channels": 16,
    "out_channels": 16,
    "num_layers": 24,
    "attention_head_dim": 64,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,  # T5-XXL's d_model
    "caption_projection_dim": 1536,  # the transformer's width, 24 x 64
    "pooled_projection_dim": 2048,  # CLIP ViT-L/14's 768 and OpenCLIP ViT-bigG/14's 1280 projections
    "pos_embed_max_size": 384,
    "dual_attention_layers": list(range(13)),
    "qk_norm": "rms_norm",
}

# text_encoder/config.json: CLIP ViT-L/14's text tower with its projection
TEXT_ENCODER = sd1.TEXT_ENCODER

# text_encoder_2/config.json: OpenCLIP ViT-bigG/14's text tower with its projection, as SDXL's
TEXT_ENCODER_2 = sdxl.TEXT_ENCODER_2

# text_encoder_3/config.json: T5 v1.1 XXL's encoder, as FLUX's
TEXT_ENCODER_3 = flux.T5_XXL

# vae/config.json: FLUX.1's autoencoder config with SD3's scaling and shift
VAE = {**flux.VAE, "scaling_factor": 1.5305, "shift_factor": 0.0609}

# scheduler/scheduler_config.json
SCHEDULER = {"num_train_timesteps": 1000, "shift": 3.0}

TINY_TEXT_ENCODER = sdxl.TINY_TEXT_ENCODER  # hidden size and projection 32
TINY_TEXT_ENCODER_2 = sdxl.TINY_TEXT_ENCODER_2  # hidden size and projection 64, twice the layers
TINY_TEXT_ENCODER_3 = flux.TINY_T5  # d_model 128: room for the two CLIP states side by side (32 + 64)
TINY_TRANSFORMER = {
    **TRANSFORMER,
    "sample_size": 16,  # 128 px
    "num_layers": 3,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": TINY_TEXT_ENCODER_3["d_model"],
    "caption_projection_dim": 2 * 16,
    "pooled_projection_dim": TINY_TEXT_ENCODER["projection_dim"] + TINY_TEXT_ENCODER_2["projection_dim"],
    "pos_embed_max_size": 64,  # up to 1024 px
    "dual_attention_layers": [0],  # a dual block, a plain one and the last (whose text stream ends there)
}
TINY_VAE = {**flux.TINY_VAE, "scaling_factor": VAE["scaling_factor"], "shift_factor": VAE["shift_factor"]}

SCENARIOS = (
    # StableDiffusion3Pipeline's defaults for SD3.5 Medium: 28 steps at 1024x1024, guidance 7.0, T5 reading 256
    # tokens.
    Scenario("astronaut-sd35", "a photo of an astronaut riding a horse on mars", images=1, steps=28,
             scheduler="flow-match-euler", seed=0, resolution=1024,
             arguments={"guidance_scale": 7.0, "max_sequence_length": 256}),
)

FAMILY = Family(
    name=NAME,
    description="Stable Diffusion 3.5 Medium: MMDiT-X transformer 2,243.2M, CLIP ViT-L/14, OpenCLIP ViT-bigG/14 "
                "and T5 v1.1 XXL, 16-channel AutoencoderKL",
    pipeline=StableDiffusion3Pipeline,
    components=(
        Component("transformer", SD3Transformer2DModel, TRANSFORMER, TINY_TRANSFORMER,
                  HubId(HUB_MODEL, "transformer")),
        Component("text_encoder", CLIPTextModelWithProjection, TEXT_ENCODER, TINY_TEXT_ENCODER,
                  HubId(HUB_MODEL, "text_encoder")),
        Component("text_encoder_2", CLIPTextModelWithProjection, TEXT_ENCODER_2, TINY_TEXT_ENCODER_2,
                  HubId(HUB_MODEL, "text_encoder_2")),
        Component("text_encoder_3", T5EncoderModel, TEXT_ENCODER_3, TINY_TEXT_ENCODER_3,
                  HubId(HUB_MODEL, "text_encoder_3")),
        Component("tokenizer", CLIPTokenizer, sd1.TOKENIZER, sd1.TOKENIZER, HubId(HUB_MODEL, "tokenizer")),
        Component("tokenizer_2", CLIPTokenizer, sd1.TOKENIZER, sd1.TOKENIZER, HubId(HUB_MODEL, "tokenizer_2")),
        Component("tokenizer_3", T5TokenizerFast, flux.T5_TOKENIZER, flux.T5_TOKENIZER,
                  HubId(HUB_MODEL, "tokenizer_3")),
        Component("vae", AutoencoderKL, VAE, TINY_VAE, HubId(HUB_MODEL, "vae")),
    ),
    scheduler=FlowMatchEulerDiscreteScheduler,
    scheduler_config=SCHEDULER,
    schedulers={"flow-match-euler": FlowMatchEulerDiscreteScheduler},
    scenarios=SCENARIOS,
    baseline=NAME,
    # 3 of 28 steps; the tiny T5 reads 32 tokens, not 256
    tiny_scale=Scale(resolution=128, step_fraction=0.1, arguments={"max_sequence_length": 32}),
    hub_repo=HUB_MODEL,
    pipeline_kwargs={"image_encoder": None, "feature_extractor": None},
)

# On the CPU `sd35` runs by default and `sd35-bf16` is opt-in there (--perf-speedups: time budget). On GPUs they
# run, in tier 2: a time budget fits them in after the other families' first tier, and the GPU jobs sized on that
# tier (diffperf.plan.jobs) keep their length.

# diffusers' cache hooks, declared as on FLUX (diffperf.models.flux.CACHES) with SD3's classifier-free guidance
# batch for FasterCache to skip. None runs with diffusers 0.42.1: SD3Transformer2DModel is not a CacheMixin and
# StableDiffusion3Pipeline has neither cache_context nor current_timestep, so each skips saying so.
CACHES = {**flux.CACHES, "fastercache": Cache("fastercache")}

VARIANTS = (
    Variant(NAME, NAME, description="SD3.5 Medium: fp32 weights, default attention (SDPA)", tier=2),
    Variant("sd35-bf16", NAME, (Precision("bfloat16"),), NAME, opt_in=TIME_BUDGET),
    # Not opt-in: each skips with the reason its pipeline cannot take it (and runs where a diffusers gives SD3 the
    # cache hooks).
    *(Variant(f"{NAME}-{label}", NAME, (cache,), NAME, tier=2) for label, cache in CACHES.items()),
)


def declare(registry) -> None:
    """Declare the family and its variants (diffperf's own ``pytest_diffperf_declare``)."""
    registry.add(FAMILY, *VARIANTS)
