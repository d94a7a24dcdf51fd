"""FLUX.1-dev: a rectified-flow transformer (DiT) family and its variants, declared with the same API as any
user's family (docs/extending.md).

``full`` is the exact FLUX.1-dev architecture (black-forest-labs/FLUX.1-dev's config.json files): a
FluxTransformer2DModel of 19 double-stream blocks (the image and text tokens with their own weights, one
joint attention) and 38 single-stream blocks over the concatenated tokens, rotary position embeddings over
three axes (16 + 56 + 56 = the head dimension 128), the guidance scale as an embedding (the distilled
guidance: one transformer call per step, no doubled batch), CLIP ViT-L/14's pooled output and T5 v1.1
XXL's encoder states as conditioning, and a 16-channel AutoencoderKL whose latents are packed into 2x2
patches (64 channels per token). FLUX.1-schnell's transformer (no guidance embedding) is the same
architecture otherwise. Full-size FLUX holds 11.9B transformer parameters (48 GB in fp32): it is only
ever built on the meta device on a CPU host.

``tiny`` keeps all of that, double- and single-stream blocks, the three rotary axes, the guidance
embedding and both text encoders, at a size two CPU cores run.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from diffusers import AutoencoderKL, FlowMatchEulerDiscreteScheduler, FluxPipeline, FluxTransformer2DModel
from transformers import CLIPTextModel, CLIPTokenizer, T5EncoderModel, T5TokenizerFast

from diffperf.models import sd1
from diffperf.models.family import Component, Family, HubId
from diffperf.models.optin import TIME_BUDGET, OptIn
from diffperf.models.caches import Cache
from diffperf.models.speedups import FewStep, Precision, SpeedUp, UseComponent
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scale, Scenario

NAME = "flux"
HUB_MODEL = "black-forest-labs/FLUX.1-dev"
SCHNELL_MODEL = "black-forest-labs/FLUX.1-schnell"

# black-forest-labs/FLUX.1-dev transformer/config.json, with the two class defaults it leaves out
# (out_channels None: in_channels; axes_dims_rope) written out.
TRANSFORMER = {
    "patch_size": 1,
    "in_channels": 64,  # 16 latent channels in 2x2 patches
    "out_channels": None,
    "num_layers": 19,  # double-stream blocks
    "num_single_layers": 38,
    "attention_head_dim": 128,
    "num_attention_heads": 24,
    "joint_attention_dim": 4096,  # T5-XXL's d_model
    "pooled_projection_dim": 768,  # CLIP ViT-L/14's pooled output
    "guidance_embeds": True,
    "axes_dims_rope": [16, 56, 56],  # rotary dimensions of the text/image index and the two image axes
}

# black-forest-labs/FLUX.1-schnell transformer/config.json: the same without the guidance embedding
TRANSFORMER_SCHNELL = {**TRANSFORMER, "guidance_embeds": False}

# text_encoder_2/config.json: google/t5-v1_1-xxl's encoder (the same in SD3's text_encoder_3)
T5_XXL = {
    "vocab_size": 32128,
    "d_model": 4096,
    "d_kv": 64,
    "d_ff": 10240,
    "num_layers": 24,
    "num_decoder_layers": 24,
    "num_heads": 64,
    "relative_attention_num_buckets": 32,
    "relative_attention_max_distance": 128,
    "dropout_rate": 0.1,
    "layer_norm_epsilon": 1e-6,
    "initializer_factor": 1.0,
    "feed_forward_proj": "gated-gelu",
    "is_encoder_decoder": True,
    "tie_word_embeddings": False,
    "use_cache": True,
    "pad_token_id": 0,
    "eos_token_id": 1,
    "decoder_start_token_id": 0,
}

# tokenizer_2/tokenizer_config.json (T5TokenizerFast)
T5_TOKENIZER = {"model_max_length": 512}

# vae/config.json: the SD autoencoder with 16 latent channels and no quant convolutions (SD3's, with
# FLUX's own scaling and shift)
VAE = {**sd1.VAE, "latent_channels": 16, "sample_size": 1024, "mid_block_add_attention": True, "use_quant_conv": False,
       "use_post_quant_conv": False, "scaling_factor": 0.3611, "shift_factor": 0.1159, "latents_mean": None,
       "latents_std": None, "force_upcast": True}

# scheduler/scheduler_config.json: the shift follows the image's token count, from 0.5 at 256 tokens
# (512 px) to 1.15 at 4096 (1024 px)
SCHEDULER = {
    "num_train_timesteps": 1000,
    "shift": 3.0,
    "use_dynamic_shifting": True,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}

TINY_TEXT_ENCODER = sd1.TINY_TEXT_ENCODER  # CLIP ViT-L/14's structure, hidden size 64
TINY_T5 = {**T5_XXL, "d_model": 128, "d_kv": 32, "d_ff": 256, "num_layers": 2, "num_decoder_layers": 2,
           "num_heads": 4}
TINY_TRANSFORMER = {
    **TRANSFORMER,
    "num_layers": 1,
    "num_single_layers": 2,
    "attention_head_dim": 16,
    "num_attention_heads": 2,
    "joint_attention_dim": TINY_T5["d_model"],
    "pooled_projection_dim": TINY_TEXT_ENCODER["hidden_size"],
    "axes_dims_rope": [4, 6, 6],  # the head dimension, 16
}
TINY_TRANSFORMER_SCHNELL = {**TINY_TRANSFORMER, "guidance_embeds": False}
TINY_VAE = {**VAE, "block_out_channels": [32, 32, 64, 64], "layers_per_block": 1, "norm_num_groups": 16,
            "sample_size": 128}  # 4 stages: the 8x downsampling kept

SCENARIOS = (
    # FluxPipeline's defaults for FLUX.1-dev: 28 steps at 1024x1024, guidance 3.5 (an embedding), T5 reading
    # 512 tokens.
    Scenario("astronaut-flux", "a photo of an astronaut riding a horse on mars", images=1, steps=28,
             scheduler="flow-match-euler", seed=0, resolution=1024,
             arguments={"guidance_scale": 3.5, "max_sequence_length": 512}),
)

FAMILY = Family(
    name=NAME,
    description="FLUX.1-dev: transformer 11,901.4M (19 double- and 38 single-stream blocks), CLIP ViT-L/14 and "
                "T5 v1.1 XXL, 16-channel AutoencoderKL",
    pipeline=FluxPipeline,
    components=(
        Component("transformer", FluxTransformer2DModel, TRANSFORMER, TINY_TRANSFORMER,
                  HubId(HUB_MODEL, "transformer"), published_parameters=11_901_408_320),
        Component("transformer-schnell", FluxTransformer2DModel, TRANSFORMER_SCHNELL, TINY_TRANSFORMER_SCHNELL,
                  HubId(SCHNELL_MODEL, "transformer"), slot="transformer", seed=1),
        Component("text_encoder", CLIPTextModel, sd1.TEXT_ENCODER, TINY_TEXT_ENCODER,
                  HubId(HUB_MODEL, "text_encoder"), published_parameters=123_060_480),
        Component("text_encoder_2", T5EncoderModel, T5_XXL, TINY_T5, HubId(HUB_MODEL, "text_encoder_2")),
        Component("tokenizer", CLIPTokenizer, sd1.TOKENIZER, sd1.TOKENIZER, HubId(HUB_MODEL, "tokenizer")),
        Component("tokenizer_2", T5TokenizerFast, T5_TOKENIZER, T5_TOKENIZER, HubId(HUB_MODEL, "tokenizer_2")),
        Component("vae", AutoencoderKL, VAE, TINY_VAE, HubId(HUB_MODEL, "vae")),
    ),
    scheduler=FlowMatchEulerDiscreteScheduler,
    scheduler_config=SCHEDULER,
    schedulers={"flow-match-euler": FlowMatchEulerDiscreteScheduler},
    scenarios=SCENARIOS,
    baseline=NAME,
    # 7 of 28 steps (more than a third of FLUX.1-schnell's 4, so that schnell against dev stays a speed-up, and
    # the caches have steps to skip); the tiny T5 reads 32 tokens, not 512
    tiny_scale=Scale(resolution=128, step_fraction=0.25, arguments={"max_sequence_length": 32}),
    hub_repo=HUB_MODEL,
    pipeline_kwargs={"image_encoder": None, "feature_extractor": None},
)

# On the CPU `flux`, `flux-schnell` and `flux-fbcache` run by default; bf16 and the other caches are opt-in there
# (--perf-speedups: time budget, docs/variants.md). On GPUs they all run, in tier 2: a time budget fits them in
# after the other families' first tier, and the GPU jobs sized on that tier (diffperf.plan.jobs) keep their length.



@dataclass(frozen=True, repr=False)
class TextTokens(SpeedUp):
    """T5 reads at most ``tokens`` tokens in each call (``max_sequence_length``): FLUX.1-schnell's pipeline
    takes at most 256, where FLUX.1-dev's reads 512. A profile that reads fewer already keeps its own."""

    tokens: int = 256

    @property
    def name(self) -> str:
        return f"t5-{self.tokens}-tokens"

    @property
    def description(self) -> str:
        return f"T5 reads at most {self.tokens} tokens"

    def call(self, call):
        call.arguments["max_sequence_length"] = min(call.arguments.get("max_sequence_length", self.tokens),
                                                    self.tokens)


