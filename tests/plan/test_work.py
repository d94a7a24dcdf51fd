"""Work counted on meta tensors is the work of a real call; counts are kept in the cache."""

import json

import pytest
import torch

from diffperf.measure.meta import MetaModule
from diffperf.models.builtin import builtin_registry
from diffperf.models.calls import CallPlan
from diffperf.plan.work import WorkCounter, denoiser_calls

REGISTRY = builtin_registry()


@pytest.mark.parametrize("variant, scenario", [("baseline", "astronaut"), ("distilled-taesd", "vase"),
                                               ("sdxl", "astronaut-xl")])
def test_meta_counts_equal_the_counts_of_real_tiny_modules(variant, scenario, tmp_path):
    declared = REGISTRY.variant(variant)
    family = REGISTRY.family(declared.family)
    workload = family.scenario(scenario).scaled(family.scale("tiny"))
    real = WorkCounter("tiny").work(family, declared, workload)  # tiny counts on the CPU
    meta = WorkCounter("tiny", meta=True, cache=tmp_path)
    assert meta.work(family, declared, workload).flops == real.flops


def test_the_counted_loop_has_the_schedulers_calls():
    family = REGISTRY.family("sd1")
    scenario = family.scenario("astronaut").scaled(family.scale("tiny"))
    work = WorkCounter("tiny").work(family, REGISTRY.variant("baseline"), scenario)
    assert work.flops.unet_calls == denoiser_calls(family, CallPlan.of_scenario(family, scenario)) == scenario.steps
    assert work.flops.stages["denoising"] == work.flops.unet_per_call * work.flops.unet_calls > 0


def test_full_size_counts_are_cached_and_a_broken_cache_is_counted_again(tmp_path):
    family = REGISTRY.family("sd1")
    scenario = family.scenario("astronaut")
    first = WorkCounter("full", cache=tmp_path).work(family, REGISTRY.variant("baseline"), scenario)
    stored = json.loads((tmp_path / "work.json").read_text())
    assert len(stored) == 1 and next(iter(stored.values()))["unet_calls"] == 50
    again = WorkCounter("full", cache=tmp_path)
    again._count = None  # a cached count is not counted again
    assert again.work(family, REGISTRY.variant("fp16"), scenario) == first  # same components: same work
    (tmp_path / "work.json").write_text("{not json")
    assert WorkCounter("full", cache=tmp_path).work(family, REGISTRY.variant("baseline"), scenario) == first


def test_a_meta_module_hands_back_cpu_zeros_of_the_outputs_shapes():
    with torch.device("meta"):
        linear = torch.nn.Linear(4, 3)
    module = MetaModule(linear)
    output = module(torch.ones(2, 4))
    assert output.device.type == "cpu" and output.shape == (2, 3) and not output.any()
    assert module.device.type == "cpu" and module.in_features == 4 and module.weight.device.type == "meta"
