"""The approximate speed-ups (ToMe, DeepCache, int8) against fp32: what a case compares, and that each
bound accepts the documented setting and fails a worse one (tiny profile, astronaut scenario, measured
in docs/similarity.md). Tests that need an optional package skip without it."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from diffperf.cases.similarity import PlannedCheck, planned_checks, raw_output
from diffperf.images.similarity import THRESHOLDS, compare
from diffperf.models import sd1, zoo
from diffperf.models.builtin import builtin_registry
from diffperf.models.store import PipelineStore

CPU = torch.device("cpu")
REGISTRY = builtin_registry()
SCENARIO = sd1.FAMILY.scenario("astronaut").scaled(sd1.FAMILY.scale("tiny"))  # 128x128, 5 DDIM steps, 1 image


def sd1_variant(name: str):
    """The SD v1 variant ``name`` as the built-in registry declares it."""
    variant = REGISTRY.variant(name)
    assert variant.family == sd1.NAME
    return variant


@pytest.mark.parametrize(("variant", "expected"), [
    ("tome", [PlannedCheck("own", "same", "tome"), PlannedCheck("fp32", "tome", "baseline")]),
    ("deepcache", [PlannedCheck("own", "same", "deepcache"), PlannedCheck("fp32", "deepcache", "baseline")]),
    # int8's own baseline is checked with its own bound: another thread count moves it by 62 dB
    ("int8", [PlannedCheck("own", "int8", "int8"), PlannedCheck("fp32", "int8", "baseline")]),
    ("fused-qkv", [PlannedCheck("own", "same", "fused-qkv"), PlannedCheck("fp32", "fp32", "baseline")]),
    ("best-cpu", [PlannedCheck("own", "same", "best-cpu")]),
])
def test_planned_checks(variant, expected):
    assert planned_checks(sd1_variant(variant), recording=False, fp32_variant=sd1.FAMILY.baseline) == expected


def test_approximate_bounds_are_looser_than_fp32_and_tighter_than_nothing():
    exact = THRESHOLDS["fp32"]
    for kind in ("tome", "deepcache", "int8"):
        bound = THRESHOLDS[kind]
        assert bound.min_psnr_db < exact.min_psnr_db and bound.max_cosine_distance > exact.max_cosine_distance
        assert bound.min_psnr_db >= 20 and bound.max_cosine_distance <= 0.2  # another seed (19 dB, 0.7) fails


@pytest.fixture(scope="module")
def store():
    return PipelineStore(REGISTRY, zoo.SyntheticSource("tiny", CPU), CPU)


@pytest.fixture(scope="module")
def fp32(store):
    return raw_output(store.pipeline(sd1_variant("baseline"), SCENARIO), SCENARIO)


def output(store, variant):
    return raw_output(store.pipeline(variant, SCENARIO), SCENARIO)


def worse_int8(store):
    """int8 with one scale per tensor instead of per row and token: coarser quantization."""
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, PerTensor, quantize_

    from diffperf.models.store import clone_module

    pipe = store.pipeline(sd1_variant("baseline"), SCENARIO)
    pipe.unet = clone_module(pipe.unet)
    quantize_(pipe.unet, Int8DynamicActivationInt8WeightConfig(granularity=PerTensor(), set_inductor_config=False))
    return raw_output(pipe, SCENARIO)


def worse_tome(store):
    """ToMe merging the MLP's tokens too (tomesd: "very not recommended")."""
    import tomesd

    from diffperf.models.store import clone_module

    pipe = store.pipeline(sd1_variant("baseline"), SCENARIO)
    pipe.unet = clone_module(pipe.unet)
    tomesd.apply_patch(pipe.unet, ratio=0.5, use_rand=False, merge_mlp=True)
    return raw_output(pipe, SCENARIO)


def worse_deepcache(store):
    """DeepCache with a stale cache: the deep features of the previous call (another seed) reused from the
    first step on, as a cache that is never refreshed would."""
    from DeepCache import DeepCacheSDHelper

    from diffperf.models.store import clone_module

    pipe = store.pipeline(sd1_variant("baseline"), SCENARIO)
    pipe.unet = clone_module(pipe.unet)
    helper = DeepCacheSDHelper(pipe=pipe)
    helper.set_params(cache_interval=3, cache_branch_id=0)
    helper.enable()
    raw_output(pipe, SCENARIO, seed=SCENARIO.seed + 1)  # fills the cache
    helper.params["skip_mode"] = "never-refresh"  # not 'uniform': no step recomputes the deep branch
    return raw_output(pipe, SCENARIO)


CASES = {
    # kind: (module needed, the documented variant's change, a worse one)
    "tome": ("tomesd", lambda store: output(store, sd1_variant("tome")), worse_tome),
    "deepcache": ("DeepCache", lambda store: output(store, sd1_variant("deepcache")), worse_deepcache),
    "int8": ("torchao", lambda store: output(store, sd1_variant("int8")), worse_int8),
}


@pytest.mark.parametrize("kind", list(CASES))
def test_bound_accepts_the_documented_setting_and_fails_a_worse_one(store, fp32, kind):
    module, documented, worse = CASES[kind]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"needs the optional package {module}")
    assert compare(documented(store), fp32, kind).passed
    assert not compare(worse(store), fp32, kind).passed
