"""Unit tests of diffusers' cache hooks as speed-ups (diffperf.models.caches.Cache): their declaration and
description, which families' pipelines can take each (FLUX all five, SD3.5 and the UNet families none), and on the
tiny FLUX pipeline that each really skips transformer work (counted), makes the same image on every call, stays in
the variant's own transformer tree and is compared with fp32 under the measured ``cache`` bound."""

from __future__ import annotations

import sys
from dataclasses import replace
from types import SimpleNamespace

import diffusers
import numpy as np
import pytest
import torch

from diffperf import api
from diffperf.cases.similarity import raw_output
from diffperf.images.similarity import THRESHOLDS, compare
from diffperf.models import flux, sd1, sd3, sdxl, zoo
from diffperf.models import caches as caches_module
from diffperf.models.builtin import builtin_registry
from diffperf.models.caches import CACHE_KINDS, Cache
from diffperf.models.store import PipelineStore

CPU = torch.device("cpu")
REGISTRY = builtin_registry()
SCENARIO = flux.FAMILY.scenario("astronaut-flux").scaled(flux.FAMILY.scale("tiny"))  # 7 steps, 128 px
CACHE_VARIANTS = tuple(f"flux-{label}" for label in flux.CACHES)
KINDS = ("first-block", "taylorseer", "magcache", "fastercache", "pab")
BLOCKS_PER_STEP = 3  # the tiny transformer: 1 double-stream and 2 single-stream blocks, one attention each

# What each cache variant computes of the tiny transformer per call (7 steps x 3 blocks, 21 attentions; timesteps
# 1000, 905, 800, 680, 545, 390, 210): the blocks run and the attentions computed (docs/variants.md, "Caches").
COMPUTED = {
    "flux": (21, 21),
    "flux-fbcache": (15, 15),  # steps 1, 3, 5: the two blocks after the first skipped (residual change < 0.4)
    "flux-taylorseer": (21, 12),  # steps 3, 5, 6: the three attentions predicted (computed: 0 to 2, 4)
    "flux-magcache": (12, 12),  # steps 3, 5, 6: every block skipped
    "flux-fastercache": (21, 15),  # steps 3 and 5 (timesteps 680 and 390, in (-1, 681)): the attentions extrapolated
    "flux-pab": (21, 15),  # steps 3 and 5 (in (100, 800)): the three attentions reused
}


@pytest.fixture(scope="module")
def store() -> PipelineStore:
    return PipelineStore(REGISTRY, zoo.make_source("tiny", CPU), CPU)


def call(store: PipelineStore, pipe, name: str, **changes) -> np.ndarray:
    arguments = {**store.call_plan(REGISTRY.variant(name), SCENARIO).arguments, **changes}
    return raw_output(pipe, SCENARIO, lambda: store.during_calls(REGISTRY.variant(name)), arguments=arguments)


def counted(transformer: torch.nn.Module) -> dict:
    """Counters of what ``transformer`` really computes: each block's first layer and each attention's query
    projection, which a skipped block or attention never reaches."""
    counts = {"blocks": 0, "attentions": 0}

    def count(what):
        return lambda *args: counts.__setitem__(what, counts[what] + 1)

    for blocks in (transformer.transformer_blocks, transformer.single_transformer_blocks):
        for block in blocks:
            (block.norm1 if hasattr(block, "norm1") else block.norm).register_forward_hook(count("blocks"))
            block.attn.to_q.register_forward_hook(count("attentions"))
    return counts


def has_cache_hooks(module: torch.nn.Module) -> bool:
    """Whether any module of the tree carries a diffusers hook or a cache config."""
    return getattr(module, "_cache_config", None) is not None or any(
        getattr(getattr(child, "_diffusers_hook", None), "hooks", None) for child in module.modules())


# --------------------------------------------------------------------------- declaration


def test_each_kind_is_declared_as_data_with_a_name_and_description():
    cache = Cache("first-block", threshold=0.4)
    assert cache == Cache("first-block", threshold=0.4) and hash(cache) == hash(Cache("first-block", threshold=0.4))
    assert cache != Cache("first-block", threshold=0.5)
    assert cache.name == "fbcache-0.4" and Cache("first-block").name == "fbcache-0.05"  # diffusers' default
    assert "FirstBlockCacheConfig: threshold=0.4" in cache.describe()
    assert [Cache(kind).name for kind in KINDS[1:]] == ["taylorseer", "magcache", "fastercache", "pab"]
    assert "taylor_factors_dtype=float32" in flux.CACHES["taylorseer"].describe()
    assert set(CACHE_KINDS) == set(KINDS) and api.Cache is Cache
    assert all(cache.image_effect == "cache" and not cache.same_every_step for cache in flux.CACHES.values())


