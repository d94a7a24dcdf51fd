"""Unit tests for diffperf.models.variants (declarations and skip reasons) and diffperf.models.store (weight sharing)."""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import weakref

import pytest
import torch
from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, XFormersAttnProcessor

from diffperf.models import variants as variants_module
from diffperf.models import zoo
from diffperf.models.bksdm import derive_student
from diffperf.models.profiles import TINY
from diffperf.models.store import PipelineStore, attention_processor, clone_module, runtime_settings
from diffperf.models.variants import (
    ATTENTION,
    DTYPES,
    VARIANT_NAMES,
    VARIANTS,
    Variant,
    dtype_supported,
    get_variant,
    reference_chain,
    skip_reason,
)
from diffperf.models.workloads import get_scenario

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only its type is looked at: no GPU is needed


@pytest.fixture
def all_dtypes_supported(monkeypatch):
    """Make the dtype check pass, so a test sees the reason it is about (CPU fp16 kernels vary)."""
    monkeypatch.setattr(variants_module, "dtype_supported", lambda dtype, device: True)


# --------------------------------------------------------------------------- declarations


def test_variant_names_are_unique_and_cover_the_documents():
    assert len(set(VARIANT_NAMES)) == len(VARIANT_NAMES) == len(VARIANTS)
    documented = {"baseline", "tf32", "fp16", "tf32-fp16", "sdpa", "xformers", "distilled", "distilled-taesd"}
    assert documented <= set(VARIANT_NAMES)
    assert [variant.name for variant in VARIANTS if variant.reference is None] == ["baseline"]


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_NAMES)
def test_reference_exists_and_chain_ends_at_baseline(variant):
    # Walk the chain by hand with a bound, so a cycle fails instead of hanging.
    chain, current = [variant.name], variant
    while current.reference is not None:
        assert current.reference in VARIANT_NAMES, f"{current.name} refers to undeclared {current.reference}"
        assert current.reference not in chain, f"reference cycle {chain + [current.reference]}"
        chain.append(current.reference)
        current = get_variant(current.reference)
    assert chain[-1] == "baseline"
    assert reference_chain(variant.name) == chain


def test_documented_reference_chains():
    assert reference_chain("baseline") == ["baseline"]
    assert reference_chain("sdpa") == ["sdpa", "attn-classic", "baseline"]
    assert reference_chain("distilled-taesd") == ["distilled-taesd", "distilled", "baseline"]
    assert reference_chain("distilled-taesd-fp16") == ["distilled-taesd-fp16", "distilled-fp16", "fp16", "baseline"]


@pytest.mark.parametrize("variant", VARIANTS, ids=VARIANT_NAMES)
def test_variant_fields_are_valid(variant):
    assert variant.dtype in DTYPES
    assert variant.attention in ATTENTION
    assert variant.unet in (zoo.TEACHER_UNET, zoo.DISTILLED_UNET)
    assert variant.vae in (zoo.KL_VAE, zoo.TINY_VAE)
    assert variant.components == (variant.unet, zoo.TEXT_ENCODER, variant.vae)
    assert variant.torch_dtype is DTYPES[variant.dtype]
    # The similarity check must match what the variant changes.
    approximate = [name for name, applied in (("tome", variant.tome_ratio is not None),
                                              ("deepcache", variant.deepcache_interval is not None),
                                              ("int8", variant.int8_dynamic)) if applied]
    if variant.unet != zoo.TEACHER_UNET or variant.vae != zoo.KL_VAE:
        assert variant.approximates_fp32 is None
    elif approximate:  # an approximation by design: its own bound against fp32
        assert [variant.approximates_fp32] == approximate
    elif variant.dtype == "float32":
        assert variant.approximates_fp32 == "fp32"
    else:
        assert variant.approximates_fp32 == "half"


