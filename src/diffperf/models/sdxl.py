"""Stable Diffusion XL base 1.0, its distilled students (SSD-1B, Segmind-Vega, KOALA-700M), TAESDXL
and its variants, declared with the same API as any user's family (docs/extending.md).

``full`` is the exact SDXL base 1.0 architecture (stabilityai/stable-diffusion-xl-base-1.0's
config.json files): a 3-stage UNet with 1, 2 and 10 transformer layers per attention block,
two text encoders (CLIP ViT-L/14 and OpenCLIP ViT-bigG/14 with its projection) whose penultimate
hidden states are concatenated (768 + 1280 = 2048), the second one's pooled projection and six
time ids as micro-conditioning (``text_time``: 1280 + 6 x 256 = 2816), and the SD autoencoder
with ``force_upcast``. ``tiny`` keeps all of that, the 1-2-10 transformer stacks included (the
students are cut from them), at a size two CPU cores run.
"""

from __future__ import annotations

from functools import partial

from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    EulerAncestralDiscreteScheduler,
    EulerDiscreteScheduler,
    StableDiffusionXLPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

from diffperf.models import sd1
from diffperf.models.family import Component, Family, HubId
from diffperf.models.optin import NO_FASTER_ON_TINY, SLOW_TO_BUILD, SLOWER_ON_CPUS, TIME_BUDGET, OptIn
from diffperf.models.sdxl_students import derive_sdxl_student
from diffperf.models.speedups import (
    TF32,
    Attention,
    ChannelsLast,
    Compile,
    DeepCache,
    FewStep,
    FusedQKV,
    Int8Dynamic,
    NoVaeUpcast,
    Precision,
    Student,
    TinyAutoencoder,
    ToMe,
)
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scale, Scenario

NAME = "sdxl"
HUB_MODEL = "stabilityai/stable-diffusion-xl-base-1.0"

# stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
UNET = {
    "sample_size": 128,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280],
    "layers_per_block": 2,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
    "mid_block_type": "UNetMidBlock2DCrossAttn",
    "transformer_layers_per_block": [1, 2, 10],
    "attention_head_dim": [5, 10, 20],
    "cross_attention_dim": 2048,
    "use_linear_projection": True,
    "addition_embed_type": "text_time",
    "addition_embed_type_num_heads": 64,
    "addition_time_embed_dim": 256,
    "projection_class_embeddings_input_dim": 2816,  # the pooled 1280 of text_encoder_2 and 6 time ids x 256
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "act_fn": "silu",
}

# text_encoder_2/config.json: OpenCLIP ViT-bigG/14's text tower with its projection
TEXT_ENCODER_2 = {
    "hidden_size": 1280,
    "intermediate_size": 5120,
    "num_hidden_layers": 32,
    "num_attention_heads": 20,
    "max_position_embeddings": 77,
    "vocab_size": 49408,
    "hidden_act": "gelu",
    "layer_norm_eps": 1e-5,
    "projection_dim": 1280,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}

# vae/config.json: the SD autoencoder, another scaling factor, upcast to fp32 to decode in fp16 pipelines
VAE = {**sd1.VAE, "sample_size": 1024, "scaling_factor": 0.13025, "force_upcast": True}

# scheduler/scheduler_config.json
SCHEDULER = {
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "num_train_timesteps": 1000,
    "steps_offset": 1,
    "timestep_spacing": "leading",
    "prediction_type": "epsilon",
    "interpolation_type": "linear",
    "use_karras_sigmas": False,
    "sample_max_value": 1.0,
    "clip_sample": False,
    "set_alpha_to_one": False,
    "skip_prk_steps": True,
}

TINY_UNET = {
    **UNET,
    "sample_size": 16,
    "block_out_channels": [32, 64, 64],
    "attention_head_dim": [2, 4, 8],
    "cross_attention_dim": 32 + 64,  # the two tiny text encoders' hidden sizes
    "addition_time_embed_dim": 8,
    "projection_class_embeddings_input_dim": 64 + 6 * 8,
    "norm_num_groups": 16,
}
TINY_TEXT_ENCODER = {**sd1.TEXT_ENCODER, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
                     "num_attention_heads": 4, "projection_dim": 32}
TINY_TEXT_ENCODER_2 = {**TEXT_ENCODER_2, "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 4,
                       "num_attention_heads": 4, "projection_dim": 64}
TINY_VAE = {**sd1.TINY_VAE, "scaling_factor": 0.13025, "force_upcast": True}

SCENARIOS = (
    # The documents' prompts at SDXL's native resolution with its default scheduler and steps.
    Scenario("astronaut-xl", "a photo of an astronaut riding a horse on mars", images=1, steps=50,
             scheduler="euler", seed=0, resolution=1024),
    Scenario("vase-xl", "a golden vase with different flowers", images=4, steps=25, scheduler="euler", seed=2023,
             resolution=1024, opt_in=OptIn(why="4 images of 1024x1024 per call; time budget")),
)


