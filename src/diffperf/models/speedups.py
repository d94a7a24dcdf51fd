"""Speed-ups: each one named change to a pipeline, composable into a variant (diffperf.models.variants).

A speed-up is an object with a name and its parameters that changes one or more of five stages
of building and running a variant's pipeline; every stage does nothing unless overridden:

``plan(plan)``
    what the pipeline is built from (:class:`BuildPlan`): which component fills a slot (a student
    UNet, a tiny autoencoder), the weights' dtype and memory format. Variants with the same plan
    share one set of weight tensors.
``apply(models, context)``
    changes the variant's own module trees, ``{slot: module}``, in place or by replacing an entry
    (attention processor, fused QKV projections, token merging, int8 weights, a LoRA adapter: :class:`LoRA`,
    ``torch.compile``).
    The trees are the variant's own, over shared tensors, so this never reaches another variant.
``prepare(pipe)``
    changes each new pipeline object (DeepCache wraps the UNet's forward; a cache that reads the
    pipeline's current timestep hooks that pipeline's own transformer tree).
``calibrate(pipe, call)``
    measures, on each new pipeline object after ``prepare`` and before any timed call, what the speed-up
    needs to know of the workload its calls run (:class:`diffperf.models.calls.CallPlan`): MagCache's
    magnitude ratios, from one untimed calibration call of that pipeline.
``call(call)``
    the arguments of each timed call and its scheduler (:class:`diffperf.models.calls.CallPlan`):
    fewer steps, another guidance scale, given timesteps or sigmas, another scheduler class or
    settings (a few-step sampler: :class:`FewStep`).
``during_calls()``
    a context manager around every timed call, for process-wide switches (TF32), restored after.

It also says where it can run (``unavailable(device)``: one line, or None), which families' pipelines
it can change (``unsupported(family)``: one line, or None), and what it does to the image:
``image_effect`` is None when the image stays numerically equal to fp32's (compared with the
family's fp32 baseline under the ``fp32`` bound), a comparison kind of
:data:`diffperf.images.similarity.THRESHOLDS` (``half``, ``tome``, ``deepcache``, ``int8``,
``cache``) when it changes it by a bounded amount, or :data:`OTHER_MODEL` / :data:`FEWER_STEPS` when
its image is another one altogether (a student, a tiny autoencoder, another sampler: checked against
its own stored image only); ``own_check`` is the kind its image is checked against its own stored
baseline with. docs/extending.md shows a speed-up of one's own.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from diffperf.models.calls import CallPlan
    from diffperf.models.family import Family

OTHER_MODEL = "other model"
"""``image_effect`` of a speed-up that runs another model: its image is not compared with fp32's."""

FEWER_STEPS = "fewer steps"
"""``image_effect`` of a speed-up that samples with other steps or another scheduler: another image, not compared
with fp32's (checked against its own stored image)."""

NOT_COMPARED = (OTHER_MODEL, FEWER_STEPS)
"""The image effects whose image is not compared with the family's fp32 image."""

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
PIP_NAMES = {"DeepCache": "deepcache"}
"""The package to install for a module whose name differs (else the module's name)."""


@dataclass
class BuildPlan:
    """What a variant's pipeline is built from, as its speed-ups decide it."""

    family: Family
    components: dict[str, str]  # slot -> the component that fills it
    dtype: str = "float32"
    channels_last: bool = False
    tf32: bool = False  # TF32 matmuls during the calls (for the FLOP/s precision)
    denoiser_per_pipeline: bool = False  # each pipeline object gets a denoiser tree of its own (DeepCache, caches)

    @classmethod
    def default(cls, family: Family) -> "BuildPlan":
        return cls(family, {slot: slot for slot in family.slots})

    def use(self, component: str) -> None:
        """Fill the component's slot with it (a student UNet, a tiny autoencoder)."""
        self.components[self.family.component(component).fills] = component

    @property
    def torch_dtype(self) -> torch.dtype:
        return DTYPES[self.dtype]

    @property
    def denoiser(self) -> str:
        """The slot of the model the denoising loop calls (``unet`` or ``transformer``)."""
        return self.family.denoiser


@dataclass
class BuildContext:
    """What ``apply`` may need of the run: the device, its synchronisation, the denoiser's slot, first-call times."""

    device: torch.device
    synchronize: callable = lambda: None
    first_calls: dict | None = None  # {input shape: seconds} of a compiled module's first calls
    denoiser: str = "unet"  # the slot of the model the denoising loop calls (``unet`` or ``transformer``)