@pytest.mark.parametrize(("kind", "settings", "words"), [
    ("teacache", {}, "choose one of first-block, taylorseer, magcache, fastercache, pab"),
    ("first-block", {"treshold": 0.1}, "FirstBlockCacheConfig has no treshold"),
    ("pab", {"current_timestep_callback": None}, "current_timestep_callback are set by diffperf"),
    ("magcache", {"mag_ratios": [1.0]}, "mag_ratios are set by diffperf"),
])
def test_a_wrong_declaration_is_one_line(kind, settings, words):
    with pytest.raises(ValueError, match=words) as raised:
        Cache(kind, **settings)
    assert "\n" not in str(raised.value)


def test_a_diffusers_without_the_config_makes_it_unavailable(monkeypatch):
    pab = diffusers.PyramidAttentionBroadcastConfig
    older = SimpleNamespace(__version__="0.34.0", PyramidAttentionBroadcastConfig=pab)  # before first-block caching
    monkeypatch.setitem(sys.modules, "diffusers", older)
    reason = Cache("first-block").unavailable(CPU)
    assert reason == "needs diffusers 0.35.0 or later for FirstBlockCacheConfig (installed: 0.34.0)"
    assert Cache("pab").unavailable(CPU) is None


# --------------------------------------------------------------------------- which families


@pytest.mark.parametrize("kind", KINDS)
def test_flux_takes_every_cache(kind):
    assert Cache(kind).unsupported(flux.FAMILY) is None


@pytest.mark.parametrize("kind", KINDS)
def test_sd35_and_the_unet_families_say_why_not(kind):
    context = kind in ("first-block", "taylorseer", "magcache")
    lacks = "does not wrap its transformer calls in cache_context" if context else "does not set pipe.current_timestep"
    version = f"(diffusers {diffusers.__version__})"
    assert Cache(kind).unsupported(sd3.FAMILY) == (f"cannot run on sd35 {version}: SD3Transformer2DModel is not a "
                                                   f"CacheMixin, and StableDiffusion3Pipeline {lacks}")
    for family in (sd1.FAMILY, sdxl.FAMILY):
        reason = Cache(kind).unsupported(family)
        assert reason.startswith(f"cannot run on {family.name} {version}: UNet2DConditionModel is not a CacheMixin")


def test_a_pipeline_without_what_the_hook_reads_is_named_alone():
    class NoContext(flux.FAMILY.pipeline):  # a FLUX pipeline whose call never opens a cache context
        def __call__(self, *args, **kwargs):
            return super().__call__(*args, **kwargs)

    family = replace(flux.FAMILY, name="flux-like", pipeline=NoContext)
    assert Cache("first-block").unsupported(family) == (
        f"cannot run on flux-like (diffusers {diffusers.__version__}): NoContext does not wrap its transformer calls "
        "in cache_context, which first-block caching needs")
    assert "does not set pipe.current_timestep, which Pyramid Attention Broadcast needs" in \
        Cache("pab").unsupported(family)


def test_sd35_cache_variants_skip_with_the_reason():
    enabled = frozenset({"--perf-speedups"})
    for label in sd3.CACHES:
        reason = REGISTRY.skip_reason(REGISTRY.variant(f"sd35-{label}"), None, CPU, enabled)
        assert reason.startswith(f"sd35-{label}: {sd3.CACHES[label].name} cannot run on sd35 (diffusers "), reason
        assert len(reason) < 200
    assert sd3.CACHES["fastercache"] != flux.CACHES["fastercache"]  # SD3 has a classifier-free guidance batch


def test_flux_cache_variants_are_against_fp32_and_all_but_the_first_block_cache_opt_in_on_the_cpu():
    for name in CACHE_VARIANTS:
        variant = REGISTRY.variant(name)
        assert variant.reference == "flux" and variant.fp32_check() == "cache" and variant.own_check() == "same"
        if name == "flux-fbcache":
            assert REGISTRY.skip_reason(variant, None, CPU) is None
        else:
            assert "time budget" in REGISTRY.skip_reason(variant, None, CPU)
        assert REGISTRY.skip_reason(variant, None, CPU, frozenset({"--perf-speedups"})) is None


