"""Model profiles: the component configurations each profile builds, as plain data.

``full`` is the exact Stable Diffusion v1.x architecture (the models' config.json files);
``tiny`` keeps its structure (4 UNet stages with cross-attention and a mid block, a KL VAE
heavier than the tiny autoencoder) at a size that runs on two CPU cores; ``hub`` loads real
weights (see :mod:`diffperf.models.zoo`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

PROFILE_NAMES = ("full", "tiny", "hub")

# SD v1.4 / v1.5 unet/config.json
SD_UNET = {
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
SD_TEXT_ENCODER = {
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
SD_VAE = {
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
SD_TAESD = {
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
SD_SCHEDULER = {
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


@dataclass(frozen=True)
class Profile:
    """What one synthetic profile builds, and how it scales the documents' workloads."""

    name: str
    unet: dict
    text_encoder: dict
    vae: dict
    taesd: dict
    scheduler: dict = field(default_factory=lambda: dict(SD_SCHEDULER))
    # Workload scaling: resolution in pixels, and the fraction of the documents' steps.
    resolution: int = 512
    step_fraction: float = 1.0
    seed: int = 0  # seed of the random weights


FULL = Profile(name="full", unet=SD_UNET, text_encoder=SD_TEXT_ENCODER, vae=SD_VAE, taesd=SD_TAESD)

TINY = Profile(
    name="tiny",
    unet={
        **SD_UNET,
        "sample_size": 16,
        "block_out_channels": [32, 64, 64, 64],
        "attention_head_dim": 4,
        "cross_attention_dim": 64,
        "norm_num_groups": 16,
    },
    text_encoder={
        **SD_TEXT_ENCODER,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "projection_dim": 64,
    },
    vae={
        **SD_VAE,
        "block_out_channels": [32, 32, 64, 64],
        "layers_per_block": 1,
        "norm_num_groups": 16,
        "sample_size": 128,
    },
    taesd={
        **SD_TAESD,
        "encoder_block_out_channels": [16, 16, 16, 16],
        "decoder_block_out_channels": [16, 16, 16, 16],
    },
    resolution=128,
    step_fraction=0.1,
)

SYNTHETIC_PROFILES = {"full": FULL, "tiny": TINY}


def default_profile_name(cuda_available: bool) -> str:
    """``full`` on CUDA, ``tiny`` on the CPU."""
    return "full" if cuda_available else "tiny"


def check_profile_name(name: str) -> str:
    """Return ``name`` if it is a profile, else raise a one-line ValueError listing them."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    return name