class SpeedUp:
    """Base of every speed-up: override the stages it changes (this module's docstring); a subclass gives its
    ``name``."""

    name: str = ""
    description: str = ""
    image_effect: str | None = None
    own_check: str = "same"
    same_every_step: bool = True
    """False when the UNet does different work from one denoising step to the next (DeepCache), so
    a call's FLOPs are counted over every step rather than one UNet call times the steps."""

    def describe(self) -> str:
        return self.description or self.name

    def unavailable(self, device: torch.device) -> str | None:
        """Why it cannot run on ``device`` (one line), or None."""
        return None

    def unsupported(self, family: Family) -> str | None:
        """Why it cannot change ``family``'s pipeline (one line), or None."""
        return None

    def plan(self, plan: BuildPlan) -> None:
        pass

    def apply(self, models: dict, context: BuildContext) -> None:
        pass

    def prepare(self, pipe) -> None:
        pass

    def calibrate(self, pipe, call: CallPlan) -> None:
        pass

    def call(self, call: CallPlan) -> None:
        pass

    def during_calls(self):
        return contextlib.nullcontext()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


def check_speedup(speedup) -> None:
    """One-line ValueError unless ``speedup`` is a SpeedUp object with a name whose ``unavailable`` answers None or
    one line (asked for the CPU, which every machine has, when a variant is declared)."""
    if isinstance(speedup, type) and issubclass(speedup, SpeedUp):
        raise ValueError(f"{speedup.__name__} is a SpeedUp class: give an object of it, {speedup.__name__}(...)")
    if not isinstance(speedup, SpeedUp):
        raise ValueError(f"{speedup!r} is a {type(speedup).__name__}, not a SpeedUp: give objects of diffperf.api's "
                         "speed-ups (Attention('sdpa'), Precision('float16'), ...) or of a SpeedUp subclass")
    if not is_line(speedup.name):
        raise ValueError(f"speed-up {type(speedup).__name__} has no name: give it one (name = \"my-speed-up\"): "
                         "diffperf variants and the reports show it")
    unavailable_reason(speedup, torch.device("cpu"))


def unavailable_reason(speedup: SpeedUp, device: torch.device) -> str | None:
    """``speedup.unavailable(device)``, checked: None, or one line saying why it cannot run there (one-line
    ValueError for any other answer)."""
    reason = speedup.unavailable(device)
    if reason is not None and not is_line(reason):
        raise ValueError(f"speed-up {speedup.name}: unavailable({device.type}) returned {reason!r}: return None where "
                         "it runs, else one line saying why not")
    return reason


def is_line(text) -> bool:
    """Whether ``text`` is one line of text, not blank."""
    return isinstance(text, str) and bool(text.strip()) and "\n" not in text


def missing_package(module: str) -> str | None:
    """``needs the optional package X: pip install X`` when ``module`` cannot be imported, else None."""
    if importlib.util.find_spec(module) is not None:
        return None
    package = PIP_NAMES.get(module, module)
    return f"needs the optional package {package}: pip install {package}"


def dtype_supported(dtype: torch.dtype, device: torch.device) -> bool:
    """Whether ``device`` has fast kernels for ``dtype`` (fp32 always)."""
    if dtype == torch.float32:
        return True
    if device.type == "cuda":  # planned from a machine without CUDA (diffperf plan): the A100 and newer have bf16
        return dtype == torch.float16 or not torch.cuda.is_available() or torch.cuda.is_bf16_supported()
    if dtype == torch.bfloat16:
        return torch.ops.mkldnn._is_mkldnn_bf16_supported()
    return torch.ops.mkldnn._is_mkldnn_fp16_supported()


def cpu_has_vnni() -> bool:
    """Whether this CPU has VNNI int8 dot products (AVX512-VNNI, AVX-VNNI), as torchao asks it."""
    check = getattr(torch.cpu, "_is_vnni_supported", None)
    return bool(check()) if check is not None else False


# --------------------------------------------------------------------------- the built-in speed-ups


