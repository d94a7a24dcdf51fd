"""Stable Diffusion v1.x: the source documents' family, its BK-SDM student, TAESD and its variants.

Declared with the same API a user declares a family with (docs/extending.md). ``full`` is the exact
SD v1.4 / v1.5 architecture (the models' config.json files); ``tiny`` keeps its structure (4 UNet
stages with cross-attention and a mid block, a KL VAE heavier than the tiny autoencoder) at a size
that runs on two CPU cores.
"""

from __future__ import annotations

from functools import partial

from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDIMScheduler,
    LCMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTokenizer

from diffperf.models.bksdm import derive_student
from diffperf.models.family import Component, Family, HubId
from diffperf.models.optin import NO_FASTER_ON_TINY, SLOW_TO_BUILD, SLOWER_ON_CPUS, TIME_BUDGET, OptIn
from diffperf.models.speedups import (
    TF32,
    Attention,
    ChannelsLast,
    Compile,
    DeepCache,
    FewStep,
    FusedQKV,
    Int8Dynamic,
    LoRA,
    Precision,
    Student,
    TinyAutoencoder,
    ToMe,
)
from diffperf.models.variants import Published, Variant
from diffperf.models.workloads import Scenario

NAME = "sd1"


def documented(scenario: str, speedup: float, note: str = "") -> Published:
    """A speed-up the source documents publish (diffusers' "speed up inference" page, its Colab A100 tables)."""
    return Published(scenario, round(speedup, 3), "A100", "the diffusers documentation's A100 tables", note)

HUB_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"

# SD v1.4 / v1.5 unet/config.json
UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "attention_head_dim": 8,
    "cross_attention_dim": 768,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
    "use_linear_projection": False,
}

# CLIP ViT-L/14 text tower (openai/clip-vit-large-patch14 text_config)
TEXT_ENCODER = {
    "hidden_size": 768,
    "intermediate_size": 3072,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "quick_gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 768,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

# SD v1.x vae/config.json
VAE = {
    "in_channels": 3,
    "out_channels": 3,
    "block_out_channels": [128, 256, 512, 512],
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "layers_per_block": 2,
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 512,
    "scaling_factor": 0.18215,
    "act_fn": "silu",
}

# diffusers AutoencoderTiny defaults (madebyollin/taesd)
TAESD = {
    "encoder_block_out_channels": [64, 64, 64, 64],
    "decoder_block_out_channels": [64, 64, 64, 64],
    "num_encoder_blocks": [1, 3, 3, 3],
    "num_decoder_blocks": [3, 3, 3, 1],
    "act_fn": "relu",
    "latent_channels": 4,
    "scaling_factor": 1.0,
    "latent_magnitude": 3,
    "latent_shift": 0.5,
}

# SD v1.x scheduler/scheduler_config.json (PNDM); DDIM is DDIMScheduler.from_config of this.
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "skip_prk_steps": True,
    "steps_offset": 1,
    "set_alpha_to_one": False,
    "clip_sample": False,
    "prediction_type": "epsilon",
}

TOKENIZER = {"model_max_length": 77}

TINY_UNET = {**UNET, "sample_size": 16, "block_out_channels": [32, 64, 64, 64], "attention_head_dim": 4,
             "cross_attention_dim": 64, "norm_num_groups": 16}
TINY_TEXT_ENCODER = {**TEXT_ENCODER, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "projection_dim": 64}
TINY_VAE = {**VAE, "block_out_channels": [32, 32, 64, 64], "layers_per_block": 1, "norm_num_groups": 16,
            "sample_size": 128}
TINY_TAESD = {**TAESD, "encoder_block_out_channels": [16, 16, 16, 16], "decoder_block_out_channels": [16, 16, 16, 16]}

SCENARIOS = (
    # Arabic page: A100 table, 1 image, 50 DDIM steps, 512x512.
    Scenario("astronaut", "a photo of an astronaut riding a horse on mars", images=1, steps=50,
             scheduler="ddim", seed=0),
    # Chinese page / distilled section: 4 images per prompt, 25 PNDM steps, seed 2023.
    Scenario("vase", "a golden vase with different flowers", images=4, steps=25, scheduler="pndm", seed=2023),
)

