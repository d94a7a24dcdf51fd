"""A yardstick of absolute speed: the kinds of work a family's denoiser does, at its shapes, from torch alone.

The gate judges ratios measured in one process, because a ratio cancels what the host's speed does
to both of its members. A variant's speed-up has its reference as partner; a family's fp32 baseline
has none, so a change that makes *every* pipeline slower (a diffusers, scheduler or pipeline
change, a slower attention path chosen for all) moves no speed-up. The yardstick is the baseline's
partner: a fixed sequence of ``torch.nn.functional`` calls at the shapes of the baseline's denoiser
for the case's batch, latent size and text, in the baseline's dtype and on its device, with seeded
weights, one pass per denoising step. No diffusers code runs in it. It follows two kinds of denoiser:

* a UNet (a diffusers ``UNet2DConditionModel``'s config: :func:`shape_of`, :class:`UNetShape`): group
  norm, SiLU, 3x3 convolutions, layer norm, the attention projections, scaled-dot-product self- and
  cross-attention, the GEGLU feed-forward, one residual block and the level's transformer blocks per
  level on the way down and up, where the UNet has two and three: about 40% of its work;
* a joint-attention transformer (a diffusers ``FluxTransformer2DModel``'s or ``SD3Transformer2DModel``'s
  config: :func:`transformer_shape_of`, :class:`TransformerShape`): 40% of its blocks (at least one),
  each at the transformer's width (heads x head dimension) over the image tokens (the latent the
  transformer reads, in its patches) and the text tokens of the call. A joint block (FLUX.1's
  double-stream block, SD3's joint block) normalises each stream, projects it to queries, keys and values
  with the stream's own weights, attends over the image and text tokens together (queries and keys
  RMS-normalised per head), projects each stream's share back and runs each through its own 4x GELU
  MLP; as many of them as 40% of SD3.5's dual-attention blocks add an attention over the image tokens
  alone. A single block (FLUX.1's single-stream block) runs over the concatenated tokens: one
  normalisation, the query, key and value projections and the MLP's first projection side by side,
  the joint attention, and one output projection over the attention's and the MLP's outputs
  together. The adaptive norms' modulation and the rotary position embedding (elementwise work) are
  left out, as are the embedders and the final layer. The blocks of a kind share one set of weights:
  at these shapes a block's matmuls are bound by compute, not by reading weights, and 40% of
  FLUX.1's own would hold 14 GB in fp32 beside its 48 GB.

Timed interleaved with the baseline (Y B Y B ... Y, :mod:`diffperf.cases.latency`), "baseline vs
yardstick" is one more ratio the gate calibrates and judges. It cancels what moves torch's kernels
and the pipeline alike: the host's speed regime, clocks, thermal state, neighbours' load, thread
placement. It does not cancel a change that slows torch's own kernels for both alike; a torch or
driver upgrade changes the host's fingerprint anyway (:mod:`diffperf.measure.host`), so such a run
is judged against portable bands until the host is calibrated again. Its cost is one yardstick call
per baseline round, each about 40% of the denoiser's share of a baseline call.

:func:`pipeline_shape` reads the shape off a pipeline object and its call's arguments; the session
makes the :class:`Yardstick` from it (diffperf.session.PerfSession.yardstick).
"""

from __future__ import annotations

import contextlib
import inspect
import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F

#: Tokens of the text the UNet attends to (CLIP's context length); SD3's CLIP states in its text sequence.
CONTEXT_TOKENS = 77

#: The slots of the denoisers the yardstick follows, as a diffusers pipeline names them.
DENOISERS = ("unet", "transformer")

#: The config keys each shape follows: a diffusers ``UNet2DConditionModel``'s (:func:`shape_of`) and a
#: joint-attention transformer's (:func:`transformer_shape_of`: ``FluxTransformer2DModel``, ``SD3Transformer2DModel``).
FOLLOWED_CONFIG = {
    "unet": frozenset({"block_out_channels", "down_block_types", "cross_attention_dim"}),
    "transformer": frozenset({"num_attention_heads", "attention_head_dim", "num_layers", "joint_attention_dim"}),
}