@dataclass(frozen=True, repr=False)
class Precision(SpeedUp):
    """Weights and activations in ``dtype`` (``torch_dtype=torch.float16``); never autocast."""

    dtype: str = "float16"

    def __post_init__(self):
        if self.dtype not in DTYPES:
            raise ValueError(f"Precision({self.dtype!r}): choose one of {', '.join(DTYPES)}")

    @property
    def name(self) -> str:
        return {"float16": "fp16", "bfloat16": "bf16", "float32": "fp32"}[self.dtype]

    @property
    def description(self) -> str:
        return f"{self.name} weights (torch_dtype=torch.{self.dtype})"

    @property
    def image_effect(self) -> str | None:
        return None if self.dtype == "float32" else "half"

    @property
    def own_check(self) -> str:
        # Reduced precision rounds differently on other CPUs and GPUs (diffperf.images.similarity).
        return "same" if self.dtype == "float32" else "half"

    def unavailable(self, device):
        if not dtype_supported(DTYPES[self.dtype], device):
            return f"needs {self.dtype} kernels, which this {device.type} lacks"
        return None

    def plan(self, plan):
        plan.dtype = self.dtype


class TF32(SpeedUp):
    """TF32 matmuls (``torch.backends.cuda.matmul.allow_tf32``) during the calls.

    The switch is process-wide: the store sets it to the plan's ``tf32`` around every call of every
    variant (diffperf.models.store.PipelineStore.during_calls), so the others run without it.
    """

    name = "tf32"
    description = "TF32 matmuls (torch.backends.cuda.matmul.allow_tf32)"

    def unavailable(self, device):
        return None if device.type == "cuda" else f"needs a CUDA GPU (running on {device.type})"

    def plan(self, plan):
        plan.tf32 = True


ATTENTION = ("sdpa", "classic", "xformers")


def attention_processor(backend: str):
    """diffusers' attention processor of ``backend``: sdpa (the PyTorch 2 default), classic or xformers."""
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, XFormersAttnProcessor

    if backend == "sdpa":
        return AttnProcessor2_0()
    if backend == "classic":
        return AttnProcessor()
    if backend == "xformers":
        return XFormersAttnProcessor()
    raise ValueError(f"unknown attention back-end {backend!r}: choose one of {', '.join(ATTENTION)}")


@dataclass(frozen=True, repr=False)
class Attention(SpeedUp):
    """Every attention of the UNet and the autoencoder through one back-end's processor."""

    backend: str = "sdpa"

    def __post_init__(self):
        attention_processor(self.backend)  # a one-line ValueError for an unknown back-end

    @property
    def name(self) -> str:
        return f"attention-{self.backend}"

    @property
    def description(self) -> str:
        return {"sdpa": "PyTorch 2 scaled-dot-product attention (AttnProcessor2_0)",
                "classic": "classic attention processor (AttnProcessor), no SDPA",
                "xformers": "xFormers memory-efficient attention"}[self.backend]

    def unavailable(self, device):
        if self.backend == "xformers":
            if device.type != "cuda":
                return f"needs a CUDA GPU (running on {device.type})"
            return missing_package("xformers")
        return None

    def unsupported(self, family):
        return unet_only(family)

    def apply(self, models, context):
        for module in models.values():
            if hasattr(module, "set_attn_processor"):
                module.set_attn_processor(attention_processor(self.backend))


class ChannelsLast(SpeedUp):
    """The weights and activations of the convolutions in ``channels_last`` memory format."""

    name = "channels-last"
    description = "UNet and VAE in channels_last memory format"

    def plan(self, plan):
        plan.channels_last = True


def unet_only(family: Family) -> str | None:
    """The reason a speed-up made for UNet pipelines gives for a family whose denoiser is a transformer."""
    if family.denoiser == "unet":
        return None
    return f"changes a UNet, and {family.name}'s pipeline denoises with a {family.denoiser}"


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


class Compile(SpeedUp):
    """``torch.compile`` of the denoiser (UNet or transformer); its first call per input shape (compiling) is
    reported apart."""

    name = "compile"
    description = "torch.compile of the UNet (the transformer in a DiT family)"

    def apply(self, models, context):
        models[context.denoiser] = torch.compile(models[context.denoiser])
        if context.first_calls is None:
            context.first_calls = {}
        time_first_calls(models[context.denoiser], context.first_calls, context.synchronize)


