"""The call stage (diffperf.models.calls): a speed-up changes each timed call's arguments and scheduler, the store
builds the pipeline with that scheduler, the timed call passes those arguments, and a case records what changed."""

from __future__ import annotations

import pytest
import torch
from diffusers import EulerAncestralDiscreteScheduler, LCMScheduler

from diffperf.history.identity import case_definition, definition_differences
from diffperf.measure.timing import TimedPipeline
from diffperf.models import sd1, zoo
from diffperf.models.builtin import builtin_registry
from diffperf.models.calls import CallPlan
from diffperf.models.registry import Registry
from diffperf.models.speedups import FEWER_STEPS, Attention, FewStep, SpeedUp
from diffperf.models.store import PipelineStore
from diffperf.models.variants import Variant
from diffperf.models.workloads import Scale, Scenario

ASTRONAUT = sd1.FAMILY.scenario("astronaut").scaled(sd1.FAMILY.scale("tiny"))
LCM = FewStep("lcm", steps=2, guidance_scale=1.0, scheduler=LCMScheduler)


def test_the_scenario_call_is_its_arguments_and_scheduler():
    call = CallPlan.of_scenario(sd1.FAMILY, ASTRONAUT)
    assert call.arguments == ASTRONAUT.pipeline_kwargs()
    assert call.scheduler is sd1.FAMILY.schedulers["ddim"]
    assert call.steps == ASTRONAUT.steps
    assert call.changes(CallPlan.of_scenario(sd1.FAMILY, ASTRONAUT)) == {}


def test_a_few_step_speed_up_changes_steps_guidance_and_scheduler():
    variant = Variant("lcm-test", "sd1", (LCM,), "baseline")
    call = variant.call_plan(sd1.FAMILY, ASTRONAUT)
    assert call.steps == 2 and call.arguments["guidance_scale"] == 1.0 and call.scheduler is LCMScheduler
    assert call.changes(CallPlan.of_scenario(sd1.FAMILY, ASTRONAUT)) == {
        "arguments": {"num_inference_steps": 2, "guidance_scale": 1.0}, "scheduler": "LCMScheduler"}
    assert variant.fp32_check() is None and LCM.image_effect == FEWER_STEPS  # another image: its own baseline only
    assert variant.own_check() == "same"


def test_given_timesteps_and_scheduler_settings_are_the_call():
    dmd = FewStep("dmd2", guidance_scale=0.0, scheduler=LCMScheduler, timesteps=(999, 749, 499, 249))
    turbo = FewStep("turbo", steps=1, guidance_scale=0.0, scheduler=EulerAncestralDiscreteScheduler,
                    scheduler_config={"timestep_spacing": "trailing"})
    call = Variant("dmd-test", "sd1", (dmd,), "baseline").call_plan(sd1.FAMILY, ASTRONAUT)
    assert call.steps == 4 and call.arguments["timesteps"] == [999, 749, 499, 249]
    call = Variant("turbo-test", "sd1", (turbo,), "baseline").call_plan(sd1.FAMILY, ASTRONAUT)
    scheduler = sd1.FAMILY.make_scheduler(call.scheduler, None, call.scheduler_config)
    assert isinstance(scheduler, EulerAncestralDiscreteScheduler)
    assert scheduler.config.timestep_spacing == "trailing"
    assert scheduler.config.beta_schedule == "scaled_linear"  # completed from the family's config, not a bare one
    assert "trailing" in turbo.describe() and "1 steps" in turbo.describe()


@pytest.mark.parametrize("bad", [0, 2.5, True])
def test_a_few_step_speed_up_refuses_a_step_count_that_cannot_run(bad):
    with pytest.raises(ValueError, match="steps="):
        FewStep("x", steps=bad)


def test_a_scheduler_that_is_not_a_class_is_refused():
    with pytest.raises(ValueError, match="scheduler class"):
        FewStep("x", scheduler="LCMScheduler")


def test_scenario_arguments_reach_the_call_and_a_scale_changes_them():
    scenario = Scenario("s", "p", images=1, steps=20, scheduler="ddim", seed=0,
                        arguments={"guidance_scale": 3.5, "max_sequence_length": 512})
    scaled = scenario.scaled(Scale(resolution=128, step_fraction=0.1, arguments={"max_sequence_length": 32}))
    assert scaled.pipeline_kwargs()["guidance_scale"] == 3.5 and scaled.pipeline_kwargs()["max_sequence_length"] == 32
    assert scenario.describe()["arguments"] == {"guidance_scale": 3.5, "max_sequence_length": 512}
    assert "arguments" not in ASTRONAUT.describe()  # recorded only where there are some: old runs stay comparable


@pytest.mark.parametrize("arguments, match", [({"num_inference_steps": 4}, "scenario's own fields"),
                                              (["guidance_scale"], "give a dict")])
def test_scenario_arguments_that_a_field_gives_are_refused(arguments, match):
    with pytest.raises(ValueError, match=match):
        Scenario("s", "p", images=1, steps=20, scheduler="ddim", seed=0, arguments=arguments)


def test_what_a_speed_up_changes_is_part_of_the_case_identity():
    plain = {"prompt": "p", "steps": 5, "call_changes": None}
    few = {**plain, "call_changes": {"arguments": {"num_inference_steps": 2}}}
    assert case_definition(plain) == case_definition({"prompt": "p", "steps": 5})  # older runs read the same
    assert [field for field, *_ in definition_differences(plain, few)] == ["call_changes"]


class NotForThisFamily(SpeedUp):
    name = "picky"

    def unsupported(self, family):
        return f"needs another pipeline than {family.pipeline.__name__}"


def test_a_speed_up_a_family_cannot_take_skips_with_its_reason():
    registry = builtin_registry()
    registry.add(Variant("picky", "sd1", (NotForThisFamily(),), "baseline"))
    reason = registry.skip_reason(registry.variant("picky"), "astronaut", torch.device("cpu"))
    assert reason == "picky: picky needs another pipeline than StableDiffusionPipeline"
    assert Attention("sdpa").unsupported(sd1.FAMILY) is None


def test_an_unsupported_answer_that_is_not_one_line_is_refused_at_declaration():
    class Bad(SpeedUp):
        name = "bad"

        def unsupported(self, family):
            return "two\nlines"

    registry = Registry()
    registry.add(sd1.FAMILY, *sd1.VARIANTS)
    with pytest.raises(ValueError, match="one line"):
        registry.add(Variant("bad", "sd1", (Bad(),), "baseline"))


@pytest.mark.slow
def test_the_store_builds_the_call_scheduler_and_the_timed_call_passes_the_arguments():
    registry = builtin_registry()
    registry.add(Variant("lcm-test", "sd1", (LCM,), "baseline"))
    store = PipelineStore(registry, zoo.make_source("tiny", torch.device("cpu")), torch.device("cpu"))
    variant = registry.variant("lcm-test")
    pipe = store.pipeline(variant, ASTRONAUT)
    assert isinstance(pipe.scheduler, LCMScheduler)

    class Instrument:
        @staticmethod
        def synchronize():
            return None

    denoiser_batches = []
    pipe.unet.register_forward_pre_hook(lambda module, args: denoiser_batches.append(args[0].shape[0]))
    timed = TimedPipeline(pipe, ASTRONAUT, Instrument(), lambda: store.during_calls(variant),
                          store.call_plan(variant, ASTRONAUT).arguments)
    timed()
    assert denoiser_batches == [1, 1]  # 2 steps, and no classifier-free guidance batch at guidance 1
