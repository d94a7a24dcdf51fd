"""Builds each variant's pipeline once, lazily, sharing weights, and releases what is done.

Components are cached by (source component, dtype): variants that differ only in attention
processor, TF32 or compilation share one set of weight tensors (their module trees are cloned
around the same tensors); channels_last gets its own copy because it changes the weights' layout.

Today's speed-ups (docs/variants.md) are applied to the variant's own module tree, never to the
shared source components: fused QKV projections add fused weights beside the shared ones, ToMe
swaps the classes of the variant's transformer blocks, torchao replaces the variant's linear
weights with int8 ones, and DeepCache wraps the forward of one UNet tree per pipeline.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import time

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, XFormersAttnProcessor

from diffperf.models import zoo
from diffperf.models.bksdm import derive_student
from diffperf.models.variants import Variant, get_variant, reference_chain
from diffperf.models.workloads import Scenario


def clone_module(module: torch.nn.Module, dtype: torch.dtype | None = None, channels_last: bool = False):
    """A new module tree over ``module``'s tensors: shared when unchanged, converted otherwise.

    Only floating-point tensors are cast; with ``channels_last`` the 4-D ones are re-laid out.
    """
    memo = {}
    for tensor in list(module.parameters()) + list(module.buffers()):
        converted = tensor.detach()
        if dtype is not None and converted.is_floating_point():
            converted = converted.to(dtype)
        if channels_last and converted.dim() == 4:
            converted = converted.contiguous(memory_format=torch.channels_last)
        if converted.data_ptr() == tensor.data_ptr():  # unchanged: share the very tensor
            memo[id(tensor)] = tensor
        elif isinstance(tensor, torch.nn.Parameter):
            memo[id(tensor)] = torch.nn.Parameter(converted, requires_grad=False)
        else:
            memo[id(tensor)] = converted
    return copy.deepcopy(module, memo)


def tensor_bytes(tensor: torch.Tensor) -> dict[int, int]:
    """{data pointer: bytes} of the storage behind ``tensor``; a tensor subclass (torchao's quantized
    weights) is counted through the plain tensors it holds (``__tensor_flatten__``)."""
    if hasattr(tensor, "__tensor_flatten__"):
        names, _ = tensor.__tensor_flatten__()
        found = {}
        for name in names:
            found.update(tensor_bytes(getattr(tensor, name)))
        return found
    return {tensor.data_ptr(): tensor.numel() * tensor.element_size()}


def time_first_calls(module: torch.nn.Module, record: dict, synchronize) -> None:
    """Record in ``record[input shape]`` how long ``module``'s first call for each input shape took.

    For a torch.compile'd UNet that call includes compiling it for that shape (a recompilation
    for a new batch size), so the compile time is reported apart from the timed latency.
    """
    started = {}

    def before(module, args, kwargs):
        sample = args[0] if args else kwargs["sample"]
        shape = "x".join(str(size) for size in sample.shape)
        if shape not in record:
            synchronize()
            started[shape] = time.perf_counter()

    def after(module, args, kwargs, output):
        if started:
            synchronize()
            shape, start = started.popitem()
            record[shape] = time.perf_counter() - start
        return output

    module.register_forward_pre_hook(before, with_kwargs=True)
    module.register_forward_hook(after, with_kwargs=True)


def apply_tome(unet: torch.nn.Module, ratio: float) -> None:
    """Token merging (tomesd) on ``unet``'s transformer blocks, in place.

    tomesd's documented defaults otherwise (max_downsample=1: the full-resolution blocks only,
    2x2 strides, self-attention only), except ``use_rand=False``: with random destinations every
    call would draw from the global random generator, so no two calls would make the same image.
    """
    import tomesd

    tomesd.apply_patch(unet, ratio=ratio, use_rand=False)


class NoMidBlock(torch.nn.Module):
    """A UNet mid block that returns its input: what UNet2DConditionModel computes without one."""

    def forward(self, sample: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return sample


def apply_deepcache(pipe, interval: int) -> None:
    """DeepCache on ``pipe``'s UNet, in place: the whole UNet every ``interval`` steps, branch 0 between.

    DeepCache wraps ``pipe.unet``'s forward and finds each step's index in ``pipe.scheduler``'s
    timesteps, so each pipeline needs a UNet tree of its own (``PipelineStore.pipeline``).
    DeepCache 0.1.1 also wraps the mid block's forward unconditionally; BK-SDM-small has none
    (AttributeError), so such a UNet gets :class:`NoMidBlock`, which computes exactly what no mid
    block does.
    """
    from DeepCache import DeepCacheSDHelper

    if pipe.unet.mid_block is None:
        pipe.unet.mid_block = NoMidBlock()
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=interval, cache_branch_id=0)
    helper.enable()


def quantize_int8_dynamic(unet: torch.nn.Module) -> None:
    """torchao int8 dynamic-activation, int8-weight quantization of ``unet``'s nn.Linear layers, in place.

    ``set_inductor_config=False``: the recommended inductor settings are process-wide and would
    change how the other variants compile.
    """
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

    quantize_(unet, Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))


def attention_processor(name: str):
    if name == "sdpa":
        return AttnProcessor2_0()
    if name == "classic":
        return AttnProcessor()
    if name == "xformers":
        return XFormersAttnProcessor()
    raise ValueError(f"unknown attention back-end {name!r}: choose sdpa, classic or xformers")


@contextlib.contextmanager
def runtime_settings(variant: Variant):
    """Process-wide switches a variant needs during its calls only (TF32), restored afterwards."""
    previous = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = variant.tf32_matmul
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def plant_slowdown(unet: torch.nn.Module, fraction: float, synchronize) -> None:
    """Make every forward of ``unet`` do extra busy work lasting ``fraction`` of its own duration.

    A known, real slowdown of one variant, to show that the speed-up gate catches it
    (``--perf-plant-slowdown VARIANT=FRACTION``).
    """
    started = {}

    def before(module, args, kwargs):
        synchronize()
        started["at"] = time.perf_counter()

    def after(module, args, kwargs, output):
        synchronize()
        until = time.perf_counter() + fraction * (time.perf_counter() - started["at"])
        while time.perf_counter() < until:
            pass
        return output

    unet.register_forward_pre_hook(before, with_kwargs=True)
    unet.register_forward_hook(after, with_kwargs=True)


class PipelineStore:
    """Session cache of components and per-variant pipelines for one source and device."""

    def __init__(self, source, device: torch.device, planted_slowdowns: dict | None = None, synchronize=None):
        self.source = source
        self.device = device
        self.planted_slowdowns = planted_slowdowns or {}
        self.synchronize = synchronize or (lambda: None)
        self._components: dict[tuple[str, torch.dtype], torch.nn.Module] = {}
        self._models: dict[str, dict] = {}  # variant name -> its unet, text_encoder, vae
        self._tokenizer = None
        # variant name -> {UNet input shape: seconds of its first call}: compile time, for compiled variants
        self.compile_seconds: dict[str, dict[str, float]] = {}

    def component(self, name: str, dtype: torch.dtype) -> torch.nn.Module:
        """A source component in ``dtype``, built once (fp32 first, then cast)."""
        key = (name, dtype)
        if key not in self._components:
            if dtype == torch.float32 and name == zoo.DISTILLED_UNET and self.source.derives_students:
                teacher = self.component(zoo.TEACHER_UNET, torch.float32)
                self._components[key] = derive_student(teacher, "small")
            elif dtype == torch.float32:
                self._components[key] = self.source.build(name)
            else:
                self._components[key] = clone_module(self.component(name, torch.float32), dtype=dtype)
        return self._components[key]

    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = self.source.tokenizer()
        return self._tokenizer

    def models(self, variant: Variant) -> dict:
        """The variant's unet, text encoder and vae, with its attention, layout and compilation."""
        if variant.name not in self._models:
            dtype = variant.torch_dtype
            unet = clone_module(self.component(variant.unet, dtype), channels_last=variant.channels_last)
            vae = clone_module(self.component(variant.vae, dtype), channels_last=variant.channels_last)
            processor = attention_processor(variant.attention)
            unet.set_attn_processor(processor)
            if hasattr(vae, "set_attn_processor"):
                vae.set_attn_processor(processor)
            if variant.fuse_qkv:  # new fused weights in this tree; the shared q, k, v weights stay as they are
                unet.fuse_qkv_projections()
                if hasattr(vae, "fuse_qkv_projections"):  # the KL autoencoder; TAESD has no attention
                    vae.fuse_qkv_projections()
                unet.requires_grad_(False)
                vae.requires_grad_(False)
            if variant.tome_ratio is not None:
                apply_tome(unet, variant.tome_ratio)
            if variant.int8_dynamic:
                quantize_int8_dynamic(unet)
            if variant.compile:
                unet = torch.compile(unet)
                self.compile_seconds[variant.name] = {}
                time_first_calls(unet, self.compile_seconds[variant.name], self.synchronize)
            if variant.name in self.planted_slowdowns:
                plant_slowdown(unet, self.planted_slowdowns[variant.name], self.synchronize)
            self._models[variant.name] = {
                "unet": unet,
                "text_encoder": self.component(zoo.TEXT_ENCODER, dtype),
                "vae": vae,
            }
        return self._models[variant.name]

    def pipeline(self, variant: Variant, scenario: Scenario):
        """A fresh pipeline object over the variant's cached models, with the scenario's scheduler."""
        models = dict(self.models(variant))
        if variant.deepcache_interval is not None:  # its own UNet tree (same weights) for DeepCache to wrap
            models["unet"] = clone_module(models["unet"])
        pipe = zoo.assemble_pipeline(
            tokenizer=self.tokenizer(),
            scheduler=zoo.make_scheduler(scenario.scheduler, self.source.scheduler_config()),
            **models,
        )
        if variant.deepcache_interval is not None:
            apply_deepcache(pipe, variant.deepcache_interval)
        return pipe

    def weight_bytes(self, variant: Variant) -> int:
        """Bytes of the weights the variant's pipeline holds."""
        tensors = {}
        for module in self.models(variant).values():
            for tensor in list(module.parameters()) + list(module.buffers()):
                tensors.update(tensor_bytes(tensor))
        return sum(tensors.values())

    def keep_only(self, variant_names) -> None:
        """Release every model no listed variant (or its references) needs, and free the memory."""
        needed = {name for variant_name in variant_names for name in reference_chain(variant_name)}
        needed_components = {
            (component, get_variant(name).torch_dtype)
            for name in needed
            for component in get_variant(name).components
        }
        # fp32 teacher weights are the source of casts and distilled students: rebuilt on demand.
        released = [name for name in self._models if name not in needed]
        for name in released:
            del self._models[name]
        for key in [key for key in self._components if key not in needed_components]:
            del self._components[key]
        if released:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