class FusedQKV(SpeedUp):
    """diffusers' ``fuse_qkv_projections``: one projection for Q, K and V (K and V for cross-attention)."""

    name = "fused-qkv"
    description = "fused QKV projections (fuse_qkv_projections) in the UNet and VAE attention"

    def apply(self, models, context):
        # New fused weights in the variant's own tree; the shared q, k, v weights stay as they are.
        for module in models.values():
            if hasattr(module, "fuse_qkv_projections") and hasattr(module, "attn_processors"):
                module.fuse_qkv_projections()
                module.requires_grad_(False)


@dataclass(frozen=True, repr=False)
class ToMe(SpeedUp):
    """Token merging (tomesd) in the UNet's self-attention.

    tomesd's documented defaults otherwise (2x2 strides, self-attention only), except
    ``use_rand=False``: with random destinations every call would draw from the global random
    generator, so no two calls would make the same image. ``max_downsample=1`` merges in the
    full-resolution blocks only (SD v1); SDXL has no attention there, so its variants use 2.
    """

    ratio: float = 0.5
    max_downsample: int = 1
    image_effect = "tome"

    @property
    def name(self) -> str:
        return f"tome-{self.ratio:g}"

    @property
    def description(self) -> str:
        where = "full-resolution" if self.max_downsample == 1 else f"up to {self.max_downsample}x downsampled"
        return f"token merging (tomesd, ratio {self.ratio:g}) in the UNet's {where} self-attention"

    def unavailable(self, device):
        return missing_package("tomesd")

    def unsupported(self, family):
        return unet_only(family)

    def apply(self, models, context):
        import tomesd

        tomesd.apply_patch(models["unet"], ratio=self.ratio, max_downsample=self.max_downsample, use_rand=False)


class NoMidBlock(torch.nn.Module):
    """A UNet mid block that returns its input: what UNet2DConditionModel computes without one."""

    def forward(self, sample: torch.Tensor, *args, **kwargs) -> torch.Tensor:
        return sample


@dataclass(frozen=True, repr=False)
class DeepCache(SpeedUp):
    """DeepCache: the whole UNet every ``interval`` steps, the shallow branch ``branch`` between.

    DeepCache wraps ``pipe.unet``'s forward and finds each step's index in ``pipe.scheduler``'s
    timesteps, so each pipeline gets a UNet tree of its own. DeepCache 0.1.1 also wraps the mid
    block's forward unconditionally; a UNet without one (BK-SDM-small, KOALA-700M) gets
    :class:`NoMidBlock`, which computes exactly what no mid block does.
    """

    interval: int = 3
    branch: int = 0
    image_effect = "deepcache"
    same_every_step = False  # the whole UNet on one step in ``interval``, the shallow branch between

    @property
    def name(self) -> str:
        return f"deepcache-{self.interval}"

    @property
    def description(self) -> str:
        return (f"DeepCache (interval {self.interval}, branch {self.branch}): deep UNet features reused "
                f"{self.interval - 1} steps in {self.interval}")

    def unavailable(self, device):
        return missing_package("DeepCache")

    def unsupported(self, family):
        return unet_only(family)

    def plan(self, plan):
        plan.denoiser_per_pipeline = True

    def prepare(self, pipe):
        from DeepCache import DeepCacheSDHelper

        if pipe.unet.mid_block is None:
            pipe.unet.mid_block = NoMidBlock()
        helper = DeepCacheSDHelper(pipe=pipe)
        helper.set_params(cache_interval=self.interval, cache_branch_id=self.branch)
        helper.enable()


@dataclass(frozen=True, repr=False)
class Int8Dynamic(SpeedUp):
    """torchao int8 dynamic-activation, int8-weight quantization of the denoiser's nn.Linear layers.

    ``set_inductor_config=False``: the recommended inductor settings are process-wide and would
    change how the other variants compile. Its image is checked, against fp32's and its own
    baseline alike, with the ``check`` bound: rounding activations to int8 turns another thread
    count's fp32 noise into whole steps. ``int8`` was measured on SD v1; SDXL's 70 transformer
    layers quantize to more error than that (docs/similarity.md), so its variant uses ``half``.
    """

    check: str = "int8"
    name = "int8"
    description = "int8 dynamic quantization (torchao) of the UNet's linear layers"

    @property
    def image_effect(self) -> str:
        return self.check

    @property
    def own_check(self) -> str:
        return self.check

    def unavailable(self, device):
        missing = missing_package("torchao")
        if missing:
            return missing
        if device.type == "cpu" and not cpu_has_vnni():
            return "needs a CPU with VNNI: without it torchao's int8 matmuls saturate (measured 33.7 dB from fp32)"
        return None

    def apply(self, models, context):
        from torchao.quantization import Int8DynamicActivationInt8WeightConfig, quantize_

        quantize_(models[context.denoiser], Int8DynamicActivationInt8WeightConfig(set_inductor_config=False))