# FLUX.1-schnell at its pipeline's defaults: the timestep-distilled transformer (no guidance embedding), 4 steps,
# guidance 0, the static shift of 1.0 of its scheduler_config.json, T5 reading at most 256 tokens.
SCHNELL = (
    UseComponent("transformer-schnell"),
    FewStep("schnell-sampling", steps=4, guidance_scale=0.0,
            scheduler_config={"use_dynamic_shifting": False, "shift": 1.0}),
    TextTokens(256),
)

# diffusers' cache hooks on the transformer, each against the fp32 baseline (docs/variants.md, "Caches"). Each skips
# the work of 2 or 3 of the tiny profile's 7 steps (timesteps 1000, 905, 800, 680, 545, 390, 210) and of some of the
# full 28. diffusers' defaults but for three settings: the first-block threshold is 0.4 (diffusers: 0.05, which skips
# nothing on these random-weight models: their first block's residual changes by 0.22 to 0.61 a step on the tiny
# profile, by 0.38 to 0.53 on the full one), TaylorSeer keeps its Taylor factors in fp32 as the variant's weights
# (diffusers: bf16), and PAB's skip range of 2 is written out (diffusers warns and takes 2). FLUX.1-dev's guidance
# is an embedding: FasterCache has no unconditional batch to skip (is_guidance_distilled).
CACHES = {
    "fbcache": Cache("first-block", threshold=0.4),
    "taylorseer": Cache("taylorseer", taylor_factors_dtype=torch.float32),
    "magcache": Cache("magcache"),
    "fastercache": Cache("fastercache", is_guidance_distilled=True),
    "pab": Cache("pab", spatial_attention_block_skip_range=2),
}