#: The share of a transformer's blocks the yardstick runs (of each kind, at least one block in all).
BLOCK_SHARE = 0.4


@dataclass(frozen=True)
class Level:
    """One resolution level of the UNet: its channels, latent size and attention (0 heads: none)."""

    channels: int
    height: int
    width: int
    heads: int
    transformer_layers: int


@dataclass(frozen=True)
class UNetShape:
    """What one yardstick call works on for a UNet: ``steps`` passes over the levels, down, middle and up."""

    batch: int  # latents per UNet call: images x 2 with classifier-free guidance
    levels: tuple[Level, ...]
    context_dim: int
    groups: int
    steps: int
    context_tokens: int = CONTEXT_TOKENS

    def describe(self) -> dict:
        return {
            "batch": self.batch,
            "steps": self.steps,
            "levels": [[level.channels, level.height, level.width, level.heads, level.transformer_layers]
                       for level in self.levels],
            "context": [self.context_tokens, self.context_dim],
        }


@dataclass(frozen=True)
class TransformerShape:
    """What one yardstick call works on for a joint-attention transformer: ``steps`` passes over its blocks."""

    batch: int  # latents per transformer call: images x 2 with classifier-free guidance
    heads: int
    head_dim: int
    image_tokens: int  # the latent's patches
    text_tokens: int  # the call's text sequence
    joint_blocks: int  # the image and text tokens with their own weights, one attention over both
    single_blocks: int  # the tokens concatenated, attention and MLP side by side (FLUX.1's single-stream blocks)
    image_attention_blocks: int  # joint blocks with a second attention over the image tokens (SD3.5's dual attention)
    steps: int

    @property
    def hidden(self) -> int:
        """The transformer's width: heads x head dimension."""
        return self.heads * self.head_dim

    def describe(self) -> dict:
        return {
            "batch": self.batch,
            "steps": self.steps,
            "blocks": [self.joint_blocks, self.single_blocks, self.image_attention_blocks],
            "attention": [self.heads, self.head_dim],
            "tokens": [self.image_tokens, self.text_tokens],
        }


def shape_of(unet_config: Mapping, batch: int, latent_height: int, latent_width: int, steps: int) -> UNetShape:
    """The yardstick's shape for a diffusers ``UNet2DConditionModel`` config (plain data) and one workload."""
    channels = list(unet_config["block_out_channels"])
    count = len(channels)
    heads = unet_config.get("num_attention_heads") or unet_config.get("attention_head_dim") or 8
    heads = _per_level(heads, count)
    layers = _per_level(unet_config.get("transformer_layers_per_block") or 1, count)
    attention = ["CrossAttn" in kind for kind in unet_config["down_block_types"]]
    levels = tuple(
        Level(channels[i], max(1, math.ceil(latent_height / 2**i)), max(1, math.ceil(latent_width / 2**i)),
              heads[i] if attention[i] else 0, layers[i] if attention[i] else 0)
        for i in range(count)
    )
    return UNetShape(batch, levels, int(unet_config["cross_attention_dim"]),
                     int(unet_config.get("norm_num_groups") or 32), steps)