@dataclass(frozen=True, repr=False)
class UseComponent(SpeedUp):
    """Another of the family's components in its slot: a student UNet, a tiny autoencoder."""

    component: str = ""
    image_effect = OTHER_MODEL

    @property
    def name(self) -> str:
        return self.component

    @property
    def description(self) -> str:
        return f"the {self.component} component in its slot"

    def plan(self, plan):
        plan.use(self.component)


class Student(UseComponent):
    """A distilled UNet (BK-SDM, SSD-1B, Segmind-Vega, KOALA) in the UNet's slot."""

    @property
    def description(self) -> str:
        return f"the distilled {self.component} UNet"


class TinyAutoencoder(UseComponent):
    """A tiny autoencoder (TAESD, TAESDXL) in the VAE's slot."""

    @property
    def description(self) -> str:
        return f"the tiny autoencoder {self.component}"


class NoVaeUpcast(SpeedUp):
    """Decode in the pipeline's half precision: the VAE's ``force_upcast`` off.

    In fp16, SDXL's pipeline converts its VAE to fp32 for every decode and back afterwards
    (``force_upcast``), because SDXL's VAE overflows in fp16. The fp16-fix VAE has the same
    architecture and is meant to decode in fp16; with weights that overflow, the image checks
    report the NaN or black images.
    """

    name = "no-vae-upcast"
    description = "the VAE decodes in fp16 (force_upcast off, as the fp16-fix VAE allows)"

    def apply(self, models, context):
        models["vae"].register_to_config(force_upcast=False)


LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
"""The denoiser's attention projections an LCM-LoRA adapts (SD v1.5's is rank 64)."""

LORA_STRENGTH = 0.1
"""The seeded LoRA's update to each weight, as a fraction of that weight's standard deviation."""


@dataclass(frozen=True, repr=False)
class LoRA(SpeedUp):
    """A LoRA adapter on the denoiser's attention projections, with seeded random weights, fused or not.

    Added through diffusers' PEFT integration (``add_adapter(peft.LoraConfig(...))``), ``lora_alpha`` equal to the
    rank. Its weights are drawn from ``seed`` (each update ``LORA_STRENGTH`` of its weight's standard deviation), so
    every build makes the same image; the global random generator is left as it was. With ``fuse`` the adapter is
    merged into the weights and its layers removed (diffusers' ``fuse_lora`` and ``unload_lora``): a call costs what
    the base model's costs. The merged weights are new tensors of the variant's own, so the weights it shares with
    the other variants stay as they are. Unfused, the adapter's own matmuls run at every step: what an unfused LoRA
    costs. The model is another one (:data:`OTHER_MODEL`): its image is checked against its own stored baseline only.
    """

    rank: int = 64
    fuse: bool = True
    targets: tuple[str, ...] = LORA_TARGETS
    seed: int = 0
    image_effect = OTHER_MODEL

    def __post_init__(self):
        if isinstance(self.rank, bool) or not isinstance(self.rank, int) or self.rank < 1:
            raise ValueError(f"LoRA rank={self.rank!r}: give a whole number of at least 1")
        object.__setattr__(self, "targets", tuple(self.targets))

    @property
    def name(self) -> str:
        return f"lora-r{self.rank}" + ("" if self.fuse else "-unfused")

    @property
    def description(self) -> str:
        how = "fused into its weights" if self.fuse else "left unfused (its own matmuls at every step)"
        return (f"a rank-{self.rank} LoRA (seeded random weights) on the denoiser's {', '.join(self.targets)}, "
                f"{how}")

    def unavailable(self, device):
        return missing_package("peft")

    def apply(self, models, context):
        from peft import LoraConfig
        from peft.tuners.lora import LoraLayer

        denoiser = models[context.denoiser]
        config = LoraConfig(r=self.rank, lora_alpha=self.rank, target_modules=list(self.targets),
                            init_lora_weights=False)
        with torch.random.fork_rng(devices=[]):  # peft draws its initial weights from the global generator
            denoiser.add_adapter(config)
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        layers = [module for _, module in denoiser.named_modules() if isinstance(module, LoraLayer)]
        with torch.no_grad():
            for layer in layers:
                seed_lora_weights(layer, self.rank, generator)
        denoiser.requires_grad_(False)
        if self.fuse:
            for layer in layers:  # merging adds to the weight in place: merge into a copy of the variant's own
                base = layer.get_base_layer()
                base.weight = torch.nn.Parameter(base.weight.detach().clone(), requires_grad=False)
            denoiser.fuse_lora()
            denoiser.unload_lora()


