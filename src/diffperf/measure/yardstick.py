"""A yardstick of absolute speed: the kinds of work a UNet does, at its shapes, from torch alone.

The gate judges ratios measured in one process, because a ratio cancels what the host's speed does
to both of its members. A variant's speed-up has its reference as partner; a family's fp32 baseline
has none, so a change that makes *every* pipeline slower (a diffusers, scheduler or pipeline
change, a slower attention path chosen for all) moves no speed-up. The yardstick is the baseline's
partner: a fixed sequence of ``torch.nn.functional`` calls (group norm, SiLU, 3x3 convolutions,
layer norm, the attention projections, scaled-dot-product self- and cross-attention, the GEGLU
feed-forward) at the shapes of the baseline's UNet for the case's batch and latent size, in the
baseline's dtype and on its device, with seeded weights. No diffusers code runs in it.

Timed interleaved with the baseline (Y B Y B ... Y, :mod:`diffperf.cases.latency`), "baseline vs
yardstick" is one more ratio the gate calibrates and judges. It cancels what moves torch's kernels
and the pipeline alike: the host's speed regime, clocks, thermal state, neighbours' load, thread
placement. It does not cancel a change that slows torch's own kernels for both alike; a torch or
driver upgrade changes the host's fingerprint anyway (:mod:`diffperf.measure.host`), so such a run
is judged against portable bands until the host is calibrated again. Its cost is one yardstick call
per baseline round, each about 40% of the UNet's share of a baseline call (one residual block and
the level's transformer blocks per level on the way down and up, where the UNet has two and three).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass
from typing import Callable, Mapping

import torch
import torch.nn.functional as F

#: Tokens of the text the UNet attends to (CLIP's context length).
CONTEXT_TOKENS = 77

#: The UNet config keys :func:`shape_of` follows (a diffusers ``UNet2DConditionModel``'s).
FOLLOWED_CONFIG = frozenset({"block_out_channels", "down_block_types", "cross_attention_dim"})


@dataclass(frozen=True)
class Level:
    """One resolution level of the UNet: its channels, latent size and attention (0 heads: none)."""

    channels: int
    height: int
    width: int
    heads: int
    transformer_layers: int


@dataclass(frozen=True)
class YardstickShape:
    """What one yardstick call works on: ``steps`` passes over the levels, down, middle and up."""

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


def shape_of(unet_config: Mapping, batch: int, latent_height: int, latent_width: int, steps: int) -> YardstickShape:
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
    return YardstickShape(batch, levels, int(unet_config["cross_attention_dim"]),
                          int(unet_config.get("norm_num_groups") or 32), steps)


def _per_level(value, count: int) -> list[int]:
    values = list(value) if isinstance(value, (list, tuple)) else [value] * count
    return [int(item if not isinstance(item, (list, tuple)) else item[0]) for item in values]


class Yardstick:
    """A callable doing the yardstick's work once per call; the device is idle when it returns."""

    def __init__(self, shape: YardstickShape, dtype: torch.dtype, device: torch.device,
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

    def weight_bytes(self) -> int:
        """Bytes of the tensors the yardstick holds (its 'weights', latents and context)."""
        tensors = [self.latents, self.context, *self.channel_steps]
        for block in self.blocks:
            tensors += [block["conv1"], block["conv2"], block["down"]]
            tensors += [weight for layer in block["transformers"] for weight in layer.values()]
        return sum(tensor.numel() * tensor.element_size() for tensor in tensors)

    @torch.inference_mode()
    def __call__(self) -> None:
        with self.settings():
            for _ in range(self.shape.steps):
                self._step()
            self.synchronize()

    def _step(self) -> None:
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

        def attend(query, key, value):
            split = [t.unflatten(-1, (heads, -1)).transpose(1, 2) for t in (query, key, value)]
            return F.scaled_dot_product_attention(*split).transpose(1, 2).flatten(2)

        normed = F.layer_norm(tokens, (channels,))
        tokens = tokens + F.linear(attend(F.linear(normed, layer["q"]), F.linear(normed, layer["k"]),
                                          F.linear(normed, layer["v"])), layer["out"])
        normed = F.layer_norm(tokens, (channels,))
        tokens = tokens + F.linear(attend(F.linear(normed, layer["cross_q"]), F.linear(self.context, layer["cross_k"]),
                                          F.linear(self.context, layer["cross_v"])), layer["cross_out"])
        normed = F.layer_norm(tokens, (channels,))
        hidden, gate = F.linear(normed, layer["ff_in"]).chunk(2, dim=-1)
        tokens = tokens + F.linear(hidden * F.gelu(gate), layer["ff_out"])
        return x + tokens.transpose(1, 2).reshape(batch, channels, height, width)