def test_the_cache_bound_exists_between_fp32_and_half():
    cache = THRESHOLDS["cache"]
    assert THRESHOLDS["half"].min_psnr_db < cache.min_psnr_db < THRESHOLDS["same"].min_psnr_db
    assert cache.max_cosine_distance < THRESHOLDS["half"].max_cosine_distance


# --------------------------------------------------------------------------- on the tiny FLUX pipeline


@pytest.mark.parametrize("name", ["flux", *CACHE_VARIANTS])
def test_each_cache_skips_transformer_work_and_makes_the_same_image_every_call(store, name):
    pipe = store.pipeline(REGISTRY.variant(name), SCENARIO)
    counts = counted(pipe.transformer)
    first = call(store, pipe, name)
    assert (counts["blocks"], counts["attentions"]) == COMPUTED[name]
    second = call(store, pipe, name)
    assert (counts["blocks"], counts["attentions"]) == tuple(2 * count for count in COMPUTED[name])
    assert np.array_equal(first, second)  # no state left from the first call
    assert np.array_equal(first, call(store, store.pipeline(REGISTRY.variant(name), SCENARIO), name))


@pytest.mark.parametrize("name", CACHE_VARIANTS)
def test_each_cache_changes_the_image_within_its_bound(store, name):
    fp32 = call(store, store.pipeline(REGISTRY.variant("flux"), SCENARIO), "flux")
    cached = call(store, store.pipeline(REGISTRY.variant(name), SCENARIO), name)
    comparison = compare(cached, fp32, "cache")
    assert comparison.passed and comparison.psnr_db < THRESHOLDS["same"].min_psnr_db  # changed, and bounded


def test_caches_stay_in_the_variants_own_transformer_tree(store):
    baseline = store.models(REGISTRY.variant("flux"))["transformer"]
    first_block = store.pipeline(REGISTRY.variant("flux-fbcache"), SCENARIO)  # enabled in apply: the variant's tree
    assert first_block.transformer is store.models(REGISTRY.variant("flux-fbcache"))["transformer"]
    assert has_cache_hooks(first_block.transformer)
    pab = [store.pipeline(REGISTRY.variant("flux-pab"), SCENARIO) for _ in range(2)]  # in prepare: one per pipeline
    assert pab[0].transformer is not pab[1].transformer and all(has_cache_hooks(pipe.transformer) for pipe in pab)
    assert not has_cache_hooks(store.models(REGISTRY.variant("flux-pab"))["transformer"])
    # the flux baseline's transformer and the shared source component: no hook, no cache, the same image
    assert not has_cache_hooks(baseline) and baseline is not first_block.transformer
    assert not has_cache_hooks(store.component("flux", "transformer", torch.float32))
    shared = dict(baseline.named_parameters())
    assert all(parameter is shared[name] for name, parameter in first_block.transformer.named_parameters())


def test_magcache_is_calibrated_on_the_pipeline_and_follows_another_step_count(store, monkeypatch):
    calls = []
    measure = caches_module.magcache_ratios

    def spy(*args):
        calls.append(measure(*args))
        return calls[-1]

    monkeypatch.setattr(caches_module, "magcache_ratios", spy)
    pipe = store.pipeline(REGISTRY.variant("flux-magcache"), SCENARIO)
    (ratios,) = calls  # one untimed calibration call per pipeline, before any timed one
    assert len(ratios) == SCENARIO.steps and ratios[0] == 1.0 and all(0.5 < ratio < 2 for ratio in ratios)
    config = pipe.transformer._cache_config
    assert not config.calibrate and config.num_inference_steps == SCENARIO.steps
    fewer = call(store, pipe, "flux-magcache", num_inference_steps=SCENARIO.steps - 1)
    assert config.num_inference_steps == SCENARIO.steps - 1 and np.isfinite(fewer).all()
    assert np.array_equal(call(store, pipe, "flux-magcache"), call(store, pipe, "flux-magcache"))
    assert config.num_inference_steps == SCENARIO.steps
