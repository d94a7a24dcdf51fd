"""SDXL's published students, derived from the SDXL UNet as code: SSD-1B, Segmind-Vega and KOALA-700M.

Each was made from SDXL's UNet by removing blocks and transformer layers and distilling (Segmind:
arXiv 2401.02677; KOALA: arXiv 2312.04005). Their architectures, as diffusers configs:

* **SSD-1B** (segmind/SSD-1B): transformer layers per block [1, 2, 4] down and [[4, 4, 10],
  [2, 1, 1]] up (``reverse_transformer_layers_per_block``), and a mid block of one resnet
  (``UNetMidBlock2D``) instead of SDXL's two resnets around 10 transformer layers.
* **Segmind-Vega** (segmind/Segmind-Vega): [1, 1, 2] down and [2, 1] up, the same one-resnet mid block.
* **KOALA-700M** (etri-vilab/koala-700m): one resnet per down stage and two per up stage
  (``layers_per_block`` 1, as BK-SDM), [1, 2, 5] transformer layers, no mid block.

The block and layer counts are those the published weights have (they give the published
parameter counts exactly: docs/variants.md). Which of the teacher's layers each kept layer comes
from is not published: a stack of 10 transformer layers cut to 4 keeps layers 0, 1, 2 and 6, the
ones a comparison of SSD-1B's and SDXL's weights by cosine similarity found (furusu/SSD-1B-anime);
every other cut keeps the first layers, which is what that comparison found for 2 cut to 1.
Resnets follow BK-SDM: down stages keep their first, up stages their first and last; a one-resnet
mid block keeps the teacher's first mid resnet. Latency does not depend on which layers are kept.
"""

from __future__ import annotations

from diffusers import UNet2DConditionModel

from diffperf.models.students import derive_unet, plain_config

STUDENTS: dict[str, dict] = {
    "ssd-1b": {
        "transformer_layers_per_block": [1, 2, 4],
        "reverse_transformer_layers_per_block": [[4, 4, 10], [2, 1, 1], 1],
        "mid_block_type": "UNetMidBlock2D",
    },
    "segmind-vega": {
        "transformer_layers_per_block": [1, 1, 2],
        "mid_block_type": "UNetMidBlock2D",
    },
    "koala-700m": {
        "layers_per_block": 1,
        "transformer_layers_per_block": [1, 2, 5],
        "mid_block_type": None,
    },
}

KEPT_LAYERS = {(10, 4): (0, 1, 2, 6)}
"""Which teacher transformer layers a cut stack keeps, where known (this module's docstring);
others keep the first ones."""


def student_config(teacher_config: dict, student: str) -> dict:
    if student not in STUDENTS:
        raise ValueError(f"unknown SDXL student {student!r}: choose one of {', '.join(STUDENTS)}")
    return {**plain_config(teacher_config), **STUDENTS[student]}


def kept_layers(teacher_depth: int, student_depth: int) -> tuple[int, ...]:
    """The teacher's transformer layers a stack of ``student_depth`` keeps of ``teacher_depth``."""
    if student_depth > teacher_depth:
        raise ValueError(f"a student stack of {student_depth} transformer layers cannot come from {teacher_depth}")
    return KEPT_LAYERS.get((teacher_depth, student_depth), tuple(range(student_depth)))


class TeacherKeys:
    """Maps a student parameter's name to the teacher parameter it is copied from."""

    def __init__(self, teacher: UNet2DConditionModel, student: UNet2DConditionModel):
        self.teacher = teacher
        self.student = student
        self.fewer_up_layers = student.config.layers_per_block < teacher.config.layers_per_block
        self._depths: dict[tuple[str, str], int] = {}

    def _depth(self, model: UNet2DConditionModel, which: str, prefix: str) -> int:
        key = (which, prefix)
        if key not in self._depths:
            self._depths[key] = len(model.get_submodule(prefix).transformer_blocks)
        return self._depths[key]

    def __call__(self, student_key: str) -> str:
        parts = student_key.split(".")
        teacher_parts = list(parts)
        if parts[0] == "up_blocks" and self.fewer_up_layers and parts[2] in ("resnets", "attentions") \
                and parts[3] == "1":
            teacher_parts[3] = "2"  # up stages keep the teacher's first and last layer (BK-SDM)
        if "transformer_blocks" in parts:
            at = parts.index("transformer_blocks")
            student_depth = self._depth(self.student, "student", ".".join(parts[:at]))
            teacher_depth = self._depth(self.teacher, "teacher", ".".join(teacher_parts[:at]))
            teacher_parts[at + 1] = str(kept_layers(teacher_depth, student_depth)[int(parts[at + 1])])
        return ".".join(teacher_parts)


def derive_sdxl_student(teacher: UNet2DConditionModel, student: str, meta: bool = False) -> UNet2DConditionModel:
    """Build ``student`` from an SDXL-structured ``teacher`` with its weights copied from the teacher."""
    config = student_config(teacher.config, student)
    structure = derive_unet(teacher, config, meta=True)
    return structure if meta else derive_unet(teacher, config, TeacherKeys(teacher, structure))
