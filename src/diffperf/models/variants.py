"""Pipeline variants: each speed-up of the source documents, declared as plain data.

Adding a variant is one ``Variant(...)`` entry in ``VARIANTS``. A variant names what it changes
against the fp32 baseline, the variant its speed-up is measured against (``reference``), the
similarity check it must pass against fp32, and what it needs to run. How each change is applied
is explicit code in :mod:`diffperf.models.store`; what each one does, where it is expected to pay
off and what it measured: docs/variants.md.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch

from diffperf.models import zoo

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
    fuse_qkv: bool = False  # diffusers' fuse_qkv_projections on the UNet (and a KL VAE)
    tome_ratio: float | None = None  # token merging, tomesd.apply_patch(unet, ratio=...)
    deepcache_interval: int | None = None  # DeepCache: the whole UNet every N steps, branch 0 between
    int8_dynamic: bool = False  # torchao int8 dynamic activations and int8 weights in the UNet's nn.Linear
    best_stack: bool = False  # the device's fastest stack, shown first (diffperf.render.gate_text.BEST_STACKS)
    needs_cuda: bool = False
    needs_cpu: bool = False
    needs_package: str | None = None  # the module to import; PIP_NAMES gives the package to install
    opt_in: str | None = None  # the option that enables a slow variant
    opt_in_devices: tuple[str, ...] = ("cpu", "cuda")  # the device types on which it is opt-in
    opt_in_why: str | None = None  # why it is opt-in there, in a few words (docs/variants.md says more)
    # How its image compares with the fp32 baseline's (diffperf.images.similarity): "fp32" for
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
    # On the CPU fp16 is slower than fp32 where it runs at all (0.80-0.84x on an AMX host; no kernels on
    # AMD Zen 4), and its family (fp16, distilled-fp16, distilled-taesd-fp16) would take the suite past
    # its 180 s budget there: opt-in on the CPU (docs/variants.md, "Time budget").
    Variant("fp16", "fp16 weights (torch_dtype=torch.float16)", dtype="float16", approximates_fp32="half",
            opt_in="--perf-speedups", opt_in_devices=("cpu",), opt_in_why="slower than fp32 on CPUs; time budget"),
    Variant(
        "tf32-fp16", "TF32 matmuls and fp16 weights (the documents' 'combined')",
        dtype="float16", tf32_matmul=True, needs_cuda=True, approximates_fp32="half",
    ),
    Variant("bf16", "bf16 weights (torch_dtype=torch.bfloat16)", dtype="bfloat16", approximates_fp32="half"),
    Variant("attn-classic", "classic attention processor (AttnProcessor), no SDPA", attention="classic"),
    # On the CPU, sdpa vs attn-classic times the same two configurations as attn-classic vs baseline
    # (whose attention is SDPA): opt-in there, to keep the suite in its time budget.
    Variant("sdpa", "PyTorch 2 scaled-dot-product attention, against the classic processor",
            reference="attn-classic", opt_in="--perf-speedups", opt_in_devices=("cpu",),
            opt_in_why="it repeats attn-classic vs baseline, whose attention is SDPA"),
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
    # Today's speed-ups beyond the documents (docs/variants.md), each against the fp32 baseline.
    # On the CPU these four are opt-in (--perf-speedups), so that `pytest perf` fits its 180 s
    # budget on 2 cores: fused-qkv, tome and int8 gain nothing or run slower on the tiny profile, and
    # DeepCache runs there inside best-cpu. On GPUs they all run by default (docs/variants.md).
    Variant(
        "fused-qkv", "fused QKV projections (fuse_qkv_projections) in the UNet and VAE attention",
        fuse_qkv=True, opt_in="--perf-speedups", opt_in_devices=("cpu",),
        opt_in_why="no faster on the tiny CPU profile",
    ),
    Variant(
        "tome", "token merging (tomesd, ratio 0.5) in the UNet's full-resolution self-attention",
        tome_ratio=0.5, needs_package="tomesd", approximates_fp32="tome",
        opt_in="--perf-speedups", opt_in_devices=("cpu",), opt_in_why="no faster on the tiny CPU profile",
    ),
    Variant(
        "deepcache", "DeepCache (interval 3, branch 0): deep UNet features reused 2 steps in 3",
        deepcache_interval=3, needs_package="DeepCache", approximates_fp32="deepcache",
        opt_in="--perf-speedups", opt_in_devices=("cpu",), opt_in_why="best-cpu runs it there; time budget",
    ),
    Variant(
        "int8", "int8 dynamic quantization (torchao) of the UNet's linear layers",
        int8_dynamic=True, needs_package="torchao", approximates_fp32="int8",
        opt_in="--perf-speedups", opt_in_devices=("cpu",), opt_in_why="slower on the tiny CPU profile",
    ),
    # The fastest stack each device type measured (docs/variants.md), against the fp32 baseline.
    Variant(
        "best-cpu", "the CPU's fastest stack: BK-SDM-small, TAESD and DeepCache",
        unet=zoo.DISTILLED_UNET, vae=zoo.TINY_VAE, deepcache_interval=3, needs_package="DeepCache",
        best_stack=True, needs_cpu=True, approximates_fp32=None,
    ),
    Variant(
        "best-gpu", "the GPU's fastest stack: BK-SDM-small, TAESD, fp16, fused QKV and torch.compile",
        dtype="float16", unet=zoo.DISTILLED_UNET, vae=zoo.TINY_VAE, fuse_qkv=True, compile=True,
        best_stack=True, needs_cuda=True, approximates_fp32=None,
    ),
)

PIP_NAMES = {"DeepCache": "deepcache"}
"""The package to install for a ``needs_package`` module whose name differs (else the module's name)."""

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


def cpu_has_vnni() -> bool:
    """Whether this CPU has VNNI int8 dot products (AVX512-VNNI, AVX-VNNI), as torchao asks it."""
    check = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(check()) if check is not None else False


def skip_reason(variant: Variant, device: torch.device, enabled_options: frozenset[str] = frozenset()) -> str | None:
    """Why ``variant`` cannot run here (one line), or None when it can; its reference must run too."""
    if variant.opt_in and device.type in variant.opt_in_devices and variant.opt_in not in enabled_options:
        where = "" if {"cpu", "cuda"} <= set(variant.opt_in_devices) else f" on {device.type}"
        why = f" ({variant.opt_in_why})" if variant.opt_in_why else ""
        return f"{variant.name} is opt-in{where}{why}: pass {variant.opt_in}"
    if variant.needs_cuda and device.type != "cuda":
        return f"{variant.name} needs a CUDA GPU (running on {device.type})"
    if variant.needs_cpu and device.type != "cpu":
        return f"{variant.name} is the CPU's stack (running on {device.type})"
    if variant.needs_package and importlib.util.find_spec(variant.needs_package) is None:
        package = PIP_NAMES.get(variant.needs_package, variant.needs_package)
        return f"{variant.name} needs the optional package {package}: pip install {package}"
    if not dtype_supported(variant.torch_dtype, device):
        return f"{variant.name} needs {variant.dtype} kernels, which this {device.type} lacks"
    if variant.int8_dynamic and device.type == "cpu" and not cpu_has_vnni():
        return (f"{variant.name} needs a CPU with VNNI: without it torchao's int8 matmuls saturate "
                "(measured 33.7 dB from fp32)")
    if variant.reference is not None:
        reason = skip_reason(get_variant(variant.reference), device, enabled_options)
        if reason is not None:
            return f"its reference cannot run: {reason}"
    return None
