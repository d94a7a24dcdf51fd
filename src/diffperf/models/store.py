"""Builds each variant's pipeline once, lazily, sharing weights, and releases what is done.

Components are cached by (family, component, dtype): variants that differ only in attention
processor, TF32, compilation or the other speed-ups that change no weights share one set of weight
tensors (their module trees are cloned around the same tensors); channels_last gets its own copy
because it changes the weights' layout.

A variant's speed-ups (diffperf.models.speedups) are applied to its own module trees, never to the
shared source components: fused QKV projections add fused weights beside the shared ones, ToMe
swaps the classes of the variant's transformer blocks, torchao replaces the variant's linear
weights with int8 ones, and DeepCache wraps the forward of one UNet tree per pipeline (as diffusers' caches that
read the pipeline's timestep or are calibrated on it hook one transformer tree per pipeline).
"""

from __future__ import annotations

import contextlib
import copy
import gc
import time

import torch

from diffperf.models.calls import CallPlan
from diffperf.models.plants import MEMORY, PERTURBATION, SLOWDOWN, Kind, Plants
from diffperf.models.registry import Registry
from diffperf.models.speedups import BuildContext, BuildPlan
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scenario
from diffperf.models.zoo import assemble_pipeline, is_tokenizer


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


def perturbed_copy(module: torch.nn.Module, relative: float = 1e-3, seed: int = 1234) -> torch.nn.Module:
    """A deep copy of ``module`` with every floating-point weight multiplied by (1 + relative * N(0, 1)), seeded.

    A known change of a variant's numbers, to show that the image checks catch it
    (``--perf-plant-perturbation VARIANT=RELATIVE``).
    """
    clone = copy.deepcopy(module)
    generator = torch.Generator(device="cpu").manual_seed(seed)
    with torch.no_grad():
        for parameter in clone.parameters():
            if parameter.is_floating_point():
                noise = torch.randn(parameter.shape, generator=generator, dtype=torch.float32)
                parameter.mul_((1 + relative * noise).to(parameter.device, parameter.dtype))
    return clone


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


def plant_memory(unet: torch.nn.Module, until: torch.nn.Module, extra_bytes: int) -> None:
    """Make every pipeline call hold ``extra_bytes`` more from the first ``unet`` forward to the end of the ``until``
    forward (the VAE's decoder: the end of the call), so that the call's peak rises by exactly that much wherever
    it lies (``--perf-plant-memory VARIANT=FRACTION``): a known rise, to show that the memory gate catches it.
    """
    held = []

    def allocate(module, args, kwargs):
        if not held:
            held.append(torch.ones(extra_bytes, dtype=torch.uint8, device=next(module.parameters()).device))

    def release(module, args, kwargs, output):
        held.clear()
        return output

    unet.register_forward_pre_hook(allocate, with_kwargs=True)
    until.register_forward_hook(release, with_kwargs=True)