def seed_lora_weights(layer, rank: int, generator: torch.Generator) -> None:
    """Draw ``layer``'s LoRA matrices A (rank x in) and B (out x rank) from ``generator``: A with unit-variance
    outputs, B so that the update B @ A has ``LORA_STRENGTH`` of the base weight's standard deviation."""
    weight = layer.get_base_layer().weight
    for adapter in layer.lora_A:
        down, up = layer.lora_A[adapter].weight, layer.lora_B[adapter].weight
        fan_in = down.shape[1]
        spread = LORA_STRENGTH * weight.detach().float().std().item() * (fan_in / rank) ** 0.5
        down.copy_(torch.randn(down.shape, generator=generator) / fan_in ** 0.5)
        up.copy_(torch.randn(up.shape, generator=generator) * spread)


@dataclass(frozen=True, repr=False)
class FewStep(SpeedUp):
    """A few-step sampler: fewer steps, its guidance scale, its scheduler and settings, in each timed call.

    The call stage of a distilled sampler (LCM, SDXL-Turbo, -Lightning, Hyper-SD, TCD, DMD2): what it
    changes is the call's arguments and scheduler (diffperf.models.calls.CallPlan), so the speed-up
    measured is the whole call's, the classifier-free guidance batch included (guidance 1 or 0 runs the
    denoiser once per step instead of twice). ``label`` names it; the weights a real few-step model
    needs (an LCM-LoRA, Turbo's or Lightning's UNet) are other speed-ups of the same variant. Its image is
    another image, checked against its own stored baseline only (:data:`FEWER_STEPS`).
    """

    label: str = "few-step"
    steps: int | None = None  # num_inference_steps; None: the scenario's
    guidance_scale: float | None = None  # None: the scenario's (the pipeline's default)
    scheduler: type | None = None  # a diffusers scheduler class; None: the scenario's
    scheduler_config: tuple = ()  # (name, value) pairs on top of the family's scheduler config
    timesteps: tuple[int, ...] | None = None  # a given schedule (DMD2: 999, 749, 499, 249)
    image_effect = FEWER_STEPS

    def __post_init__(self):
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise ValueError(f"FewStep {self.label}: steps={self.steps!r}: give a whole number of at least 1")
        if self.scheduler is not None and not (isinstance(self.scheduler, type) and hasattr(self.scheduler,
                                                                                             "from_config")):
            raise ValueError(f"FewStep {self.label}: scheduler={self.scheduler!r}: give a diffusers scheduler class, "
                             "e.g. LCMScheduler")
        object.__setattr__(self, "scheduler_config", tuple(dict(self.scheduler_config).items()))

    @property
    def name(self) -> str:
        return self.label

    @property
    def description(self) -> str:
        parts = [f"{self.steps} steps" if self.steps else None,
                 f"guidance {self.guidance_scale:g}" if self.guidance_scale is not None else None,
                 self.scheduler.__name__ if self.scheduler else None,
                 ", ".join(f"{name}={value}" for name, value in self.scheduler_config) or None,
                 f"timesteps {list(self.timesteps)}" if self.timesteps else None]
        return f"{self.label}: " + ", ".join(part for part in parts if part)

    def call(self, call):
        if self.steps is not None:
            call.arguments["num_inference_steps"] = self.steps
        if self.guidance_scale is not None:
            call.arguments["guidance_scale"] = self.guidance_scale
        if self.timesteps is not None:
            call.arguments["timesteps"] = list(self.timesteps)
        if self.scheduler is not None:
            call.scheduler = self.scheduler
        call.scheduler_config.update(dict(self.scheduler_config))
