"""diffusers' cache hooks as a speed-up: ``Cache``, ``enable_cache`` of a CacheMixin transformer (first-block,
TaylorSeer, MagCache, FasterCache, Pyramid Attention Broadcast), declared as data like every speed-up
(diffperf.models.speedups), with what each hook needs of a family's pipeline (docs/variants.md, "Caches")."""

from __future__ import annotations

import contextlib
import weakref
from dataclasses import dataclass

import torch

from diffperf.models.family import DENOISER_SLOTS
from diffperf.models.speedups import SpeedUp

CACHE_CONTEXT = "cache_context"
CURRENT_TIMESTEP = "current_timestep"


@dataclass(frozen=True)
class CacheKind:
    """One of diffusers' cache hooks: its config class, the diffusers version that added it, what it needs of the
    pipeline (:data:`CACHE_CONTEXT` or :data:`CURRENT_TIMESTEP`), its short name, its name in words and what it
    does."""

    config: str
    since: str
    needs: str
    label: str
    title: str
    does: str


CACHE_KINDS = {
    "first-block": CacheKind("FirstBlockCacheConfig", "0.35.0", CACHE_CONTEXT, "fbcache", "first-block caching",
                             "first-block cache: the other transformer blocks skipped at a step whose first block's "
                             "residual changed by less than the threshold (relative mean), their last residual reused"),
    "taylorseer": CacheKind("TaylorSeerCacheConfig", "0.36.0", CACHE_CONTEXT, "taylorseer", "TaylorSeer",
                            "TaylorSeer: attention outputs predicted by a Taylor series between fully computed steps"),
    "magcache": CacheKind("MagCacheConfig", "0.37.0", CACHE_CONTEXT, "magcache", "MagCache",
                          "MagCache: whole steps of transformer blocks skipped while the accumulated change of the "
                          "residual's magnitude (ratios calibrated on the pipeline) stays under the threshold"),
    "fastercache": CacheKind("FasterCacheConfig", "0.33.0", CURRENT_TIMESTEP, "fastercache", "FasterCache",
                             "FasterCache: attention outputs extrapolated from the last two computed ones on skipped "
                             "steps"),
    "pab": CacheKind("PyramidAttentionBroadcastConfig", "0.33.0", CURRENT_TIMESTEP, "pab",
                     "Pyramid Attention Broadcast", "Pyramid Attention Broadcast: attention outputs reused on skipped "
                     "steps"),
}
"""The cache hooks :class:`Cache` declares, by the name a variant gives."""

MANAGED_SETTINGS = {"current_timestep_callback", "calibrate", "mag_ratios", "num_inference_steps"}
"""Config fields :class:`Cache` sets itself: the pipeline's timestep, MagCache's calibration and step count."""

CALIBRATION_PROMPT = "a photograph of a city street at night"
CALIBRATION_SEED = 1
"""MagCache's calibration call: the workload's call with this prompt and seed instead of its own, so that the
ratios describe the model and its schedule, not the image being measured."""


def cache_config_class(kind: CacheKind):
    """diffusers' config class of ``kind``, None when the installed diffusers lacks it."""
    import diffusers

    return getattr(diffusers, kind.config, None)


def pipeline_source(pipeline: type) -> str | None:
    """The source of the pipeline class's ``__call__``, None when it cannot be read."""
    import inspect

    try:
        return inspect.getsource(pipeline.__call__)
    except (OSError, TypeError):
        return None


def pipeline_denoiser(pipe) -> torch.nn.Module:
    """The model a pipeline's denoising loop calls: its ``unet`` or its ``transformer``."""
    for slot in DENOISER_SLOTS:
        module = getattr(pipe, slot, None)
        if isinstance(module, torch.nn.Module):
            return module
    raise ValueError(f"{type(pipe).__name__} has no transformer or unet to cache")