def test_specific_declarations():
    assert get_variant("distilled-taesd").components == (zoo.DISTILLED_UNET, zoo.TEXT_ENCODER, zoo.TINY_VAE)
    assert get_variant("fp16").torch_dtype is torch.float16
    assert get_variant("tf32-fp16").tf32_matmul and get_variant("tf32-fp16").needs_cuda
    assert get_variant("xformers").needs_package == "xformers"
    assert get_variant("compile").opt_in == "--perf-compile"
    assert get_variant("distilled-fp16").reference == "fp16"


def test_get_variant_unknown_lists_names():
    with pytest.raises(ValueError) as info:
        get_variant("turbo")
    message = str(info.value)
    assert message.startswith("unknown variant 'turbo': choose one of ")
    assert "\n" not in message
    for name in VARIANT_NAMES:
        assert name in message


# --------------------------------------------------------------------------- skip reasons


def test_baseline_runs_on_cpu():
    assert skip_reason(get_variant("baseline"), CPU) is None


def test_cuda_only_variant_on_cpu():
    assert skip_reason(get_variant("tf32"), CPU) == "tf32 needs a CUDA GPU (running on cpu)"


def test_cuda_only_variant_on_cuda():
    assert skip_reason(get_variant("tf32"), CUDA) is None


def test_missing_package(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, package=None):
        return None if name == "xformers" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert skip_reason(get_variant("xformers"), CUDA) == (
        "xformers needs the optional package xformers: pip install xformers"
    )


def test_present_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    assert skip_reason(get_variant("xformers"), CUDA) is None
    # ... but the CUDA requirement is checked first.
    assert skip_reason(get_variant("xformers"), CPU) == "xformers needs a CUDA GPU (running on cpu)"


def test_unsupported_dtype(monkeypatch):
    monkeypatch.setattr(variants_module, "dtype_supported", lambda dtype, device: dtype != torch.float16)
    enabled = frozenset({"--perf-speedups"})  # fp16 is opt-in on the CPU
    assert skip_reason(get_variant("fp16"), CPU, enabled) == "fp16 needs float16 kernels, which this cpu lacks"
    assert skip_reason(get_variant("bf16"), CPU) is None


def test_opt_in_not_enabled():
    compile_variant = get_variant("compile")
    assert skip_reason(compile_variant, CPU) == "compile is opt-in: pass --perf-compile"
    assert skip_reason(compile_variant, CPU, frozenset({"--perf-compile"})) is None


def test_reference_cannot_run(all_dtypes_supported):
    variant = Variant("custom", "measured against a CUDA-only variant", reference="tf32")
    assert skip_reason(variant, CPU) == "its reference cannot run: tf32 needs a CUDA GPU (running on cpu)"
    assert skip_reason(variant, CUDA) is None


def test_reference_of_reference_cannot_run(monkeypatch):
    monkeypatch.setattr(variants_module, "dtype_supported", lambda dtype, device: dtype != torch.float16)
    fp16_free = dataclasses.replace(get_variant("distilled-taesd-fp16"), dtype="float32")
    assert skip_reason(fp16_free, CPU) == (
        "its reference cannot run: distilled-fp16 needs float16 kernels, which this cpu lacks"
    )


def test_every_reason_is_one_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    monkeypatch.setattr(variants_module, "dtype_supported", lambda dtype, device: dtype == torch.float32)
    reasons = [skip_reason(variant, device) for variant in VARIANTS for device in (CPU, CUDA)]
    assert any(reasons)
    for reason in filter(None, reasons):
        assert "\n" not in reason and len(reason) < 200


def test_dtype_supported_float32_everywhere():
    assert dtype_supported(torch.float32, CPU)
    assert dtype_supported(torch.float32, CUDA)  # answered without touching a GPU


# --------------------------------------------------------------------------- clone_module


def small_module() -> torch.nn.Module:
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3), torch.nn.BatchNorm2d(8), torch.nn.Linear(6, 4))
    module[1].running_mean.normal_()
    return module.eval().requires_grad_(False)