FAMILY = Family(
    name=NAME,
    description="Stable Diffusion v1.x (v1.4 / v1.5): UNet 859.5M, CLIP ViT-L/14, AutoencoderKL",
    pipeline=StableDiffusionPipeline,
    components=(
        # Seeds 0, 2, 3, 4: the weights every recorded image of this family was made with.
        Component("unet", UNet2DConditionModel, UNET, TINY_UNET, HubId(HUB_MODEL, "unet"), seed=0,
                  published_parameters=859_520_964),
        Component("bk-sdm-small", UNet2DConditionModel, hub=HubId("nota-ai/bk-sdm-small", "unet"), slot="unet",
                  derive=partial(derive_student, student="small"), teacher="unet", published_parameters=482_346_884),
        Component("text_encoder", CLIPTextModel, TEXT_ENCODER, TINY_TEXT_ENCODER, HubId(HUB_MODEL, "text_encoder"),
                  seed=2, published_parameters=123_060_480),
        Component("tokenizer", CLIPTokenizer, TOKENIZER, TOKENIZER, HubId(HUB_MODEL, "tokenizer")),
        Component("vae", AutoencoderKL, VAE, TINY_VAE, HubId(HUB_MODEL, "vae"), seed=3,
                  published_parameters=83_653_863),
        Component("taesd", AutoencoderTiny, TAESD, TINY_TAESD, HubId("madebyollin/taesd"), slot="vae", seed=4,
                  published_parameters=2_445_063),
    ),
    scheduler=PNDMScheduler,
    scheduler_config=SCHEDULER,
    schedulers={"pndm": PNDMScheduler, "ddim": DDIMScheduler},
    scenarios=SCENARIOS,
    baseline="baseline",
    hub_repo=HUB_MODEL,
    pipeline_kwargs={"safety_checker": None, "feature_extractor": None, "requires_safety_checker": False},
)

# On the CPU some variants are opt-in (--perf-speedups), so that `pytest perf` fits its time budget on
# two cores with both families (docs/variants.md, "Time budget"); on GPUs they all run.

BK_SDM = Student("bk-sdm-small")
TINY_AUTOENCODER = TinyAutoencoder("taesd")
# LCM-LoRA's sampling (reference.md: LCMScheduler, 4 steps, guidance 1.0: no classifier-free guidance batch) and
# an adapter of its rank on its layers; the LoRA's weights are seeded random, not LCM-LoRA's.
LCM = FewStep("lcm", steps=4, guidance_scale=1.0, scheduler=LCMScheduler)
RANDOM_WEIGHTS = ("with random weights the images are not the published ones; the image check holds it to its own "
                  "stored image")