class Cache(SpeedUp):
    """One of diffusers' cache hooks on the denoiser (``enable_cache``): first-block, TaylorSeer, MagCache,
    FasterCache or Pyramid Attention Broadcast, declared as data: ``Cache("first-block", threshold=0.4)``.

    The settings are the diffusers config's own fields. First-block and TaylorSeer caches are enabled on the
    variant's own transformer tree (``apply``). Pyramid Attention Broadcast and FasterCache read the pipeline's
    current timestep (``current_timestep_callback=lambda: pipe.current_timestep``), so each pipeline gets a
    transformer tree of its own and the cache is enabled on it (``prepare``). MagCache needs magnitude ratios of
    the model it runs on: each pipeline gets its own tree too, and ``calibrate`` runs one untimed call of it in
    diffusers' calibration mode (the workload's call with :data:`CALIBRATION_PROMPT` and
    :data:`CALIBRATION_SEED`), then enables MagCache with the ratios that call measured; a call with another
    step count interpolates them, as diffusers does. The hooks' state is reset on every new pipeline and at the
    end of every call (diffusers' ``maybe_free_model_hooks``), so two calls make the same image.
    """

    image_effect = "cache"
    same_every_step = False  # the transformer skips blocks or attention on some steps only

    def __init__(self, kind: str, **settings):
        if kind not in CACHE_KINDS:
            raise ValueError(f"Cache({kind!r}): choose one of {', '.join(CACHE_KINDS)}")
        managed = sorted(MANAGED_SETTINGS & set(settings))
        if managed:
            raise ValueError(f"Cache({kind!r}): {', '.join(managed)} are set by diffperf, not declared")
        config = cache_config_class(CACHE_KINDS[kind])
        if config is not None:
            import dataclasses

            known = {field.name for field in dataclasses.fields(config)}
            unknown = sorted(set(settings) - known)
            if unknown:
                raise ValueError(f"Cache({kind!r}): {config.__name__} has no {', '.join(unknown)}; its fields: "
                                 f"{', '.join(sorted(known - MANAGED_SETTINGS))}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "settings", tuple(sorted(settings.items())))

    def __setattr__(self, name, value):
        raise AttributeError(f"{self!r} is declared data: declare another Cache(...) instead of changing {name}")

    def __eq__(self, other) -> bool:
        return isinstance(other, Cache) and (self.kind, self.settings) == (other.kind, other.settings)

    def __hash__(self) -> int:
        return hash((self.kind, tuple((name, repr(value)) for name, value in self.settings)))

    def __repr__(self) -> str:
        return f"Cache({', '.join([repr(self.kind), *(f'{name}={value!r}' for name, value in self.settings)])})"

    @property
    def cache(self) -> CacheKind:
        return CACHE_KINDS[self.kind]

    @property
    def name(self) -> str:
        if self.kind == "first-block":
            return f"{self.cache.label}-{dict(self.settings).get('threshold', 0.05):g}"
        return self.cache.label

    @property
    def description(self) -> str:
        settings = ", ".join(f"{name}={_setting_text(value)}" for name, value in self.settings)
        return f"{self.cache.does} (diffusers {self.cache.config}{': ' + settings if settings else ''})"

    def unavailable(self, device):
        if cache_config_class(self.cache) is None:
            import diffusers

            return f"needs diffusers {self.cache.since} or later for {self.cache.config} (installed: " \
                   f"{diffusers.__version__})"
        return None

    def unsupported(self, family):
        import diffusers

        try:
            from diffusers.models.cache_utils import CacheMixin
        except ImportError:  # a diffusers before any cache hook: unavailable says which version to install
            return f"cannot run on {family.name}: diffusers {diffusers.__version__} has no cache hooks"
        not_mixin = None
        denoiser = family.component(family.denoiser).cls
        if not issubclass(denoiser, CacheMixin):
            not_mixin = f"{denoiser.__name__} is not a CacheMixin"
        pipeline = family.pipeline.__name__
        source = pipeline_source(family.pipeline)
        lacks = None
        if source is None:
            lacks = f"the source of {pipeline} cannot be read"
        elif self.cache.needs == CACHE_CONTEXT and "cache_context" not in source:
            lacks = f"{pipeline} does not wrap its {family.denoiser} calls in cache_context"
        elif self.cache.needs == CURRENT_TIMESTEP and ("_current_timestep" not in source
                                                       or not hasattr(family.pipeline, "current_timestep")):
            lacks = f"{pipeline} does not set pipe.current_timestep"
        if not_mixin and lacks:  # both, in a line short enough to read
            found = f"{not_mixin}, and {lacks}"
        elif not_mixin:
            found = f"{not_mixin}, which enable_cache needs"
        elif lacks:
            found = f"{lacks}, which {self.cache.title} needs"
        else:
            return None
        return f"cannot run on {family.name} (diffusers {diffusers.__version__}): {found}"

    @property
    def per_pipeline(self) -> bool:
        """Whether each pipeline gets a transformer tree of its own (the cache reads it or is calibrated on it)."""
        return self.cache.needs == CURRENT_TIMESTEP or self.kind == "magcache"

    def config(self, **managed):
        """The diffusers config of this cache, with the fields diffperf sets (``managed``)."""
        return cache_config_class(self.cache)(**dict(self.settings), **managed)

    def plan(self, plan):
        if self.per_pipeline:
            plan.denoiser_per_pipeline = True

    def apply(self, models, context):
        if not self.per_pipeline:
            models[context.denoiser].enable_cache(self.config())

    def prepare(self, pipe):
        denoiser = pipeline_denoiser(pipe)
        if self.cache.needs == CURRENT_TIMESTEP:
            pipeline = weakref.ref(pipe)  # the pipeline holds the hooks: no reference cycle back to it
            denoiser.enable_cache(self.config(current_timestep_callback=lambda: pipeline().current_timestep))
        elif not self.per_pipeline:  # the variant's tree, shared by its pipelines: no state from an earlier one
            denoiser._reset_stateful_cache()

    def calibrate(self, pipe, call):
        if self.kind != "magcache":
            return
        denoiser = pipeline_denoiser(pipe)
        ratios = magcache_ratios(pipe, denoiser, call, self.config(calibrate=True, num_inference_steps=call.steps))
        config = self.config(mag_ratios=ratios, num_inference_steps=len(ratios))
        denoiser.enable_cache(config)
        follow_step_count(pipe, denoiser, config, torch.tensor(ratios))


def _setting_text(value) -> str:
    return str(value).removeprefix("torch.") if isinstance(value, torch.dtype) else repr(value)


def magcache_ratios(pipe, denoiser: torch.nn.Module, call, calibration) -> list[float]:
    """MagCache's magnitude ratios for ``call``'s workload on ``pipe``, measured by one call in diffusers'
    calibration mode (``calibration``: a MagCacheConfig with ``calibrate=True``) on :data:`CALIBRATION_PROMPT`
    and :data:`CALIBRATION_SEED`; the cache is disabled again afterwards.

    diffusers prints the ratios at the end of the call and clears them; the tail block's hook hands each one
    over as it is measured (``_perform_calibration_step``), which is where they are read here.
    """
    import io

    from diffusers.hooks.mag_cache import _MAG_CACHE_BLOCK_HOOK

    denoiser.enable_cache(calibration)
    ratios: list[float] = []
    try:
        tails = [module._diffusers_hook.get_hook(_MAG_CACHE_BLOCK_HOOK) for module in denoiser.modules()
                 if hasattr(module, "_diffusers_hook")]
        (tail,) = [hook for hook in tails if hook is not None and hook.is_tail]
        measure = tail._perform_calibration_step

        def record(state, residual):
            measure(state, residual)
            ratios.append(float(state.calibration_ratios[-1]))

        tail._perform_calibration_step = record
        arguments = {**call.arguments, "prompt": CALIBRATION_PROMPT}
        generator = torch.Generator(device="cpu").manual_seed(CALIBRATION_SEED)
        with contextlib.redirect_stdout(io.StringIO()):  # diffusers prints the ratios it measured
            pipe(**arguments, generator=generator, output_type="latent")
    finally:
        denoiser.disable_cache()
    if len(ratios) != call.steps:
        raise RuntimeError(f"MagCache calibration measured {len(ratios)} ratios for a call of {call.steps} steps")
    return ratios


def follow_step_count(pipe, denoiser: torch.nn.Module, config, ratios: torch.Tensor) -> None:
    """Before each call's first transformer call, give MagCache ``config`` the call's step count and the calibrated
    ``ratios`` interpolated to it (diffusers' ``nearest_interp``): a call of other steps than the calibrated one (a
    planted step fewer) counts its own."""
    from diffusers.hooks.mag_cache import nearest_interp

    pipeline = weakref.ref(pipe)  # the pipeline holds the hook: no reference cycle back to it

    def before(module, args):
        steps = len(pipeline().scheduler.timesteps)
        if steps != config.num_inference_steps:
            config.num_inference_steps = steps
            config.mag_ratios = ratios if steps == len(ratios) else nearest_interp(ratios, steps)

    denoiser.register_forward_pre_hook(before)