FAMILY = Family(
    name=NAME,
    description="Stable Diffusion XL base 1.0: UNet 2567.5M, CLIP ViT-L/14 and OpenCLIP ViT-bigG/14, AutoencoderKL",
    pipeline=StableDiffusionXLPipeline,
    components=(
        Component("unet", UNet2DConditionModel, UNET, TINY_UNET, HubId(HUB_MODEL, "unet"),
                  published_parameters=2_567_463_684),
        Component("ssd-1b", UNet2DConditionModel, hub=HubId("segmind/SSD-1B", "unet"), slot="unet",
                  derive=partial(derive_sdxl_student, student="ssd-1b"), teacher="unet"),
        Component("segmind-vega", UNet2DConditionModel, hub=HubId("segmind/Segmind-Vega", "unet"), slot="unet",
                  derive=partial(derive_sdxl_student, student="segmind-vega"), teacher="unet"),
        Component("koala-700m", UNet2DConditionModel, hub=HubId("etri-vilab/koala-700m", "unet"), slot="unet",
                  derive=partial(derive_sdxl_student, student="koala-700m"), teacher="unet"),
        Component("text_encoder", CLIPTextModel, sd1.TEXT_ENCODER, TINY_TEXT_ENCODER, HubId(HUB_MODEL, "text_encoder"),
                  published_parameters=123_060_480),
        Component("text_encoder_2", CLIPTextModelWithProjection, TEXT_ENCODER_2, TINY_TEXT_ENCODER_2,
                  HubId(HUB_MODEL, "text_encoder_2")),
        Component("tokenizer", CLIPTokenizer, sd1.TOKENIZER, sd1.TOKENIZER, HubId(HUB_MODEL, "tokenizer")),
        Component("tokenizer_2", CLIPTokenizer, sd1.TOKENIZER, sd1.TOKENIZER, HubId(HUB_MODEL, "tokenizer_2")),
        Component("vae", AutoencoderKL, VAE, TINY_VAE, HubId(HUB_MODEL, "vae"), published_parameters=83_653_863),
        Component("taesdxl", AutoencoderTiny, sd1.TAESD, sd1.TINY_TAESD, HubId("madebyollin/taesdxl"), slot="vae",
                  published_parameters=2_445_063),
    ),
    scheduler=EulerDiscreteScheduler,
    scheduler_config=SCHEDULER,
    schedulers={"euler": EulerDiscreteScheduler},
    scenarios=SCENARIOS,
    baseline="sdxl",
    tiny_scale=Scale(resolution=128, step_fraction=0.06),  # 3 of 50 steps: the UNet is 70 transformer layers deep
    hub_repo=HUB_MODEL,
    pipeline_kwargs={"image_encoder": None, "feature_extractor": None, "force_zeros_for_empty_prompt": True,
                     "add_watermarker": False},
)

# On the CPU only sdxl, ssd-1b, segmind-vega-taesdxl and sdxl-turbo run by default, on astronaut-xl: with SD v1's
# default cases they keep `pytest perf` within its time budget on two cores (docs/variants.md). The
# rest are opt-in there (--perf-speedups); on GPUs they all run.

SSD_1B = Student("ssd-1b")
VEGA = Student("segmind-vega")
TAESDXL = TinyAutoencoder("taesdxl")
FP16 = Precision("float16")
# The few-step samplers of SDXL's distilled UNets (reference.md). Their UNets have SDXL's architecture: the family's
# UNet stands in for them, so only the sampling is measured, not their distilled weights.
TURBO = FewStep("sdxl-turbo", steps=1, guidance_scale=0.0, scheduler=EulerAncestralDiscreteScheduler,
                scheduler_config={"timestep_spacing": "trailing"})
LIGHTNING = FewStep("sdxl-lightning", steps=4, guidance_scale=0.0, scheduler=EulerDiscreteScheduler,
                    scheduler_config={"timestep_spacing": "trailing"})
NOT_DISTILLED = ("SDXL's UNet stands in for the distilled one (the same architecture): with random weights the "
                 "images are not the published ones; the image check holds it to its own stored image")

