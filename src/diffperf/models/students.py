"""Students derived from a teacher UNet as code: blocks removed, every kept weight copied by name.

Both families' students are built the same way: the student's config is the teacher's with
fewer layers, blocks or transformer layers, and each student tensor is copied from the teacher
tensor that ``teacher_key`` names (diffperf.models.bksdm for BK-SDM, diffperf.models.sdxl_students
for SSD-1B, Segmind-Vega and KOALA).
"""

from __future__ import annotations

from typing import Callable

import torch
from diffusers import UNet2DConditionModel


def plain_config(config) -> dict:
    """A model config without diffusers' private keys (``_class_name``, ``_diffusers_version``, ...)."""
    return {key: value for key, value in dict(config).items() if not key.startswith("_")}


@torch.no_grad()
def derive_unet(teacher: UNet2DConditionModel, config: dict, teacher_key: Callable[[str], str] | None = None,
                meta: bool = False) -> UNet2DConditionModel:
    """A UNet built from ``config`` with each tensor copied from ``teacher_key(name)`` of ``teacher``.

    ``meta=True`` builds the structure only (no memory, no copy), to count parameters.
    """
    with torch.device("meta" if meta else teacher.device):
        model = UNet2DConditionModel.from_config(config)
    model.requires_grad_(False)  # an inference copy, like every other component
    if meta:
        return model.eval()
    if model.dtype != teacher.dtype:
        model.to(dtype=teacher.dtype)
    teacher_state = teacher.state_dict()
    for key, tensor in model.state_dict().items():
        tensor.copy_(teacher_state[teacher_key(key)])
    return model.eval()