def _per_level(value, count: int) -> list[int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    return [int(item if not isinstance(item, (list, tuple)) else item[0]) for item in values]


def transformer_shape_of(transformer_config: Mapping, batch: int, latent_height: int, latent_width: int,
                         text_tokens: int, steps: int) -> TransformerShape:
    """The yardstick's shape for a joint-attention transformer's config (plain data: a diffusers
    ``FluxTransformer2DModel``'s or ``SD3Transformer2DModel``'s) and one workload.

    ``latent_height`` x ``latent_width`` is the latent the transformer reads (FLUX.1's is packed in 2x2 patches:
    the resolution / 16; SD3's is the resolution / 8), cut into ``patch_size`` patches, one image token each;
    ``text_tokens`` is the call's text sequence. Its joint blocks are 40% of ``num_layers``, its single blocks 40%
    of ``num_single_layers`` (rounded, at least one block in all), and 40% of the ``dual_attention_layers`` add an
    attention over the image tokens alone.
    """
    patch = int(transformer_config.get("patch_size") or 1)
    joint_layers = int(transformer_config["num_layers"])
    single_layers = int(transformer_config.get("num_single_layers") or 0)
    dual_layers = len(transformer_config.get("dual_attention_layers") or ())
    joint, single = _share(joint_layers), _share(single_layers)
    if joint + single == 0:
        joint, single = (1, 0) if joint_layers else (0, 1)
    image_tokens = max(1, math.ceil(latent_height / patch)) * max(1, math.ceil(latent_width / patch))
    return TransformerShape(batch, int(transformer_config["num_attention_heads"]),
                            int(transformer_config["attention_head_dim"]), image_tokens, int(text_tokens), joint,
                            single, min(joint, _share(dual_layers)), steps)


def _share(blocks: int) -> int:
    """The yardstick's share of ``blocks``, rounded half up."""
    return int(BLOCK_SHARE * blocks + 0.5)


# --------------------------------------------------------------------------- the shape of a pipeline's call


def pipeline_shape(pipe, arguments: Mapping, images: int, resolution: int, steps: int
                   ) -> UNetShape | TransformerShape | None:
    """The yardstick's shape for one call of ``pipe`` (a diffusers pipeline object, its denoiser as built or
    loaded): ``arguments`` are the call's (diffperf.models.calls.CallPlan), ``images`` per prompt at
    ``resolution`` (square), ``steps`` denoising steps. None for a pipeline whose denoiser it cannot follow.

    The batch is ``images``, doubled under classifier-free guidance (:func:`classifier_free_guidance`). A UNet's
    latent is the resolution over the pipeline's ``vae_scale_factor``; a transformer's over its image processor's
    (FluxPipeline's is the autoencoder's times the 2x2 packing), with the text tokens of :func:`text_tokens`.
    """
    found = denoiser_of(pipe)
    if found is None or not hasattr(pipe, "vae_scale_factor"):
        return None
    slot, denoiser = found
    config = denoiser.config
    batch = images * (2 if classifier_free_guidance(pipe, arguments) else 1)
    if slot == "unet":
        latent = resolution // pipe.vae_scale_factor
        return shape_of(config, batch, latent, latent, steps)
    text = text_tokens(pipe, arguments)
    if text is None:
        return None
    processor = getattr(getattr(pipe, "image_processor", None), "config", None)
    latent = resolution // (getattr(processor, "vae_scale_factor", None) or pipe.vae_scale_factor)
    return transformer_shape_of(config, batch, latent, latent, text, steps)


def denoiser_of(pipe) -> tuple[str, torch.nn.Module] | None:
    """``pipe``'s denoiser (its slot and the module) if it is one the yardstick follows: a UNet or a transformer
    whose config has the keys of :data:`FOLLOWED_CONFIG`; None otherwise."""
    for slot in DENOISERS:
        module = getattr(pipe, slot, None)
        config = getattr(module, "config", None)
        if config is not None:
            return (slot, module) if FOLLOWED_CONFIG[slot] <= set(config) else None
    return None


def classifier_free_guidance(pipe, arguments: Mapping) -> bool:
    """Whether the call's classifier-free guidance doubles the denoiser's batch: a ``guidance_scale`` above 1 (the
    call's, else the pipeline's default) in a pipeline that guides with it (one with diffusers'
    ``do_classifier_free_guidance``: FluxPipeline's guidance scale is the transformer's guidance embedding) and a
    denoiser that does not take it as an embedding (a UNet with ``time_cond_proj_dim``, LCM's). FluxPipeline's
    ``true_cfg_scale`` with a negative prompt (a second transformer call per step) is not followed."""
    parameters = _call_parameters(pipe)
    if "guidance_scale" in parameters and not hasattr(type(pipe), "do_classifier_free_guidance"):
        return False
    default = parameters["guidance_scale"].default if "guidance_scale" in parameters else None
    scale = arguments.get("guidance_scale", default)
    if isinstance(scale, (int, float)) and scale <= 1:
        return False
    found = denoiser_of(pipe)
    return found is None or found[1].config.get("time_cond_proj_dim") is None


def text_tokens(pipe, arguments: Mapping) -> int | None:
    """The text tokens a transformer call attends to: the T5 sequence (the call's ``max_sequence_length``, else the
    pipeline's default), after CLIP's token states in a pipeline with a third text encoder (StableDiffusion3Pipeline:
    CLIP ViT-L/14's and OpenCLIP's states side by side, then T5's); None when the length is not known."""
    parameters = _call_parameters(pipe)
    default = parameters["max_sequence_length"].default if "max_sequence_length" in parameters else None
    length = arguments.get("max_sequence_length", default)
    if not isinstance(length, int) or isinstance(length, bool):
        return None
    clip = getattr(pipe, "tokenizer_max_length", CONTEXT_TOKENS) if hasattr(pipe, "text_encoder_3") else 0
    return length + int(clip)


def _call_parameters(pipe) -> Mapping[str, inspect.Parameter]:
    """The parameters of ``pipe``'s call (empty for an object that cannot be called)."""
    if not callable(pipe):
        return {}
    try:
        return inspect.signature(pipe).parameters
    except (TypeError, ValueError):
        return {}


# --------------------------------------------------------------------------- the work


def _attend(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, heads: int,
            normalise: bool = False) -> torch.Tensor:
    """Scaled-dot-product attention over (batch, tokens, heads x head_dim) tensors, split into ``heads``;
    ``normalise``: queries and keys RMS-normalised per head first."""
    query, key, value = (t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (query, key, value))
    if normalise:
        query, key = F.rms_norm(query, (query.shape[-1],)), F.rms_norm(key, (key.shape[-1],))
    return F.scaled_dot_product_attention(query, key, value).transpose(1, 2).flatten(2)


class Yardstick:
    """A callable doing the yardstick's work once per call; the device is idle when it returns."""

    def __init__(self, shape: UNetShape | TransformerShape, dtype: torch.dtype, device: torch.device,
                 synchronize: Callable[[], None] = lambda: None, seed: int = 0,
                 settings: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext):
        self.shape = shape
        self.dtype = dtype
        self.device = device
        self.synchronize = synchronize
        self.settings = settings  # the partner's runtime switches (TF32 and the like): both run under the same
        generator = torch.Generator(device="cpu").manual_seed(seed)

        def tensor(*size: int, scale: float | None = None) -> torch.Tensor:
            fan_in = math.prod(size[1:]) or 1
            values = torch.randn(*size, generator=generator) * (scale if scale is not None else fan_in**-0.5)
            return values.to(device=device, dtype=dtype)

        self.work = (_TransformerWork if isinstance(shape, TransformerShape) else _UNetWork)(shape, tensor)

    @property
    def latents(self) -> torch.Tensor:
        """What each pass starts from: the UNet's latents, the transformer's image tokens."""
        return self.work.latents

    def weight_bytes(self) -> int:
        """Bytes of the tensors the yardstick holds (its 'weights', latents and context)."""
        return sum(tensor.numel() * tensor.element_size() for tensor in self.work.tensors())

    @torch.inference_mode()
    def __call__(self) -> None:
        with self.settings():
            for _ in range(self.shape.steps):
                self.work.step()
            self.synchronize()


class _UNetWork:
    """One pass over a UNet's levels: a residual block and the level's transformers, down, middle and up."""

    def __init__(self, shape: UNetShape, tensor: Callable[..., torch.Tensor]):
        self.shape = shape
        first = shape.levels[0]
        self.latents = tensor(shape.batch, first.channels, first.height, first.width, scale=1.0)
        self.context = tensor(shape.batch, shape.context_tokens, shape.context_dim, scale=1.0)
        self.blocks = []
        for level in shape.levels:
            c = level.channels
            block = {"conv1": tensor(c, c, 3, 3), "conv2": tensor(c, c, 3, 3), "down": tensor(c, c, 3, 3),
                     "heads": level.heads, "transformers": []}
            for _ in range(level.transformer_layers):
                block["transformers"].append({
                    "q": tensor(c, c), "k": tensor(c, c), "v": tensor(c, c), "out": tensor(c, c),
                    "cross_q": tensor(c, c), "cross_k": tensor(c, shape.context_dim),
                    "cross_v": tensor(c, shape.context_dim), "cross_out": tensor(c, c),
                    "ff_in": tensor(8 * c, c), "ff_out": tensor(c, 4 * c),
                })
            self.blocks.append(block)
        self.channel_steps = [tensor(b["conv1"].shape[0], a["conv1"].shape[0], 1, 1)
                              for a, b in zip(self.blocks, self.blocks[1:])]

    def tensors(self) -> list[torch.Tensor]:
        tensors = [self.latents, self.context, *self.channel_steps]
        for block in self.blocks:
            tensors += [block["conv1"], block["conv2"], block["down"]]
            tensors += [weight for layer in block["transformers"] for weight in layer.values()]
        return tensors

    def step(self) -> None:
        x = self.latents
        skips = []
        for i, block in enumerate(self.blocks):  # down: a residual block and the transformers, then downsample
            x = self._level(x, block)
            skips.append(x)
            if i + 1 < len(self.blocks):
                x = F.conv2d(x, block["down"], stride=2, padding=1)
                x = F.conv2d(x, self.channel_steps[i])
        x = self._level(x, self.blocks[-1])  # middle
        for i in reversed(range(len(self.blocks))):  # up: the same at each level, from the skip
            x = self._level(x + skips[i], self.blocks[i])
            if i > 0:
                x = F.interpolate(x, size=skips[i - 1].shape[-2:], mode="nearest")
                x = F.conv2d(x, self.channel_steps[i - 1].transpose(0, 1))

    def _level(self, x: torch.Tensor, block: dict) -> torch.Tensor:
        groups = math.gcd(self.shape.groups, x.shape[1])
        h = F.conv2d(F.silu(F.group_norm(x, groups)), block["conv1"], padding=1)
        h = F.conv2d(F.silu(F.group_norm(h, groups)), block["conv2"], padding=1)
        x = x + h
        for layer in block["transformers"]:
            x = self._transformer(x, layer, groups, block["heads"])
        return x

    def _transformer(self, x: torch.Tensor, layer: dict, groups: int, heads: int) -> torch.Tensor:
        batch, channels, height, width = x.shape
        tokens = F.group_norm(x, groups).flatten(2).transpose(1, 2)  # (batch, h*w, channels)
        normed = F.layer_norm(tokens, (channels,))
        tokens = tokens + F.linear(_attend(F.linear(normed, layer["q"]), F.linear(normed, layer["k"]),
                                           F.linear(normed, layer["v"]), heads), layer["out"])
        normed = F.layer_norm(tokens, (channels,))
        tokens = tokens + F.linear(_attend(F.linear(normed, layer["cross_q"]), F.linear(self.context, layer["cross_k"]),
                                           F.linear(self.context, layer["cross_v"]), heads), layer["cross_out"])
        normed = F.layer_norm(tokens, (channels,))
        hidden, gate = F.linear(normed, layer["ff_in"]).chunk(2, dim=-1)
        tokens = tokens + F.linear(hidden * F.gelu(gate), layer["ff_out"])
        return x + tokens.transpose(1, 2).reshape(batch, channels, height, width)


class _TransformerWork:
    """One pass over a joint-attention transformer's share of blocks: the joint blocks, then the single ones.

    The blocks of a kind share one set of weights (see the module's docstring)."""

    def __init__(self, shape: TransformerShape, tensor: Callable[..., torch.Tensor]):
        self.shape = shape
        d = shape.hidden
        self.latents = tensor(shape.batch, shape.image_tokens, d, scale=1.0)  # the embedded image tokens
        self.context = tensor(shape.batch, shape.text_tokens, d, scale=1.0)  # the embedded text tokens

        def attention() -> dict:
            return {"q": tensor(d, d), "k": tensor(d, d), "v": tensor(d, d), "out": tensor(d, d)}

        def stream() -> dict:
            return {**attention(), "mlp_in": tensor(4 * d, d), "mlp_out": tensor(d, 4 * d)}

        self.joint = {"image": stream(), "text": stream()} if shape.joint_blocks else {}
        if shape.image_attention_blocks:
            self.joint["image_attention"] = attention()
        self.single = {"q": tensor(d, d), "k": tensor(d, d), "v": tensor(d, d), "mlp_in": tensor(4 * d, d),
                       "out": tensor(d, 5 * d)} if shape.single_blocks else {}

    def tensors(self) -> list[torch.Tensor]:
        weights = [*self.single.values()]
        for part in self.joint.values():
            weights += part.values()
        return [self.latents, self.context, *weights]

    def step(self) -> None:
        image, text = self.latents, self.context
        for index in range(self.shape.joint_blocks):
            image, text = self._joint(image, text, index < self.shape.image_attention_blocks)
        tokens = torch.cat([text, image], dim=1)
        for _ in range(self.shape.single_blocks):
            tokens = self._single(tokens)

    def _joint(self, image: torch.Tensor, text: torch.Tensor, image_attention: bool):
        heads, streams = self.shape.heads, (self.joint["text"], self.joint["image"])
        normed = [_norm(text), _norm(image)]
        query, key, value = (torch.cat([F.linear(x, weights[name]) for x, weights in zip(normed, streams)], dim=1)
                             for name in ("q", "k", "v"))
        text_out, image_out = _attend(query, key, value, heads, normalise=True).split(
            [text.shape[1], image.shape[1]], dim=1)
        text = text + F.linear(text_out, streams[0]["out"])
        image = image + F.linear(image_out, streams[1]["out"])
        if image_attention:
            weights, x = self.joint["image_attention"], _norm(image)
            image = image + F.linear(_attend(F.linear(x, weights["q"]), F.linear(x, weights["k"]),
                                             F.linear(x, weights["v"]), heads, normalise=True), weights["out"])
        text = text + _mlp(_norm(text), streams[0])
        image = image + _mlp(_norm(image), streams[1])
        return image, text

    def _single(self, tokens: torch.Tensor) -> torch.Tensor:
        weights, x = self.single, _norm(tokens)
        mlp = F.gelu(F.linear(x, weights["mlp_in"]), approximate="tanh")
        attention = _attend(F.linear(x, weights["q"]), F.linear(x, weights["k"]), F.linear(x, weights["v"]),
                            self.shape.heads, normalise=True)
        return tokens + F.linear(torch.cat([attention, mlp], dim=-1), weights["out"])


def _norm(tokens: torch.Tensor) -> torch.Tensor:
    return F.layer_norm(tokens, (tokens.shape[-1],))


def _mlp(tokens: torch.Tensor, weights: dict) -> torch.Tensor:
    """The 4x MLP with tanh-approximated GELU (diffusers' ``gelu-approximate`` FeedForward)."""
    return F.linear(F.gelu(F.linear(tokens, weights["mlp_in"]), approximate="tanh"), weights["mlp_out"])
