"""Unit tests for diffperf.models.variants and diffperf.models.registry (declarations and skip reasons) and
diffperf.models.store (weight sharing)."""

from __future__ import annotations

import dataclasses
import gc
import importlib.util
import re
import weakref

import pytest
import torch
from diffusers import DDIMScheduler, PNDMScheduler, StableDiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0, XFormersAttnProcessor

from diffperf.models import sd1, zoo
from diffperf.models import speedups as speedups_module
from diffperf.models.bksdm import derive_student
from diffperf.models.builtin import builtin_registry
from diffperf.models.family import Family
from diffperf.models.plants import Plants
from diffperf.models.registry import Registry
from diffperf.models.caches import Cache
from diffperf.models.speedups import (
    ATTENTION,
    DTYPES,
    Attention,
    BuildPlan,
    DeepCache,
    FewStep,
    Int8Dynamic,
    LoRA,
    SpeedUp,
    ToMe,
    attention_processor,
    dtype_supported,
)
from diffperf.models.store import PipelineStore, clone_module
from diffperf.models.variants import Variant

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only its type is looked at: no GPU is needed
REGISTRY = builtin_registry()
ALL_VARIANTS = tuple(REGISTRY.variants.values())
ALL_NAMES = tuple(REGISTRY.variants)


def variant(name: str) -> Variant:
    return REGISTRY.variant(name)


def skip(name: str, device: torch.device, enabled: frozenset[str] = frozenset()) -> str | None:
    return REGISTRY.skip_reason(variant(name), None, device, enabled)


@pytest.fixture
def all_dtypes_supported(monkeypatch):
    """Make the dtype check pass, so a test sees the reason it is about (CPU fp16 kernels vary)."""
    monkeypatch.setattr(speedups_module, "dtype_supported", lambda dtype, device: True)


# --------------------------------------------------------------------------- declarations


def test_variant_names_are_unique_and_cover_the_documents():
    names = [declared.name for declared in sd1.VARIANTS]
    assert len(set(names)) == len(names)
    assert [name for name, declared in REGISTRY.variants.items() if declared.family == "sd1"] == names
    documented = {"baseline", "tf32", "fp16", "tf32-fp16", "sdpa", "xformers", "distilled", "distilled-taesd"}
    assert documented <= set(names)
    assert [declared.name for declared in sd1.VARIANTS if declared.reference is None] == ["baseline"]
    assert sd1.FAMILY.baseline == "baseline"


def test_each_family_has_one_unreferenced_variant_its_baseline():
    for family in REGISTRY.families.values():
        roots = [declared.name for declared in ALL_VARIANTS
                 if declared.family == family.name and declared.reference is None]
        assert roots == [family.baseline], family.name


def test_a_name_cannot_be_declared_twice():
    registry = builtin_registry()
    for name in ALL_NAMES:  # across families too: a case id names the variant alone
        with pytest.raises(ValueError, match=f"^variant '{name}' is declared twice"):
            registry.add(Variant(name, "sd1", description="a second declaration"))
    assert registry.variants == REGISTRY.variants


@pytest.mark.parametrize("declared", ALL_VARIANTS, ids=ALL_NAMES)
def test_reference_exists_and_chain_ends_at_the_family_baseline(declared):
    assert REGISTRY.variants[declared.name] is declared
    # Walk the chain by hand with a bound, so a cycle fails instead of hanging.
    chain, current = [declared.name], declared
    while current.reference is not None:
        assert current.reference in ALL_NAMES, f"{current.name} refers to undeclared {current.reference}"
        assert current.reference not in chain, f"reference cycle {chain + [current.reference]}"
        chain.append(current.reference)
        current = variant(current.reference)
        assert current.family == declared.family, f"{declared.name} is measured against another family"
    assert chain[-1] == REGISTRY.family_of(declared).baseline
    assert REGISTRY.reference_chain(declared.name) == chain