class PipelineStore:
    """Session cache of components and per-variant pipelines for one source and device."""

    def __init__(self, registry: Registry, source, device: torch.device, plants: Plants = Plants(), synchronize=None):
        self.registry = registry
        self.source = source
        self.device = device
        self.plants = plants  # changes planted on purpose (--perf-plant-*): :meth:`_plant` applies them
        self.synchronize = synchronize or (lambda: None)
        self._components: dict[tuple[str, str, torch.dtype], torch.nn.Module] = {}
        self._tokenizers: dict[tuple[str, str], object] = {}
        self._models: dict[str, dict] = {}  # variant name -> {slot: its module tree}
        # variant name -> {UNet input shape: seconds of its first call}: compile time, for compiled variants
        self.compile_seconds: dict[str, dict[str, float]] = {}

    def plan(self, variant: Variant) -> BuildPlan:
        return variant.plan(self.registry.family(variant.family))

    def component(self, family: str, name: str, dtype: torch.dtype) -> torch.nn.Module:
        """A component in ``dtype``, built once (fp32 first, then cast); students derived from the fp32 teacher."""
        key = (family, name, dtype)
        if key not in self._components:
            declared = self.registry.family(family).component(name)
            if dtype != torch.float32:
                self._components[key] = clone_module(self.component(family, name, torch.float32), dtype=dtype)
            elif declared.derive is not None and self.source.derives_students:
                teacher = self.component(family, declared.teacher, torch.float32)
                self._components[key] = declared.derive(teacher)
            else:
                self._components[key] = self.source.build(self.registry.family(family), name)
        return self._components[key]

    def tokenizer(self, family: str, name: str):
        key = (family, name)
        if key not in self._tokenizers:
            self._tokenizers[key] = self.source.build(self.registry.family(family), name)
        return self._tokenizers[key]

    def models(self, variant: Variant) -> dict:
        """The variant's modules by slot (tokenizers included), with its speed-ups applied, built once."""
        if variant.name not in self._models:
            plan = self.plan(variant)
            family = plan.family
            modules, tokenizers = {}, {}
            for slot, name in plan.components.items():
                if is_tokenizer(family.component(name)):
                    tokenizers[slot] = self.tokenizer(family.name, name)
                else:
                    modules[slot] = clone_module(self.component(family.name, name, plan.torch_dtype),
                                                 channels_last=plan.channels_last)
            self._plant(PERTURBATION, variant, modules)
            context = BuildContext(self.device, self.synchronize, denoiser=family.denoiser)
            for speedup in variant.speedups:
                speedup.apply(modules, context)
            if context.first_calls is not None:  # a compiled module's first calls: compile time
                self.compile_seconds[variant.name] = context.first_calls
            for kind in (SLOWDOWN, MEMORY):
                self._plant(kind, variant, modules)
            self._models[variant.name] = {**modules, **tokenizers}
        return self._models[variant.name]

    def _plant(self, kind: Kind, variant: Variant, modules: dict) -> None:
        """Plant what the run plants of ``kind`` in ``variant`` (diffperf.models.plants), in its denoiser (UNet or
        transformer): a perturbation before the speed-ups are applied (they act on the changed numbers), extra work
        and held memory after them (around the denoiser they made)."""
        amount = self.plants.amount(kind, variant.name)
        if not amount:
            return
        denoiser = self.plan(variant).denoiser
        if kind == PERTURBATION:
            modules[denoiser] = perturbed_copy(modules[denoiser], amount)
        elif kind == SLOWDOWN:
            plant_slowdown(modules[denoiser], amount, self.synchronize)
        elif kind == MEMORY:
            denoiser_bytes = sum(sum(tensor_bytes(tensor).values()) for tensor in modules[denoiser].parameters())
            plant_memory(modules[denoiser], getattr(modules["vae"], "decoder", modules["vae"]),
                         int(amount * denoiser_bytes))

    def call_plan(self, variant: Variant, scenario: Scenario) -> CallPlan:
        """The arguments and scheduler of each of the variant's calls on ``scenario``."""
        return variant.call_plan(self.registry.family(variant.family), scenario)

    def pipeline(self, variant: Variant, scenario: Scenario):
        """A fresh pipeline object over the variant's cached models, with the scheduler its call plan names, prepared
        and calibrated by its speed-ups for ``scenario``'s call."""
        plan = self.plan(variant)
        models = dict(self.models(variant))
        if plan.denoiser_per_pipeline:  # its own denoiser tree (same weights), e.g. for DeepCache to wrap
            models[plan.denoiser] = clone_module(models[plan.denoiser])
        call = self.call_plan(variant, scenario)
        scheduler = plan.family.make_scheduler(call.scheduler, self.source.scheduler_config(plan.family),
                                               call.scheduler_config)
        pipe = assemble_pipeline(plan.family, models, scheduler)
        for speedup in variant.speedups:
            speedup.prepare(pipe)
        with self.during_calls(variant):  # what a speed-up measures of the workload (MagCache's ratios), untimed
            for speedup in variant.speedups:
                speedup.calibrate(pipe, call)
        return pipe

    @contextlib.contextmanager
    def during_calls(self, variant: Variant):
        """The process-wide switches of the variant during its calls, restored afterwards: TF32 matmuls as its
        plan says (off unless a speed-up asks for them, whatever the process set), then its speed-ups' own."""
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = self.plan(variant).tf32
        try:
            with contextlib.ExitStack() as stack:
                for speedup in variant.speedups:
                    stack.enter_context(speedup.during_calls())
                yield
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous

    def weight_bytes(self, variant: Variant) -> int:
        """Bytes of the weights the variant's pipeline holds."""
        tensors = {}
        for module in self.models(variant).values():
            if isinstance(module, torch.nn.Module):
                for tensor in list(module.parameters()) + list(module.buffers()):
                    tensors.update(tensor_bytes(tensor))
        return sum(tensors.values())

    def keep_only(self, variant_names) -> None:
        """Release every model no listed variant (or its references) needs, and free the memory."""
        needed = {name for variant_name in variant_names for name in self.registry.reference_chain(variant_name)}
        needed_components = set()
        for name in needed:
            plan = self.plan(self.registry.variant(name))
            needed_components.update((plan.family.name, component, plan.torch_dtype)
                                     for component in plan.components.values())
        # fp32 teacher weights are the source of casts and derived students: rebuilt on demand.
        released = [name for name in self._models if name not in needed]
        for name in released:
            del self._models[name]
        for key in [key for key in self._components if key not in needed_components]:
            del self._components[key]
        needed_families = {family for family, _, _ in needed_components}
        for key in [key for key in self._tokenizers if key[0] not in needed_families]:
            del self._tokenizers[key]
        if released:
            gc.collect()
            if self.device.type == "cuda":
                torch.cuda.empty_cache()
