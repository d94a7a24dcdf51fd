"""Pipeline variants: each speed-up of the source documents, declared as plain data.

Adding a variant is one ``Variant(...)`` entry in ``VARIANTS``. A variant names what it changes
against the fp32 baseline, the variant its speed-up is measured against (``reference``), the
similarity check it must pass against fp32, and what it needs to run.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from diffperf import zoo

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
ATTENTION = ("sdpa", "classic", "xformers")


@dataclass(frozen=True)
class Variant:
    name: str
    description: str
    reference: str | None = "baseline"  # speed-ups are measured against this variant
    dtype: str = "float32"
    unet: str = zoo.TEACHER_UNET
    vae: str = zoo.KL_VAE
    attention: str = "sdpa"  # diffusers' default processor (AttnProcessor2_0) on PyTorch 2
    tf32_matmul: bool = False
    channels_last: bool = False
    compile: bool = False
    needs_cuda: bool = False
    needs_package: str | None = None
    opt_in: str | None = None  # the option that enables a slow variant
    # How its image compares with the fp32 baseline's (diffperf.similarity): "fp32" for
    # numerically equivalent variants, "half" for reduced precision, None for other models.
    approximates_fp32: str | None = "fp32"

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def components(self) -> tuple[str, ...]:
        """The source components this variant is built from."""
        return (self.unet, zoo.TEXT_ENCODER, self.vae)


VARIANTS: tuple[Variant, ...] = (
    Variant("baseline", "fp32 weights, default attention (SDPA)", reference=None),
    Variant("tf32", "TF32 matmuls (torch.backends.cuda.matmul.allow_tf32)", tf32_matmul=True, needs_cuda=True),
    Variant("fp16", "fp16 weights (torch_dtype=torch.float16)", dtype="float16", approximates_fp32="half"),
    Variant(
        "tf32-fp16", "TF32 matmuls and fp16 weights (the documents' 'combined')",
        dtype="float16", tf32_matmul=True, needs_cuda=True, approximates_fp32="half",
    ),
    Variant("bf16", "bf16 weights (torch_dtype=torch.bfloat16)", dtype="bfloat16", approximates_fp32="half"),
    Variant("attn-classic", "classic attention processor (AttnProcessor), no SDPA", attention="classic"),
    Variant("sdpa", "PyTorch 2 scaled-dot-product attention, against the classic processor",
            reference="attn-classic"),
    Variant(
        "xformers", "xFormers memory-efficient attention, against the classic processor",
        reference="attn-classic", attention="xformers", needs_cuda=True, needs_package="xformers",
    ),
    Variant("channels-last", "UNet and VAE in channels_last memory format", channels_last=True),
    Variant(
        "compile", "torch.compile of the UNet (opt-in: slow to build)",
        compile=True, opt_in="--perf-compile",
    ),
    Variant("distilled", "BK-SDM-small UNet (blocks removed, teacher-initialised)",
            unet=zoo.DISTILLED_UNET, approximates_fp32=None),
    Variant("distilled-taesd", "BK-SDM-small UNet and the tiny autoencoder (TAESD)",
            reference="distilled", unet=zoo.DISTILLED_UNET, vae=zoo.TINY_VAE, approximates_fp32=None),
    Variant(
        "distilled-fp16", "BK-SDM-small UNet in fp16, against fp16 SD (the documents' comparison)",
        reference="fp16", dtype="float16", unet=zoo.DISTILLED_UNET, approximates_fp32=None,
    ),
    Variant(
        "distilled-taesd-fp16", "BK-SDM-small and TAESD in fp16, against fp16 BK-SDM-small",
        reference="distilled-fp16", dtype="float16", unet=zoo.DISTILLED_UNET, vae=zoo.TINY_VAE,
        approximates_fp32=None,
    ),
)

VARIANT_NAMES = tuple(variant.name for variant in VARIANTS)
_BY_NAME = {variant.name: variant for variant in VARIANTS}


def get_variant(name: str) -> Variant:
    """The declared variant called ``name`` (one-line error listing the names otherwise)."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}: choose one of {', '.join(VARIANT_NAMES)}") from None


def reference_chain(name: str) -> list[str]:
    """``name`` and the variants it is measured against, transitively (baseline last)."""
    chain = [name]
    while (reference := get_variant(chain[-1]).reference) is not None:
        chain.append(reference)
    return chain


def dtype_supported(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether ``device`` has fast kernels for ``dtype`` (fp32 always)."""
    if dtype == torch.float32:
        return True
    if device.type == "cuda":
        return dtype == torch.float16 or torch.cuda.is_bf16_supported()
    if dtype == torch.bfloat16:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_fp16_supported()


def skip_reason(variant: Variant, device: torch.device, enabled_options: frozenset[str] = frozenset()) -> str | None:
    """Why ``variant`` cannot run here (one line), or None when it can; its reference must run too."""
    if variant.opt_in and variant.opt_in not in enabled_options:
        return f"{variant.name} is opt-in: pass {variant.opt_in}"
    if variant.needs_cuda and device.type != "cuda":
        return f"{variant.name} needs a CUDA GPU (running on {device.type})"
    if variant.needs_package and importlib.util.find_spec(variant.needs_package) is None:
        return f"{variant.name} needs the optional package {variant.needs_package}: pip install {variant.needs_package}"
    if not dtype_supported(variant.torch_dtype, device):
        return f"{variant.name} needs {variant.dtype} kernels, which this {device.type} lacks"
    if variant.reference is not None:
        reason = skip_reason(get_variant(variant.reference), device, enabled_options)
        if reason is not None:
            return f"its reference cannot run: {reason}"
    return None
