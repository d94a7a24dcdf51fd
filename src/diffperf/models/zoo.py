"""The model zoo: where each pipeline component comes from.

Synthetic profiles (``full``, ``tiny``) build the exact architectures of
:mod:`diffperf.models.profiles` with seeded random weights (latency does not depend on weight
values); the ``hub`` profile loads real weights from a hub id or a local directory through
``from_pretrained``, honouring the user's cache (HF_HOME) and HF_HUB_OFFLINE.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from diffusers import (
    AutoencoderKL,
    AutoencoderTiny,
    DDIMScheduler,
    PNDMScheduler,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer
from transformers.convert_slow_tokenizer import bytes_to_unicode

from diffperf.models.bksdm import derive_student
from diffperf.models.profiles import SYNTHETIC_PROFILES, Profile

# Component names a variant can ask for.
TEACHER_UNET = "unet"
DISTILLED_UNET = "unet-bk-sdm-small"
TEXT_ENCODER = "text_encoder"
KL_VAE = "vae"
TINY_VAE = "taesd"
COMPONENTS = (TEACHER_UNET, DISTILLED_UNET, TEXT_ENCODER, KL_VAE, TINY_VAE)

# Defaults of the hub profile: the models of the source documents.
DEFAULT_HUB_MODEL = "stable-diffusion-v1-5/stable-diffusion-v1-5"
DEFAULT_HUB_DISTILLED = "nota-ai/bk-sdm-small"
DEFAULT_HUB_TAESD = "madebyollin/taesd"


class ModelNotAvailable(RuntimeError):
    """A hub model or local directory could not be loaded; the message says what to download."""


def offline_clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """A valid CLIP tokenizer that needs no download.

    Byte-level BPE with the 256 byte symbols, their ``</w>`` forms and the two special tokens, and
    no merges: every character becomes one token. The end-of-text token has the largest id, so
    CLIPTextModel's legacy pooling (argmax of the ids) finds it.
    """
    symbols = list(bytes_to_unicode().values())
    vocab = {symbol: index for index, symbol in enumerate(symbols + [s + "</w>" for s in symbols])}
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=model_max_length)


def make_scheduler(name: str, config: dict) -> PNDMScheduler | DDIMScheduler:
    """SD's PNDM scheduler, or DDIM configured from it (a bare DDIMScheduler() is wrong for SD)."""
    pndm = PNDMScheduler.from_config(config)
    if name == "pndm":
        return pndm
    if name == "ddim":
        return DDIMScheduler.from_config(pndm.config)
    raise ValueError(f"unknown scheduler {name!r}: choose ddim or pndm")


def count_parameters(module: torch.nn.Module) -> int:
    return sum(parameter.numel() for parameter in module.parameters())


@dataclass
class SyntheticSource:
    """Builds a profile's components from configs with seeded random weights."""

    profile: Profile
    device: torch.device

    name = "synthetic"
    derives_students = True  # BK-SDM students are derived from the teacher, not loaded

    def build(self, component: str, meta: bool = False) -> torch.nn.Module:
        """Build one fp32 component; ``meta=True`` builds it without memory (to count parameters)."""
        if component not in COMPONENTS:
            raise ValueError(f"unknown component {component!r}: choose one of {', '.join(COMPONENTS)}")
        if component == DISTILLED_UNET:
            return derive_student(self.build(TEACHER_UNET, meta=meta), "small")
        device = torch.device("meta") if meta else self.device
        seed = self.profile.seed + COMPONENTS.index(component)
        with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), device:
            torch.manual_seed(seed)
            if component == TEACHER_UNET:
                module = UNet2DConditionModel.from_config(self.profile.unet)
            elif component == TEXT_ENCODER:
                module = CLIPTextModel(CLIPTextConfig(**self.profile.text_encoder))
            elif component == KL_VAE:
                module = AutoencoderKL.from_config(self.profile.vae)
            elif component == TINY_VAE:
                module = AutoencoderTiny.from_config(self.profile.taesd)
            else:
                raise ValueError(f"unknown component {component!r}: choose one of {', '.join(COMPONENTS)}")
        return module.eval().requires_grad_(False)

    def tokenizer(self) -> CLIPTokenizer:
        return offline_clip_tokenizer(self.profile.text_encoder["max_position_embeddings"])

    def scheduler_config(self) -> dict:
        return dict(self.profile.scheduler)


