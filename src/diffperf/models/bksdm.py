"""BK-SDM students derived from any SD v1 UNet, as BK-SDM does it (arXiv 2305.15798).

Block removal follows Nota-NetsPresso/BK-SDM src/unet_config/bk_*/config.json; the weights are
copied from the teacher by name as in src/kd_train_text_to_image.py (copy_weight_from_teacher).
"""

from __future__ import annotations

from diffusers import UNet2DConditionModel

from diffperf.models.students import derive_unet, plain_config

STUDENTS = ("base", "small", "tiny")


def student_config(teacher_config: dict, student: str) -> dict:
    """The student's UNet config: fewer layers per block, no mid block (small, tiny), 3 stages (tiny)."""
    if student not in STUDENTS:
        raise ValueError(f"unknown BK-SDM student {student!r}: choose one of {', '.join(STUDENTS)}")
    config = plain_config(teacher_config)
    config["layers_per_block"] = 1  # down stages keep 1 resnet (+1 attention), up stages keep 2 of 3
    if student in ("small", "tiny"):
        config["mid_block_type"] = None
    if student == "tiny":  # drop the innermost stage: the teacher's last down and first up block
        config["block_out_channels"] = list(config["block_out_channels"])[:-1]
        config["down_block_types"] = list(config["down_block_types"])[:-1]
        config["up_block_types"] = list(config["up_block_types"])[1:]
    return config


def teacher_key(student_key: str, student: str) -> str:
    """The teacher parameter a student parameter is initialised from.

    The student's up stages keep the teacher's layers 0 and 2 (the middle one is dropped), so student
    ``up_blocks.i.{resnets,attentions}.1`` comes from the teacher's index 2; bk-sdm-tiny's up stage i
    is the teacher's stage i + 1. Every other parameter keeps its name (down stages keep layer 0).
    """
    parts = student_key.split(".")
    if parts[0] != "up_blocks":
        return student_key
    if student == "tiny":
        parts[1] = str(int(parts[1]) + 1)
    if parts[2] in ("resnets", "attentions") and parts[3] == "1":
        parts[3] = "2"
    return ".".join(parts)


def derive_student(teacher: UNet2DConditionModel, student: str, meta: bool = False) -> UNet2DConditionModel:
    """Build a BK-SDM student of ``teacher`` with its weights copied from the teacher.

    ``meta=True`` builds the structure only (no memory, no copy), to count parameters.
    """
    return derive_unet(teacher, student_config(teacher.config, student), lambda key: teacher_key(key, student), meta)