def tensors(module: torch.nn.Module) -> dict:
    return dict(module.state_dict(keep_vars=True))


def test_clone_module_shares_unchanged_tensors():
    original = small_module()
    clone = clone_module(original)
    assert clone is not original and clone[0] is not original[0]
    before, after = tensors(original), tensors(clone)
    assert before.keys() == after.keys()
    for key in before:
        assert after[key].data_ptr() == before[key].data_ptr(), key
    x = torch.randn(1, 3, 8, 8)
    assert torch.equal(clone(x), original(x))


def test_clone_module_converts_dtype_without_touching_the_original():
    original = small_module()
    saved = {key: tensor.clone() for key, tensor in original.state_dict().items()}
    clone = clone_module(original, dtype=torch.float16)
    for key, tensor in clone.state_dict().items():
        if saved[key].is_floating_point():
            assert tensor.dtype == torch.float16, key
            assert torch.equal(tensor, saved[key].half()), key
        else:  # BatchNorm's num_batches_tracked stays an integer
            assert tensor.dtype == saved[key].dtype, key
    assert isinstance(clone[0].weight, torch.nn.Parameter) and not clone[0].weight.requires_grad
    for key, tensor in original.state_dict().items():
        assert tensor.dtype == saved[key].dtype and torch.equal(tensor, saved[key]), key