@dataclass
class HubSource:
    """Loads real weights from hub ids or local directories, through the user's cache."""

    model: str = DEFAULT_HUB_MODEL
    distilled: str = DEFAULT_HUB_DISTILLED
    taesd: str = DEFAULT_HUB_TAESD
    device: torch.device = torch.device("cpu")

    name = "hub"
    derives_students = False

    def build(self, component: str, meta: bool = False) -> torch.nn.Module:
        """Load one fp32 component (``meta=True`` builds it from its config only)."""
        if component == TEACHER_UNET:
            cls, repo, subfolder = UNet2DConditionModel, self.model, "unet"
        elif component == DISTILLED_UNET:
            cls, repo, subfolder = UNet2DConditionModel, self.distilled, "unet"
        elif component == TEXT_ENCODER:
            cls, repo, subfolder = CLIPTextModel, self.model, "text_encoder"
        elif component == KL_VAE:
            cls, repo, subfolder = AutoencoderKL, self.model, "vae"
        elif component == TINY_VAE:
            cls, repo, subfolder = AutoencoderTiny, self.taesd, None
        else:
            raise ValueError(f"unknown component {component!r}: choose one of {', '.join(COMPONENTS)}")
        if cls is CLIPTextModel:
            if meta:
                config = _load(CLIPTextConfig.from_pretrained, repo, subfolder, component)
                with torch.device("meta"):
                    return CLIPTextModel(config)
            module = _load(cls.from_pretrained, repo, subfolder, component)
        else:
            if meta:
                config = _load(cls.load_config, repo, subfolder, component)
                with torch.device("meta"):
                    return cls.from_config(config)
            module = _load(cls.from_pretrained, repo, subfolder, component)
        return module.to(self.device).eval().requires_grad_(False)

    def tokenizer(self) -> CLIPTokenizer:
        return _load(CLIPTokenizer.from_pretrained, self.model, "tokenizer", "tokenizer")

    def scheduler_config(self) -> dict:
        return dict(_load(PNDMScheduler.load_config, self.model, "scheduler", "scheduler"))


def _load(loader, repo: str, subfolder: str | None, what: str):
    """Call a ``from_pretrained``-style loader, turning every way it fails into one ModelNotAvailable line.

    The error is raised with nothing chained to it, so it prints once, wherever it is shown.
    """
    directory = Path(repo).expanduser()
    local = directory.is_dir() or repo.startswith((".", "/", "~"))
    if local:
        _check_directory(directory, repo, subfolder)
    kwargs = {"subfolder": subfolder} if subfolder else {}
    try:
        return loader(str(directory) if local else repo, **kwargs)
    except (OSError, ValueError) as error:  # EnvironmentError, LocalEntryNotFoundError, HTTP errors
        reason = _first_line(error)
    raise ModelNotAvailable(_cannot_load(what, repo, local, reason))  # outside the except block: nothing chained


def _check_directory(directory: Path, repo: str, subfolder: str | None) -> None:
    """ModelNotAvailable when a local model directory is missing, or is not a pipeline where one is needed."""
    if not directory.is_dir():
        raise ModelNotAvailable(f"model directory {repo} does not exist")
    if subfolder and not (directory / "model_index.json").is_file():
        raise ModelNotAvailable(
            f"{repo} is not a diffusers pipeline directory (no model_index.json): "
            "save one with pipeline.save_pretrained(DIR) or pass a hub id"
        )


def _cannot_load(what: str, repo: str, local: bool, reason: str) -> str:
    """One line: which component could not be loaded from where, why, and what to do."""
    if local:
        return (f"cannot load the {what} from {repo} ({reason}): save it there with save_pretrained "
                "or pass a hub id")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False")
    where = "is not in the Hugging Face cache" + (" and HF_HUB_OFFLINE is set" if offline else "")
    return (f"cannot load the {what} of {repo!r}: it {where} or cannot be read ({reason}); "
            f"download it with `hf download {repo}` or pass a local pipeline directory")


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return (text.splitlines()[0] if text else type(error).__name__)[:160]


def make_source(profile_name: str, device: torch.device, hub_models: dict | None = None):
    """The component source of a profile."""
    if profile_name == "hub":
        return HubSource(device=device, **(hub_models or {}))
    return SyntheticSource(SYNTHETIC_PROFILES[profile_name], device)


def assemble_pipeline(unet, text_encoder, tokenizer, vae, scheduler) -> StableDiffusionPipeline:
    """A StableDiffusionPipeline from ready components (no safety checker: it is not what we time)."""
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe


def save_synthetic_pipeline(profile_name: str, directory: str | os.PathLike) -> Path:
    """Save a synthetic profile's pipeline with save_pretrained, so the hub loading path can be tried."""
    source = SyntheticSource(SYNTHETIC_PROFILES[profile_name], torch.device("cpu"))
    pipe = assemble_pipeline(
        source.build(TEACHER_UNET),
        source.build(TEXT_ENCODER),
        source.tokenizer(),
        source.build(KL_VAE),
        make_scheduler("pndm", source.scheduler_config()),
    )
    pipe.save_pretrained(directory)
    return Path(directory)