VARIANTS = (
    Variant(NAME, NAME, description="SDXL base 1.0: fp32 weights, default attention (SDPA)"),
    Variant("sdxl-tf32", NAME, (TF32(),), NAME),
    Variant("sdxl-fp16", NAME, (FP16,), NAME, opt_in=SLOWER_ON_CPUS,
            description="fp16 weights; the pipeline upcasts the VAE to fp32 for every decode (force_upcast)"),
    # SDXL's hidden cost in fp16: the decoder kept in fp16, against the upcasting default.
    Variant("sdxl-fp16-no-upcast", NAME, (FP16, NoVaeUpcast()), "sdxl-fp16", opt_in=SLOWER_ON_CPUS,
            description="fp16 with the VAE decoding in fp16 (force_upcast off, as with the fp16-fix VAE), "
                        "against fp16 SDXL, which upcasts it"),
    Variant("sdxl-bf16", NAME, (Precision("bfloat16"),), NAME, opt_in=NO_FASTER_ON_TINY),
    Variant("sdxl-attn-classic", NAME, (Attention("classic"),), NAME, opt_in=TIME_BUDGET),
    Variant("sdxl-sdpa", NAME, (Attention("sdpa"),), "sdxl-attn-classic",
            description="PyTorch 2 scaled-dot-product attention, against the classic processor",
            opt_in=OptIn(devices=("cpu",), why="it repeats sdxl-attn-classic vs sdxl, whose attention is SDPA")),
    Variant("sdxl-xformers", NAME, (Attention("xformers"),), "sdxl-attn-classic",
            description="xFormers memory-efficient attention, against the classic processor"),
    Variant("sdxl-channels-last", NAME, (ChannelsLast(),), NAME, opt_in=TIME_BUDGET),
    Variant("sdxl-compile", NAME, (Compile(),), NAME, description="torch.compile of the UNet (opt-in: slow to build)",
            opt_in=SLOW_TO_BUILD),
    Variant("sdxl-fused-qkv", NAME, (FusedQKV(),), NAME, opt_in=TIME_BUDGET),
    # SDXL has no attention at full latent resolution: token merging starts one stage down.
    Variant("sdxl-tome", NAME, (ToMe(0.5, max_downsample=2),), NAME, opt_in=TIME_BUDGET),
    Variant("sdxl-deepcache", NAME, (DeepCache(3),), NAME, opt_in=TIME_BUDGET),
    Variant("sdxl-int8", NAME, (Int8Dynamic(check="half"),), NAME, opt_in=TIME_BUDGET),
    # The students, each against SDXL, and with the tiny autoencoder against the student alone.
    Variant("ssd-1b", NAME, (SSD_1B,), NAME, description="SSD-1B UNet (Segmind: SDXL's blocks removed, distilled)"),
    Variant("ssd-1b-taesdxl", NAME, (SSD_1B, TAESDXL), "ssd-1b", opt_in=TIME_BUDGET,
            description="SSD-1B UNet and the tiny autoencoder TAESDXL, against SSD-1B"),
    Variant("segmind-vega", NAME, (VEGA,), NAME, opt_in=TIME_BUDGET,
            description="Segmind-Vega UNet (Segmind: SDXL's blocks removed, distilled)"),
    Variant("segmind-vega-taesdxl", NAME, (VEGA, TAESDXL), "segmind-vega",
            description="Segmind-Vega UNet and the tiny autoencoder TAESDXL, against Segmind-Vega"),
    Variant("koala-700m", NAME, (Student("koala-700m"),), NAME, opt_in=TIME_BUDGET,
            description="KOALA-700M UNet (ETRI: SDXL's blocks removed, distilled)"),
    # Few-step sampling (docs/variants.md), against SDXL at the scenario's steps: the whole call's speed-up, fewer
    # steps and no guidance batch included.
    Variant("sdxl-turbo", NAME, (TURBO,), NAME,
            description="SDXL-Turbo's sampling: 1 EulerAncestral step (timestep_spacing trailing) at guidance 0.0; "
                        "SDXL-Turbo is 512 px natively, this runs the scenario's resolution; " + NOT_DISTILLED),
    Variant("sdxl-lightning", NAME, (LIGHTNING,), NAME,
            opt_in=OptIn(devices=("cpu",), why="slower on the tiny profile: its 4 steps against the profile's 3"),
            description="SDXL-Lightning's 4-step sampling: EulerDiscrete (timestep_spacing trailing) at guidance "
                        "0.0; " + NOT_DISTILLED),
    # Segmind's published speed-ups are fp16 on an A100.
    Variant("ssd-1b-fp16", NAME, (SSD_1B, FP16), "sdxl-fp16", opt_in=SLOWER_ON_CPUS,
            description="SSD-1B UNet in fp16, against fp16 SDXL (Segmind's comparison)"),
    Variant("segmind-vega-fp16", NAME, (VEGA, FP16), "sdxl-fp16", opt_in=SLOWER_ON_CPUS,
            description="Segmind-Vega UNet in fp16, against fp16 SDXL (Segmind's comparison)"),
    Variant("segmind-vega-taesdxl-fp16", NAME, (VEGA, TAESDXL, FP16), "segmind-vega-fp16", opt_in=SLOWER_ON_CPUS,
            description="Segmind-Vega and TAESDXL in fp16, against fp16 Segmind-Vega"),
)


def declare(registry) -> None:
    """Declare the family and its variants (diffperf's own ``pytest_diffperf_declare``)."""
    registry.add(FAMILY, *VARIANTS)
