"""Builds each variant's pipeline once, lazily, sharing weights, and releases what is done.

Components are cached by (source component, dtype): variants that differ only in attention
processor, TF32 or compilation share one set of weight tensors (their module trees are cloned
around the same tensors); channels_last gets its own copy because it changes the weights' layout.
"""

from __future__ import annotations

import contextlib
import copy
import gc
import time

import torch
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, XFormersAttnProcessor

from diffperf import zoo
from diffperf.bksdm import derive_student
from diffperf.variants import Variant, get_variant, reference_chain
from diffperf.workloads import Scenario


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
            if variant.compile:
                unet = torch.compile(unet)
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
        return zoo.assemble_pipeline(
            tokenizer=self.tokenizer(),
            scheduler=zoo.make_scheduler(scenario.scheduler, self.source.scheduler_config()),
            **self.models(variant),
        )

    def weight_bytes(self, variant: Variant) -> int:
        """Bytes of the weights the variant's pipeline holds."""
        tensors = {}
        for module in self.models(variant).values():
            for tensor in list(module.parameters()) + list(module.buffers()):
                tensors[tensor.data_ptr()] = tensor.numel() * tensor.element_size()
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