VARIANTS = (
    Variant("baseline", NAME, description="fp32 weights, default attention (SDPA)"),
    Variant("tf32", NAME, (TF32(),), "baseline", published=(documented("astronaut", 5.27 / 4.14),)),
    # On the CPU fp16 is slower than fp32 where it runs at all (0.80-0.84x on an AMX host; no kernels on AMD Zen 4).
    Variant("fp16", NAME, (Precision("float16"),), "baseline", opt_in=SLOWER_ON_CPUS,
            published=(documented("astronaut", 5.27 / 3.51),)),
    Variant("tf32-fp16", NAME, (TF32(), Precision("float16")), "baseline",
            description="TF32 matmuls and fp16 weights (the documents' 'combined')",
            published=(documented("astronaut", 5.27 / 3.41),)),
    Variant("bf16", NAME, (Precision("bfloat16"),), "baseline"),
    Variant("attn-classic", NAME, (Attention("classic"),), "baseline"),
    # On the CPU, sdpa vs attn-classic times the same two configurations as attn-classic vs baseline.
    Variant("sdpa", NAME, (Attention("sdpa"),), "attn-classic",
            description="PyTorch 2 scaled-dot-product attention, against the classic processor",
            opt_in=OptIn(devices=("cpu",), why="it repeats attn-classic vs baseline, whose attention is SDPA")),
    Variant("xformers", NAME, (Attention("xformers"),), "attn-classic",
            description="xFormers memory-efficient attention, against the classic processor"),
    Variant("channels-last", NAME, (ChannelsLast(),), "baseline", opt_in=NO_FASTER_ON_TINY),
    Variant("compile", NAME, (Compile(),), "baseline", description="torch.compile of the UNet (opt-in: slow to build)",
            opt_in=SLOW_TO_BUILD),
    Variant("distilled", NAME, (BK_SDM,), "baseline",
            description="BK-SDM-small UNet (blocks removed, teacher-initialised)"),
    Variant("distilled-taesd", NAME, (BK_SDM, TINY_AUTOENCODER), "distilled",
            description="BK-SDM-small UNet and the tiny autoencoder (TAESD)"),
    Variant("distilled-fp16", NAME, (BK_SDM, Precision("float16")), "fp16", opt_in=SLOWER_ON_CPUS,
            description="BK-SDM-small UNet in fp16, against fp16 SD (the documents' comparison)",
            published=(documented("vase", 6.37 / 4.18),)),
    Variant("distilled-taesd-fp16", NAME, (BK_SDM, TINY_AUTOENCODER, Precision("float16")), "distilled-fp16",
            opt_in=SLOWER_ON_CPUS,
            description="BK-SDM-small and TAESD in fp16, against fp16 BK-SDM-small",
            published=(documented("vase", 4.18 / 3.83, "x1.66 over fp16 SD, published as 6.37 s -> 3.83 s"),)),
    # Today's speed-ups beyond the documents (docs/variants.md), each against the fp32 baseline. On the CPU
    # fused-qkv, tome and int8 gain nothing or run slower on the tiny profile, and DeepCache runs inside best-cpu.
    Variant("fused-qkv", NAME, (FusedQKV(),), "baseline", opt_in=NO_FASTER_ON_TINY),
    Variant("tome", NAME, (ToMe(0.5),), "baseline", opt_in=NO_FASTER_ON_TINY),
    Variant("deepcache", NAME, (DeepCache(3),), "baseline",
            opt_in=OptIn(devices=("cpu",), why="best-cpu runs it there; time budget")),
    Variant("int8", NAME, (Int8Dynamic(),), "baseline",
            opt_in=OptIn(devices=("cpu",), why="slower on the tiny CPU profile")),
    # Few-step sampling (docs/variants.md): the whole call's speed-up, fewer steps and no guidance batch included.
    # Opt-in on the CPU: its two cases cost about 25 s of the budget; sdxl-turbo guards few-step sampling there.
    Variant("lcm", NAME, (LCM, LoRA(64)), "baseline",
            opt_in=OptIn(devices=("cpu",), why="time budget; sdxl-turbo runs few-step sampling there"),
            description="LCM-LoRA: 4 LCMScheduler steps at guidance 1.0 with a rank-64 LoRA on the UNet's attention "
                        f"projections fused into its weights; {RANDOM_WEIGHTS}"),
    Variant("lcm-unfused", NAME, (LCM, LoRA(64, fuse=False)), "lcm", opt_in=TIME_BUDGET,
            description="lcm with its rank-64 LoRA left unfused, against lcm: its ratio is the unfused LoRA's own "
                        f"cost (the adapter's matmuls at every step); {RANDOM_WEIGHTS}"),
    # The fastest stack each device type measured (docs/variants.md), against the fp32 baseline.
    Variant("best-cpu", NAME, (BK_SDM, TINY_AUTOENCODER, DeepCache(3)), "baseline",
            description="the CPU's fastest stack: BK-SDM-small, TAESD and DeepCache", devices=("cpu",),
            best_stack=True),
    Variant("best-gpu", NAME, (BK_SDM, TINY_AUTOENCODER, Precision("float16"), FusedQKV(), Compile()), "baseline",
            description="the GPU's fastest stack: BK-SDM-small, TAESD, fp16, fused QKV and torch.compile",
            devices=("cuda",), best_stack=True),
)


def declare(registry) -> None:
    """Declare the family and its variants (diffperf's own ``pytest_diffperf_declare``)."""
    registry.add(FAMILY, *VARIANTS)