# A case holds its variant and its reference at once. `flux` in fp32 holds 67 GB of weights (transformer 47.6 GB,
# T5-XXL 19.0 GB); beside it a second transformer (schnell's, 47.6 GB) or bf16 copies of the weights (33.7 GB) pass
# the 80 GB of an A100 or H100: those two cases are opt-in on CUDA too (an H200's 141 GB holds them).
TWO_FLUX_MODELS = OptIn(why="fp32 FLUX.1-dev (67 GB) and its bf16 copy (34 GB) in one case pass an A100's or H100's "
                        "80 GB; time budget on the CPU")
TWO_FLUX_TRANSFORMERS = OptIn(devices=("cuda",), why="two fp32 FLUX.1 transformers and T5-XXL need about 115 GB of "
                              "device memory")

VARIANTS = (
    Variant(NAME, NAME, description="FLUX.1-dev: fp32 weights, default attention (SDPA)", tier=2),
    Variant("flux-bf16", NAME, (Precision("bfloat16"),), NAME, opt_in=TWO_FLUX_MODELS),
    Variant("flux-schnell", NAME, SCHNELL, NAME, tier=2, opt_in=TWO_FLUX_TRANSFORMERS,
            description="FLUX.1-schnell against FLUX.1-dev: its transformer, 4 steps at guidance 0 (dev: the "
                        "scenario's steps; on tiny, 7) and T5 reading at most 256 tokens; with random weights its "
                        "image is not the published one, and is checked against its own stored image"),
    # On the CPU the first-block cache runs by default, the other caches are opt-in (time budget).
    *(Variant(f"{NAME}-{label}", NAME, (cache,), NAME, opt_in=None if label == "fbcache" else TIME_BUDGET, tier=2)
      for label, cache in CACHES.items()),
)


def declare(registry) -> None:
    """Declare the family and its variants (diffperf's own ``pytest_diffperf_declare``)."""
    registry.add(FAMILY, *VARIANTS)
