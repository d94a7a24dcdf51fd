"""Pipeline components that compute on meta tensors: the FLOPs of a full-size call without its memory or time.

A :class:`MetaModule` stands in a pipeline for a component built on the ``meta`` device: the pipeline
itself runs on the CPU as it always does (its scheduler, latents and tokenizers are real, and small),
and every call into the component, ``forward`` or another method (``vae.decode``, ``encode_prompt``'s
text encoder), moves its tensor arguments to ``meta``, runs the real module's code there (so
``torch.utils.flop_counter`` sees every matmul, convolution and attention at full size), and hands
back zeros of the output's shapes and dtypes on the CPU. A 12-billion-parameter transformer is
counted this way in seconds on a machine that could not hold its weights.
"""

from __future__ import annotations

import inspect

import torch

META = torch.device("meta")


def _converted(value, tensor):
    """``value`` with ``tensor`` applied to each tensor in it, through lists, tuples and dicts (diffusers' BaseOutput
    and transformers' ModelOutput are ordered dicts, rebuilt as their own class)."""
    if isinstance(value, torch.Tensor):
        return tensor(value)
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        return type(value)(_converted(item, tensor) for item in value)
    if isinstance(value, dict):
        converted = {key: _converted(item, tensor) for key, item in value.items()}
        return converted if type(value) is dict else type(value)(**converted)
    return value


def _to_meta(value):
    return _converted(value, lambda tensor: tensor.to(META))


def _to_cpu(value):
    """Zeros on the CPU in place of each meta tensor (the pipeline reads shapes and dtypes, never the values)."""
    return _converted(value, lambda tensor: torch.zeros(tensor.shape, dtype=tensor.dtype)
                      if tensor.device.type == "meta" else tensor)


class MetaModule(torch.nn.Module):
    """A component built on the meta device, called from a pipeline that runs on the CPU (module docstring)."""

    def __init__(self, module: torch.nn.Module):
        super().__init__()
        self.inner = module

    def forward(self, *args, **kwargs):
        return _to_cpu(self.inner(*_to_meta(args), **_to_meta(kwargs)))

    def __getattr__(self, name: str):
        """What the module does not have itself comes from the wrapped one; its methods (``vae.decode``) run on
        meta tensors as ``forward`` does."""
        inner = super().__getattr__("inner")  # a submodule: nn.Module keeps it in _modules
        if name == "inner":
            return inner
        attribute = getattr(inner, name)
        if inspect.ismethod(attribute) and attribute.__self__ is inner:
            def on_meta(*args, **kwargs):
                return _to_cpu(attribute(*_to_meta(args), **_to_meta(kwargs)))
            return on_meta
        return attribute

    @property
    def dtype(self) -> torch.dtype:
        return self.inner.dtype

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def to(self, *args, **kwargs):
        """A dtype change goes to the module (SDXL's VAE upcast); devices stay as they are."""
        dtype = kwargs.get("dtype") or next((arg for arg in args if isinstance(arg, torch.dtype)), None)
        if dtype is not None:
            self.inner.to(dtype=dtype)
        return self