def test_documented_reference_chains():
    assert REGISTRY.reference_chain("baseline") == ["baseline"]
    assert REGISTRY.reference_chain("sdpa") == ["sdpa", "attn-classic", "baseline"]
    assert REGISTRY.reference_chain("distilled-taesd") == ["distilled-taesd", "distilled", "baseline"]
    assert REGISTRY.reference_chain("distilled-taesd-fp16") == [
        "distilled-taesd-fp16", "distilled-fp16", "fp16", "baseline"]


def applied(declared: Variant, kind: type) -> bool:
    return any(isinstance(speedup, kind) for speedup in declared.speedups)


@pytest.mark.parametrize("declared", ALL_VARIANTS, ids=ALL_NAMES)
def test_variant_fields_are_valid(declared):
    family = REGISTRY.family_of(declared)
    plan = declared.plan(family)
    assert plan.dtype in DTYPES
    assert plan.torch_dtype is DTYPES[plan.dtype]
    assert tuple(plan.components) == family.slots  # every slot filled, by a component made for it
    for slot, component in plan.components.items():
        assert family.component(component).fills == slot, (slot, component)
    for speedup in declared.speedups:
        if isinstance(speedup, Attention):
            assert speedup.backend in ATTENTION
    # The similarity check must match what the variant changes.
    approximate = [name for name, kind in (("tome", ToMe), ("deepcache", DeepCache), ("int8", Int8Dynamic),
                                           ("cache", Cache)) if applied(declared, kind)]
    if plan.components != BuildPlan.default(family).components:  # another model
        assert declared.fp32_check() is None
    elif applied(declared, (FewStep, LoRA)):  # another sampler, or a LoRA's other model: its own image only
        assert declared.fp32_check() is None
    elif approximate == ["int8"]:  # int8's bound is its speed-up's own: measured per family
        assert declared.fp32_check() == next(s for s in declared.speedups if isinstance(s, Int8Dynamic)).check
    elif approximate:  # an approximation by design: its own bound against fp32
        assert [declared.fp32_check()] == approximate
    elif plan.dtype == "float32":
        assert declared.fp32_check() == "fp32"
    else:
        assert declared.fp32_check() == "half"
    # Against its own stored baseline: reduced precision and int8 round differently on other hosts.
    if applied(declared, Int8Dynamic):
        assert declared.own_check() == next(s for s in declared.speedups if isinstance(s, Int8Dynamic)).check
    elif plan.dtype != "float32":
        assert declared.own_check() == "half"
    else:
        assert declared.own_check() == "same"


def test_specific_declarations():
    assert variant("distilled-taesd").plan(sd1.FAMILY).components == {
        "unet": "bk-sdm-small", "text_encoder": "text_encoder", "tokenizer": "tokenizer", "vae": "taesd"}
    assert variant("baseline").plan(sd1.FAMILY).components == {
        "unet": "unet", "text_encoder": "text_encoder", "tokenizer": "tokenizer", "vae": "vae"}
    assert variant("fp16").plan(sd1.FAMILY).torch_dtype is torch.float16
    tf32_fp16 = variant("tf32-fp16")
    assert tf32_fp16.plan(sd1.FAMILY).tf32 and tf32_fp16.plan(sd1.FAMILY).dtype == "float16"
    assert tf32_fp16.unavailable(CPU) == "tf32-fp16 needs a CUDA GPU (running on cpu)"
    assert tf32_fp16.unavailable(CUDA) is None
    assert variant("xformers").speedups == (Attention("xformers"),)
    assert variant("compile").opt_in.option == "--perf-compile"
    assert variant("distilled-fp16").reference == "fp16"


def test_get_variant_unknown_lists_names():
    with pytest.raises(ValueError) as info:
        REGISTRY.variant("turbo")
    message = str(info.value)
    assert message.startswith("unknown variant 'turbo': choose one of ")
    assert "\n" not in message
    for name in ALL_NAMES:
        assert name in message


ASTRONAUT = sd1.FAMILY.scenario("astronaut")


def family_with(**changes) -> Family:
    """SD v1's family under another name, changed (a declaration of one's own)."""
    return dataclasses.replace(sd1.FAMILY, name="mine", **changes)


def test_case_ids_that_collide_are_refused():
    """q on astronaut-b and q-astronaut on b would both be case q-astronaut-b: one image baseline would overwrite
    the other."""
    registry = Registry()
    scenarios = (dataclasses.replace(ASTRONAUT, name="astronaut-b"), dataclasses.replace(ASTRONAUT, name="b"))
    registry.add(family_with(scenarios=scenarios), Variant("q", "mine"))
    with pytest.raises(ValueError, match=r"^variant q-astronaut on scenario b and variant q on scenario astronaut-b "
                                         r"share the case id q-astronaut-b: rename one of them"):
        registry.add(Variant("q-astronaut", "mine", (Attention("classic"),), "q"))
    assert list(registry.variants) == ["q"]


def test_a_family_cannot_repeat_a_scenario_name():
    with pytest.raises(ValueError, match=r"^family mine: scenario names repeat \(astronaut, astronaut\)"):
        family_with(scenarios=(ASTRONAUT, ASTRONAUT))


NAMES_REFUSED = ["", "*", "a=b", "x\ny", "..", ".", ".x", "my scen/x", "a b", "a/b", "a[1]", "-x", "caf\u00e9"]
NAMES_TAKEN = ["a", "tome-0.5", "my_variant.v2", "X-1", "_x", "1"]


@pytest.mark.parametrize("name", NAMES_REFUSED)
def test_a_variant_name_outside_the_rule_is_refused(name):
    with pytest.raises(ValueError, match=r"^variant name .*: use letters, digits, '-', '\.' and '_'") as error:
        Variant(name, "sd1")
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", NAMES_REFUSED)
def test_a_scenario_name_outside_the_rule_is_refused(name):
    with pytest.raises(ValueError, match=r"^scenario name .*: use letters, digits, '-', '\.' and '_'") as error:
        dataclasses.replace(ASTRONAUT, name=name)
    assert "\n" not in str(error.value)


@pytest.mark.parametrize("name", NAMES_TAKEN)
def test_names_inside_the_rule_are_taken(name):
    assert Variant(name, "sd1").name == dataclasses.replace(ASTRONAUT, name=name).name == name


def test_a_family_missing_a_component_its_pipeline_needs_is_refused():
    without_vae = tuple(component for component in sd1.FAMILY.components if component.name != "vae")
    with pytest.raises(ValueError, match=r"^family mine: StableDiffusionPipeline needs vae, which no component "
                                         r"fills: declare a Component named after each$"):
        family_with(components=without_vae)


def test_a_family_missing_an_optional_pipeline_argument_is_told_it_may_be_none():
    with pytest.raises(ValueError, match=r"^family mine: StableDiffusionPipeline needs safety_checker, "
                                         r"feature_extractor, which no component fills: declare a Component named "
                                         r"after each, or None for the optional ones: pipeline_kwargs="
                                         r"\{'safety_checker': None, 'feature_extractor': None\}$"):
        family_with(pipeline_kwargs={"requires_safety_checker": False})


def test_a_family_component_its_pipeline_does_not_take_is_refused():
    student = dataclasses.replace(sd1.FAMILY.component("bk-sdm-small"), slot=None)
    components = tuple(student if component.name == "bk-sdm-small" else component
                       for component in sd1.FAMILY.components)
    with pytest.raises(ValueError, match=r"^family mine: StableDiffusionPipeline takes no argument bk-sdm-small: its "
                                         r"arguments are vae, text_encoder, .*; name a component after one of them, "
                                         r"or give the slot it fills"):
        family_with(components=components)
    with pytest.raises(ValueError, match=r"^family mine: StableDiffusionPipeline takes no argument watermark: "):
        family_with(pipeline_kwargs={**sd1.FAMILY.pipeline_kwargs, "watermark": False})


def test_speedups_given_as_a_string_are_refused():
    with pytest.raises(ValueError, match=r"^variant mine: speedups 'sdpa' is a str, not a list of speed-ups: "
                                         r"give SpeedUp objects, e\.g\. \[Attention\('sdpa'\)\]"):
        Variant("mine", "sd1", "sdpa", "baseline")


def test_one_speedup_alone_is_a_list_of_one():
    assert Variant("mine", "sd1", Attention("classic"), "baseline").speedups == (Attention("classic"),)


@pytest.mark.parametrize(("given", "message"), [
    ("sdpa", r"'sdpa' is a str, not a SpeedUp"),
    (None, r"None is a NoneType, not a SpeedUp"),
    (Attention, r"Attention is a SpeedUp class: give an object of it, Attention\(\.\.\.\)"),
])
def test_a_speedup_that_is_not_one_is_refused(given, message):
    with pytest.raises(ValueError, match=rf"^variant mine: {message}"):
        Variant("mine", "sd1", [Attention("classic"), given], "baseline")
    if given is not None:  # alone, not in a list
        with pytest.raises(ValueError, match=r"^variant mine: "):
            Variant("mine", "sd1", given, "baseline")


class Nameless(SpeedUp):
    description = "a speed-up of one's own that forgot its name"


def test_a_speedup_without_a_name_is_refused():
    with pytest.raises(ValueError, match=r"^variant mine: speed-up Nameless has no name: give it one "):
        Variant("mine", "sd1", [Nameless()], "baseline")


class Answering(SpeedUp):
    """A speed-up whose ``unavailable`` answers what it is given, on every device or on one device type."""

    name = "answering"

    def __init__(self, answer, device_type: str | None = None):
        self.answer, self.device_type = answer, device_type

    def unavailable(self, device):
        return self.answer if self.device_type in (None, device.type) else None


@pytest.mark.parametrize("answer", [True, False, "", "two\nlines", 1])
def test_unavailable_answering_other_than_none_or_a_line_is_refused(answer):
    with pytest.raises(ValueError, match=rf"^variant mine: speed-up answering: unavailable\(cpu\) returned "
                                         rf"{re.escape(repr(answer))}: return None where it runs"):
        Variant("mine", "sd1", [Answering(answer)], "baseline")


def test_unavailable_answering_true_on_another_device_is_refused_when_asked():
    declared = Variant("mine", "sd1", [Answering(True, "cuda")], "baseline")  # asked for the CPU when declared
    assert declared.unavailable(CPU) is None
    with pytest.raises(ValueError, match=r"^variant mine: speed-up answering: unavailable\(cuda\) returned True: "):
        declared.unavailable(CUDA)
    assert Variant("mine", "sd1", [Answering("needs a lamp")], "baseline").unavailable(CPU) == "mine needs a lamp"


# --------------------------------------------------------------------------- skip reasons


def test_baseline_runs_on_cpu():
    assert skip("baseline", CPU) is None
    for scenario in sd1.FAMILY.scenarios:
        assert REGISTRY.skip_reason(variant("baseline"), scenario.name, CPU) is None, scenario.name


def test_cuda_only_variant_on_cpu():
    assert skip("tf32", CPU) == "tf32 needs a CUDA GPU (running on cpu)"


def test_cuda_only_variant_on_cuda():
    assert skip("tf32", CUDA) is None


def test_missing_package(monkeypatch):
    real_find_spec = importlib.util.find_spec

    def find_spec(name, package=None):
        return None if name == "xformers" else real_find_spec(name, package)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    assert skip("xformers", CUDA) == "xformers needs the optional package xformers: pip install xformers"


def test_present_package(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    assert skip("xformers", CUDA) is None
    # ... but the CUDA requirement is checked first.
    assert skip("xformers", CPU) == "xformers needs a CUDA GPU (running on cpu)"


def test_unsupported_dtype(monkeypatch):
    monkeypatch.setattr(speedups_module, "dtype_supported", lambda dtype, device: dtype != torch.float16)
    enabled = frozenset({"--perf-speedups"})  # fp16 is opt-in on the CPU
    assert skip("fp16", CPU, enabled) == "fp16 needs float16 kernels, which this cpu lacks"
    assert skip("bf16", CPU) is None


def test_opt_in_not_enabled():
    assert skip("compile", CPU) == "compile is opt-in (slow to build): pass --perf-compile"
    assert skip("compile", CPU, frozenset({"--perf-compile"})) is None


def test_reference_cannot_run(all_dtypes_supported):
    registry = builtin_registry()
    custom = Variant("custom", "sd1", reference="tf32", description="measured against a CUDA-only variant")
    registry.add(custom)
    registry.check()
    assert registry.skip_reason(custom, None, CPU) == "its reference cannot run: tf32 needs a CUDA GPU (running on cpu)"
    assert registry.skip_reason(custom, None, CUDA) is None


def test_reference_of_reference_cannot_run(monkeypatch):
    monkeypatch.setattr(speedups_module, "dtype_supported", lambda dtype, device: dtype != torch.float16)
    registry = builtin_registry()
    fp16_free = dataclasses.replace(
        variant("distilled-taesd-fp16"), name="distilled-taesd-fp32", opt_in=None,
        speedups=tuple(speedup for speedup in variant("distilled-taesd-fp16").speedups
                       if not isinstance(speedup, speedups_module.Precision)))
    registry.add(fp16_free)
    assert fp16_free.plan(sd1.FAMILY).dtype == "float32" and fp16_free.unavailable(CPU) is None
    assert registry.skip_reason(fp16_free, None, CPU) == (
        "its reference cannot run: distilled-fp16 needs float16 kernels, which this cpu lacks"
    )


def test_every_reason_is_one_line(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: None)
    monkeypatch.setattr(speedups_module, "dtype_supported", lambda dtype, device: dtype == torch.float32)
    reasons = [REGISTRY.skip_reason(declared, scenario, device)
               for declared in ALL_VARIANTS
               for scenario in (None, *(s.name for s in REGISTRY.family_of(declared).scenarios))
               for device in (CPU, CUDA)]
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
    return PipelineStore(builtin_registry(), zoo.SyntheticSource("tiny", CPU), CPU)


def data_pointers(module: torch.nn.Module) -> list[int]:
    return [parameter.data_ptr() for parameter in module.parameters()]


def processor_types(unet) -> set:
    return {type(processor) for processor in unet.attn_processors.values()}


def test_attention_variants_share_weights_with_different_processors(store):
    baseline = store.models(variant("baseline"))
    classic = store.models(variant("attn-classic"))
    sdpa = store.models(variant("sdpa"))
    assert classic["unet"] is not baseline["unet"]
    assert data_pointers(classic["unet"]) == data_pointers(baseline["unet"])
    assert data_pointers(classic["vae"]) == data_pointers(baseline["vae"])
    assert data_pointers(sdpa["unet"]) == data_pointers(baseline["unet"])
    assert data_pointers(classic["text_encoder"]) == data_pointers(baseline["text_encoder"])
    assert classic["tokenizer"] is baseline["tokenizer"]
    assert processor_types(baseline["unet"]) == {AttnProcessor2_0}
    assert processor_types(sdpa["unet"]) == {AttnProcessor2_0}
    assert processor_types(classic["unet"]) == {AttnProcessor}  # and baseline's were left alone
    assert processor_types(classic["vae"]) == {AttnProcessor}
    assert processor_types(baseline["vae"]) == {AttnProcessor2_0}
    assert store.weight_bytes(variant("attn-classic")) == store.weight_bytes(variant("baseline"))


def test_models_are_cached(store):
    assert store.models(variant("baseline")) is store.models(variant("baseline"))


def test_channels_last_and_dtype_variants_get_their_own_weights(store):
    baseline = store.models(variant("baseline"))
    channels_last = store.models(variant("channels-last"))
    assert channels_last["unet"].conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert not baseline["unet"].conv_in.weight.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(channels_last["unet"].conv_in.weight, baseline["unet"].conv_in.weight)
    assert channels_last["unet"].conv_in.weight.data_ptr() != baseline["unet"].conv_in.weight.data_ptr()
    assert data_pointers(channels_last["text_encoder"]) == data_pointers(baseline["text_encoder"])

    half = store.models(variant("fp16"))
    assert half["unet"].dtype == torch.float16 and half["text_encoder"].dtype == torch.float16
    assert baseline["unet"].dtype == torch.float32
    assert torch.equal(half["unet"].conv_in.weight, baseline["unet"].conv_in.weight.half())
    half_bytes, full_bytes = store.weight_bytes(variant("fp16")), store.weight_bytes(variant("baseline"))
    assert 0.45 * full_bytes < half_bytes < 0.55 * full_bytes


def test_distilled_variant_uses_the_derived_student(store):
    distilled = store.models(variant("distilled-taesd"))
    teacher = store.component("sd1", "unet", torch.float32)
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
        store.models(variant(name))
    half_unet = weakref.ref(store.models(variant("fp16"))["unet"])
    half_weights = weakref.ref(store.component("sd1", "unet", torch.float16))
    student = weakref.ref(store.models(variant("distilled"))["unet"])

    store.keep_only(["sdpa"])  # needs sdpa -> attn-classic -> baseline
    assert set(store._models) == {"attn-classic", "baseline"}
    assert set(store._components) == {
        ("sd1", "unet", torch.float32), ("sd1", "text_encoder", torch.float32), ("sd1", "vae", torch.float32)
    }
    gc.collect()
    assert half_unet() is None and half_weights() is None and student() is None  # memory really freed

    baseline_unet = weakref.ref(store.models(variant("baseline"))["unet"])
    store.keep_only([])
    assert store._models == {} and store._components == {}
    gc.collect()
    assert baseline_unet() is None


def test_released_models_are_rebuilt_identically(store):
    before = store.models(variant("baseline"))["unet"].conv_in.weight.clone()
    store.keep_only([])
    after = store.models(variant("baseline"))["unet"].conv_in.weight
    assert torch.equal(after, before)


def test_pipeline_uses_the_scenario_scheduler(store):
    baseline = variant("baseline")
    astronaut = store.pipeline(baseline, sd1.FAMILY.scenario("astronaut"))
    vase = store.pipeline(baseline, sd1.FAMILY.scenario("vase"))
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


def test_during_calls_turns_tf32_on_and_restores_it(store):
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = False
        with store.during_calls(variant("tf32")):
            assert torch.backends.cuda.matmul.allow_tf32 is True
        assert torch.backends.cuda.matmul.allow_tf32 is False
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def test_fp32_variants_run_without_tf32_whatever_the_process_set(store):
    previous = torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cuda.matmul.allow_tf32 = True
        with store.during_calls(variant("baseline")):
            assert torch.backends.cuda.matmul.allow_tf32 is False
        assert torch.backends.cuda.matmul.allow_tf32 is True
    finally:
        torch.backends.cuda.matmul.allow_tf32 = previous


def test_a_slowdown_planted_in_every_variant_reaches_every_unet():
    store = PipelineStore(builtin_registry(), zoo.SyntheticSource("tiny", CPU), CPU,
                          plants=Plants.of(slowdown={"*": 0.15}))
    for name in ("baseline", "distilled"):
        unet = store.models(store.registry.variant(name))["unet"]
        assert unet._forward_hooks and unet._forward_pre_hooks
    alone = PipelineStore(builtin_registry(), zoo.SyntheticSource("tiny", CPU), CPU,
                          plants=Plants.of(slowdown={"distilled": 0.1}))
    assert not alone.models(alone.registry.variant("baseline"))["unet"]._forward_hooks


def test_planted_memory_raises_a_calls_peak_by_the_bytes_it_holds():
    from diffperf.measure.instruments import CpuInstrument
    from diffperf.models.store import plant_memory

    instrument = CpuInstrument(CPU)
    x = torch.ones(2, 64)
    plain = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 256))
    planted = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.Linear(64, 256))
    plant_memory(planted[0], planted[1], 100_000)  # held from the first module's call to the end of the last's
    growth = instrument.peak_memory_growth(lambda: planted(x)) - instrument.peak_memory_growth(lambda: plain(x))
    assert 100_000 <= growth < 100_000 + 4096
    assert instrument.peak_memory_growth(lambda: planted(x)) == instrument.peak_memory_growth(lambda: planted(x))