def test_clone_module_channels_last_without_touching_the_original():
    original = small_module()
    clone = clone_module(original, channels_last=True)
    assert clone[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not original[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert original[0].weight.is_contiguous()
    assert torch.equal(clone[0].weight, original[0].weight)
    assert clone[0].weight.data_ptr() != original[0].weight.data_ptr()
    # Tensors that are not 4-D are shared as they are.
    assert clone[0].bias.data_ptr() == original[0].bias.data_ptr()
    assert clone[2].weight.data_ptr() == original[2].weight.data_ptr()


# --------------------------------------------------------------------------- PipelineStore (tiny)


@pytest.fixture
def store():
    return PipelineStore(zoo.SyntheticSource(TINY, CPU), CPU)


def data_pointers(module: torch.nn.Module) -> list[int]:
    return [parameter.data_ptr() for parameter in module.parameters()]


def processor_types(unet) -> set:
    return {type(processor) for processor in unet.attn_processors.values()}


def test_attention_variants_share_weights_with_different_processors(store):
    baseline = store.models(get_variant("baseline"))
    classic = store.models(get_variant("attn-classic"))
    sdpa = store.models(get_variant("sdpa"))
    assert classic["unet"] is not baseline["unet"]
    assert data_pointers(classic["unet"]) == data_pointers(baseline["unet"])
    assert data_pointers(classic["vae"]) == data_pointers(baseline["vae"])
    assert data_pointers(sdpa["unet"]) == data_pointers(baseline["unet"])
    assert classic["text_encoder"] is baseline["text_encoder"]
    assert processor_types(baseline["unet"]) == {AttnProcessor2_0}
    assert processor_types(sdpa["unet"]) == {AttnProcessor2_0}
    assert processor_types(classic["unet"]) == {AttnProcessor}  # and baseline's were left alone
    assert processor_types(classic["vae"]) == {AttnProcessor}
    assert processor_types(baseline["vae"]) == {AttnProcessor2_0}
    assert store.weight_bytes(get_variant("attn-classic")) == store.weight_bytes(get_variant("baseline"))


def test_models_are_cached(store):
    assert store.models(get_variant("baseline")) is store.models(get_variant("baseline"))


def test_channels_last_and_dtype_variants_get_their_own_weights(store):
    baseline = store.models(get_variant("baseline"))
    channels_last = store.models(get_variant("channels-last"))
    assert channels_last["unet"].conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not baseline["unet"].conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(channels_last["unet"].conv_in.weight, baseline["unet"].conv_in.weight)
    assert channels_last["text_encoder"] is baseline["text_encoder"]

    half = store.models(get_variant("fp16"))
    assert half["unet"].dtype == torch.float16 and half["text_encoder"].dtype == torch.float16
    assert baseline["unet"].dtype == torch.float32
    assert torch.equal(half["unet"].conv_in.weight, baseline["unet"].conv_in.weight.half())
    half_bytes, full_bytes = store.weight_bytes(get_variant("fp16")), store.weight_bytes(get_variant("baseline"))
    assert 0.45 * full_bytes < half_bytes < 0.55 * full_bytes


def test_distilled_variant_uses_the_derived_student(store):
    distilled = store.models(get_variant("distilled-taesd"))
    teacher = store.component(zoo.TEACHER_UNET, torch.float32)
    expected = derive_student(teacher, "small")
    assert distilled["unet"].config.mid_block_type is None
    assert zoo.count_parameters(distilled["unet"]) == zoo.count_parameters(expected)
    got, wanted = distilled["unet"].state_dict(), expected.state_dict()
    assert got.keys() == wanted.keys()
    for key in wanted:
        assert torch.equal(got[key], wanted[key]), key
    assert type(distilled["vae"]).__name__ == "AutoencoderTiny"


def test_keep_only_releases_models(store):
    for name in ("baseline", "attn-classic", "fp16", "distilled"):
        store.models(get_variant(name))
    half_unet = weakref.ref(store.models(get_variant("fp16"))["unet"])
    half_weights = weakref.ref(store.component(zoo.TEACHER_UNET, torch.float16))
    student = weakref.ref(store.models(get_variant("distilled"))["unet"])

    store.keep_only(["sdpa"])  # needs sdpa -> attn-classic -> baseline
    assert set(store._models) == {"attn-classic", "baseline"}
    assert set(store._components) == {
        (zoo.TEACHER_UNET, torch.float32), (zoo.TEXT_ENCODER, torch.float32), (zoo.KL_VAE, torch.float32)
    }
    gc.collect()
    assert half_unet() is None and half_weights() is None and student() is None  # memory really freed

    baseline_unet = weakref.ref(store.models(get_variant("baseline"))["unet"])
    store.keep_only([])
    assert store._models == {} and store._components == {}
    gc.collect()
    assert baseline_unet() is None


def test_released_models_are_rebuilt_identically(store):
    before = store.models(get_variant("baseline"))["unet"].conv_in.weight.clone()
    store.keep_only([])
    after = store.models(get_variant("baseline"))["unet"].conv_in.weight
    assert torch.equal(after, before)


def test_pipeline_uses_the_scenario_scheduler(store):
    variant = get_variant("baseline")
    astronaut = store.pipeline(variant, get_scenario("astronaut"))
    vase = store.pipeline(variant, get_scenario("vase"))
    assert isinstance(astronaut, StableDiffusionPipeline)
    assert type(astronaut.scheduler) is DDIMScheduler and astronaut.scheduler.config.clip_sample is False
    assert type(vase.scheduler) is PNDMScheduler
    assert astronaut is not vase and astronaut.unet is vase.unet


def test_attention_processor_names():
    assert isinstance(attention_processor("sdpa"), AttnProcessor2_0)
    assert isinstance(attention_processor("classic"), AttnProcessor)
    assert isinstance(attention_processor("xformers"), XFormersAttnProcessor)
    with pytest.raises(ValueError, match="unknown attention back-end 'flash'"):
        attention_processor("flash")


def test_runtime_settings_restore_tf32():
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        with runtime_settings(get_variant("tf32")):
            assert torch.backends.cuda.matmul.allow_tf32 is True
        assert torch.backends.cuda.matmul.allow_tf32 is False
        torch.backends.cuda.matmul.allow_tf32 = True
        with runtime_settings(get_variant("baseline")):
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous

