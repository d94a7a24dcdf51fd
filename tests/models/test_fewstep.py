"""The few-step variants (lcm, lcm-unfused, sdxl-turbo, sdxl-lightning) and the LoRA speed-up they use: their
declarations, call plans and skip reasons, and how diffperf.models.store applies a LoRA, fused or not, to the
variant's own UNet tree only, with seeded weights. Tests that build a LoRA skip without peft."""

from __future__ import annotations

import importlib.util

import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, EulerDiscreteScheduler, LCMScheduler
from torch.utils.flop_counter import FlopCounterMode

from diffperf.models import sd1, sdxl, zoo
from diffperf.models.builtin import builtin_registry
from diffperf.models.calls import CallPlan
from diffperf.models.optin import TIME_BUDGET
from diffperf.models.speedups import FEWER_STEPS, LORA_TARGETS, OTHER_MODEL, BuildContext, FewStep, LoRA
from diffperf.models.store import PipelineStore, clone_module

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only its type is looked at
REGISTRY = builtin_registry()
FEW_STEP = ("lcm", "lcm-unfused", "sdxl-turbo", "sdxl-lightning")
ASTRONAUT = sd1.FAMILY.scenario("astronaut").scaled(sd1.FAMILY.scale("tiny"))
ASTRONAUT_XL = sdxl.FAMILY.scenario("astronaut-xl").scaled(sdxl.FAMILY.scale("tiny"))
needs_peft = pytest.mark.skipif(importlib.util.find_spec("peft") is None, reason="needs the optional package peft")


def variant(name):
    return REGISTRY.variant(name)


def call_of(name, scenario):
    declared = variant(name)
    return declared.call_plan(REGISTRY.family(declared.family), scenario)


# --------------------------------------------------------------------------- declarations


def test_few_step_variants_and_their_references():
    assert [(variant(name).family, variant(name).reference) for name in FEW_STEP] == [
        ("sd1", "baseline"), ("sd1", "lcm"), ("sdxl", "sdxl"), ("sdxl", "sdxl")]
    assert variant("lcm").speedups == (sd1.LCM, LoRA(64))
    assert variant("lcm-unfused").speedups == (sd1.LCM, LoRA(64, fuse=False))
    assert [speedup.name for speedup in variant("lcm-unfused").speedups] == ["lcm", "lora-r64-unfused"]
    assert variant("sdxl-turbo").speedups == (sdxl.TURBO,) and variant("sdxl-lightning").speedups == (sdxl.LIGHTNING,)
    for name in FEW_STEP:
        declared = variant(name)
        assert declared.fp32_check() is None and declared.own_check() == "same", name  # its own image only
        assert "the images are not the published ones" in declared.describe(), name
        assert "its own stored image" in declared.describe(), name
    assert "the unfused LoRA's own cost" in variant("lcm-unfused").describe()
    assert "512 px natively" in variant("sdxl-turbo").describe()
    assert LoRA().image_effect == OTHER_MODEL and sd1.LCM.image_effect == FEWER_STEPS


def test_the_call_plans():
    lcm = call_of("lcm", ASTRONAUT)
    assert (lcm.steps, lcm.arguments["guidance_scale"], lcm.scheduler, lcm.scheduler_config) == (
        4, 1.0, LCMScheduler, {})
    assert call_of("lcm-unfused", ASTRONAUT) == lcm
    turbo = call_of("sdxl-turbo", ASTRONAUT_XL)
    assert (turbo.steps, turbo.arguments["guidance_scale"], turbo.scheduler, turbo.scheduler_config) == (
        1, 0.0, EulerAncestralDiscreteScheduler, {"timestep_spacing": "trailing"})
    lightning = call_of("sdxl-lightning", ASTRONAUT_XL)
    assert (lightning.steps, lightning.arguments["guidance_scale"], lightning.scheduler,
            lightning.scheduler_config) == (4, 0.0, EulerDiscreteScheduler, {"timestep_spacing": "trailing"})
    # The scenario's resolution and images are kept; what changed is recorded (extra_info call_changes).
    assert turbo.arguments["height"] == ASTRONAUT_XL.resolution and turbo.arguments["num_images_per_prompt"] == 1
    assert turbo.changes(CallPlan.of_scenario(sdxl.FAMILY, ASTRONAUT_XL)) == {
        "arguments": {"num_inference_steps": 1, "guidance_scale": 0.0},
        "scheduler": "EulerAncestralDiscreteScheduler", "scheduler_config": {"timestep_spacing": "trailing"}}
    assert lightning.changes(CallPlan.of_scenario(sdxl.FAMILY, ASTRONAUT_XL)) == {
        "arguments": {"num_inference_steps": 4, "guidance_scale": 0.0},
        "scheduler_config": {"timestep_spacing": "trailing"}}  # the family's scheduler class: only its settings


@pytest.mark.parametrize("name, scenario", [("lcm", ASTRONAUT), ("sdxl-turbo", ASTRONAUT_XL),
                                            ("sdxl-lightning", ASTRONAUT_XL)])
def test_the_family_makes_the_scheduler_class_the_speed_up_names(name, scenario):
    family = REGISTRY.family(variant(name).family)
    call = call_of(name, scenario)
    scheduler = family.make_scheduler(call.scheduler, None, call.scheduler_config)
    assert type(scheduler) is call.scheduler
    assert scheduler.config.beta_schedule == "scaled_linear"  # completed from the family's config
    for setting, value in call.scheduler_config.items():
        assert scheduler.config[setting] == value
    scheduler.set_timesteps(call.steps)
    assert len(scheduler.timesteps) == call.steps


def test_the_families_need_not_list_the_few_step_schedulers():
    assert LCMScheduler not in sd1.FAMILY.schedulers.values()
    assert EulerAncestralDiscreteScheduler not in sdxl.FAMILY.schedulers.values()


def test_sdxl_turbo_runs_by_default_on_the_cpu_the_others_are_opt_in_there(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    why = {"lcm": "time budget; sdxl-turbo runs few-step sampling there", "lcm-unfused": "time budget",
           "sdxl-lightning": "slower on the tiny profile: its 4 steps against the profile's 3"}
    for name in FEW_STEP:
        expected = f"{name} is opt-in on cpu ({why[name]}): pass --perf-speedups" if name in why else None
        assert REGISTRY.skip_reason(variant(name), None, CPU) == expected, name
        assert REGISTRY.skip_reason(variant(name), None, CPU, frozenset({"--perf-speedups"})) is None, name
        assert REGISTRY.skip_reason(variant(name), None, CUDA) is None, name


def test_without_peft_the_lora_variants_say_what_to_install(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda wanted, package=None: None if wanted == "peft" else real_find_spec(wanted, package))
    assert LoRA().unavailable(CPU) == "needs the optional package peft: pip install peft"
    enabled = frozenset({"--perf-speedups"})
    assert REGISTRY.skip_reason(variant("lcm"), None, CPU, enabled) == (
        "lcm needs the optional package peft: pip install peft")
    assert REGISTRY.skip_reason(variant("lcm-unfused"), None, CUDA) == (
        "lcm-unfused needs the optional package peft: pip install peft")
    assert REGISTRY.skip_reason(variant("sdxl-turbo"), None, CPU, enabled) is None  # no LoRA: no peft needed


@pytest.mark.parametrize("rank", [0, 2.5, True])
def test_a_rank_that_cannot_be_is_refused(rank):
    with pytest.raises(ValueError, match="rank="):
        LoRA(rank)


def test_names_and_descriptions():
    assert (LoRA().name, LoRA(8, fuse=False).name) == ("lora-r64", "lora-r8-unfused")
    assert "fused into its weights" in LoRA().describe() and "seeded random" in LoRA().describe()
    assert "left unfused" in LoRA(fuse=False).describe()
    assert LoRA().targets == LORA_TARGETS == ("to_q", "to_k", "to_v", "to_out.0")
    assert FewStep("x").image_effect == FEWER_STEPS


# --------------------------------------------------------------------------- the store (tiny)


@pytest.fixture(scope="module")
def store():
    return PipelineStore(builtin_registry(), zoo.SyntheticSource("tiny", CPU), CPU)


def unet_output(unet, batch: int = 1) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, 4, 16, 16, generator=generator)
    context = torch.randn(batch, 77, sd1.TINY_UNET["cross_attention_dim"], generator=generator)
    with torch.inference_mode():
        return unet(sample, torch.tensor(500), encoder_hidden_states=context, return_dict=False)[0]


def unet_flops(unet) -> int:
    with FlopCounterMode(display=False) as counter:
        unet_output(unet)
    return counter.get_total_flops()


def lora_layers(module) -> list:
    from peft.tuners.tuners_utils import BaseTunerLayer

    return [name for name, layer in module.named_modules() if isinstance(layer, BaseTunerLayer)]


def attention(unet):
    return unet.down_blocks[0].attentions[0].transformer_blocks[0].attn1


@needs_peft
def test_the_lora_variants_leave_the_baseline_bit_identical(store):
    baseline = store.models(variant("baseline"))["unet"]
    parameters = dict(baseline.named_parameters())
    values = {name: parameter.detach().clone() for name, parameter in parameters.items()}
    output = unet_output(baseline)
    store.models(variant("lcm"))
    store.models(variant("lcm-unfused"))
    assert dict(baseline.named_parameters()) == parameters  # the same Parameter objects, none replaced
    assert all(torch.equal(parameter, values[name]) for name, parameter in baseline.named_parameters())
    assert not lora_layers(baseline) and not hasattr(baseline, "peft_config")
    assert torch.equal(unet_output(baseline), output)
    source = store.component("sd1", "unet", torch.float32)
    assert all(torch.equal(parameter, values[name]) for name, parameter in source.named_parameters())


@needs_peft
def test_a_fused_lora_is_merged_into_new_weights_and_leaves_no_layers(store):
    baseline = store.models(variant("baseline"))["unet"]
    fused = store.models(variant("lcm"))["unet"]
    assert not lora_layers(fused) and not getattr(fused, "_hf_peft_config_loaded", None)
    projection, original = attention(fused).to_q, attention(baseline).to_q
    assert type(projection) is torch.nn.Linear
    assert projection.weight is not original.weight and not torch.equal(projection.weight, original.weight)
    assert fused.conv_in.weight is baseline.conv_in.weight  # what the LoRA does not target stays shared
    assert attention(fused).to_out[0].bias is attention(baseline).to_out[0].bias  # a merge changes weights only
    assert not any(parameter.requires_grad for parameter in fused.parameters())
    assert unet_flops(fused) == unet_flops(baseline)  # the call costs what the base model's costs


@needs_peft
def test_an_unfused_lora_runs_its_own_matmuls_over_the_shared_weights(store):
    baseline = store.models(variant("baseline"))["unet"]
    unfused = store.models(variant("lcm-unfused"))["unet"]
    fused = store.models(variant("lcm"))["unet"]
    names = lora_layers(unfused)
    assert {name.split(".attn")[1].split(".", 1)[1] for name in names} == set(LORA_TARGETS)
    assert len(names) == 4 * sum(1 for name, _ in baseline.named_modules() if name.endswith((".attn1", ".attn2")))
    layer = attention(unfused).to_q
    assert layer.r["default"] == 64 and layer.scaling["default"] == 1.0
    assert layer.get_base_layer().weight is attention(baseline).to_q.weight  # shared, unchanged
    assert not any(parameter.requires_grad for parameter in unfused.parameters())
    assert unet_flops(unfused) > unet_flops(fused)  # the adapter's matmuls at every call
    # The same model either way: fusing changes the cost, not the numbers (up to float rounding).
    torch.testing.assert_close(unet_output(unfused), unet_output(fused), rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unet_output(fused), unet_output(baseline), rtol=1e-3, atol=1e-4)


@needs_peft
@pytest.mark.parametrize("fuse", [True, False])
def test_the_lora_weights_are_seeded(store, fuse):
    source = store.component("sd1", "unet", torch.float32)
    context = BuildContext(CPU)
    state = torch.random.get_rng_state()
    outputs = []
    for seed in (0, 0, 1):
        models = {"unet": clone_module(source)}
        LoRA(64, fuse=fuse, seed=seed).apply(models, context)
        outputs.append(unet_output(models["unet"]))
    assert torch.equal(torch.random.get_rng_state(), state)  # the global generator is left as it was
    assert torch.equal(outputs[0], outputs[1])
    assert not torch.equal(outputs[0], outputs[2])


@needs_peft
@pytest.mark.slow
def test_an_lcm_call_runs_four_unguided_steps_with_the_lora(store):
    from diffperf.measure.timing import TimedPipeline

    lcm = variant("lcm-unfused")
    pipe = store.pipeline(lcm, ASTRONAUT)
    assert isinstance(pipe.scheduler, LCMScheduler) and lora_layers(pipe.unet)

    class Instrument:
        @staticmethod
        def synchronize():
            return None

    batches = []
    pipe.unet.register_forward_pre_hook(lambda module, args: batches.append(args[0].shape[0]))
    TimedPipeline(pipe, ASTRONAUT, Instrument(), lambda: store.during_calls(lcm),
                  store.call_plan(lcm, ASTRONAUT).arguments)()
    assert batches == [1, 1, 1, 1]  # 4 steps, no classifier-free guidance batch at guidance 1
