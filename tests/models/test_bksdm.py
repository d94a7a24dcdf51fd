"""Unit tests for diffperf.models.bksdm: BK-SDM students (block removal and teacher-initialised weights).

Parameter counts use the ``full`` profile on the meta device; weight copies use the ``tiny`` profile.
"""

from __future__ import annotations

import copy

import pytest
import torch

from diffperf.models import sd1, zoo
from diffperf.models.bksdm import STUDENTS, derive_student, student_config, teacher_key
from diffperf.models.store import clone_module

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def full_teacher():
    return zoo.SyntheticSource("full", CPU).build(sd1.FAMILY, "unet", meta=True)


@pytest.fixture(scope="module")
def tiny_teacher():
    return zoo.SyntheticSource("tiny", CPU).build(sd1.FAMILY, "unet")


@pytest.fixture(scope="module")
def tiny_students(tiny_teacher):
    return {student: derive_student(tiny_teacher, student) for student in STUDENTS}


def state(module: torch.nn.Module) -> dict:
    return module.state_dict()


def assert_same_weights(student_module: torch.nn.Module, teacher_module: torch.nn.Module) -> None:
    """Two sub-modules hold equal tensors under the same names."""
    student_state, teacher_state = state(student_module), state(teacher_module)
    assert student_state.keys() == teacher_state.keys()
    assert student_state  # not vacuous
    for key, tensor in student_state.items():
        assert torch.equal(tensor, teacher_state[key]), key


# --------------------------------------------------------------------------- full profile (meta)


@pytest.mark.parametrize(
    ("student", "parameters"),
    [("base", 579_384_964), ("small", 482_346_884), ("tiny", 323_384_964)],
)
def test_full_profile_student_parameter_counts(full_teacher, student, parameters):
    model = derive_student(full_teacher, student, meta=True)
    assert zoo.count_parameters(model) == parameters
    assert all(parameter.is_meta for parameter in model.parameters())
    assert zoo.count_parameters(full_teacher) == 859_520_964  # the teacher is untouched


def test_full_profile_student_structure(full_teacher):
    base = derive_student(full_teacher, "base", meta=True)
    small = derive_student(full_teacher, "small", meta=True)
    tiny = derive_student(full_teacher, "tiny", meta=True)
    for model in (base, small):
        assert [len(block.resnets) for block in model.down_blocks] == [1, 1, 1, 1]
        assert [len(block.resnets) for block in model.up_blocks] == [2, 2, 2, 2]
        assert [len(block.attentions) for block in model.down_blocks[:3]] == [1, 1, 1]
        assert [len(block.attentions) for block in model.up_blocks[1:]] == [2, 2, 2]
    assert base.mid_block is not None
    assert small.mid_block is None and tiny.mid_block is None
    assert len(tiny.down_blocks) == 3 and len(tiny.up_blocks) == 3
    assert [len(block.attentions) for block in tiny.up_blocks] == [2, 2, 2]
    assert not any(parameter.requires_grad for parameter in small.parameters())


@pytest.mark.parametrize("student", STUDENTS)
def test_student_config(student):
    config = student_config({**sd1.UNET, "_class_name": "UNet2DConditionModel"}, student)
    assert config["layers_per_block"] == 1
    assert "_class_name" not in config
    assert config["cross_attention_dim"] == 768  # everything else is the teacher's
    if student == "base":
        assert config["mid_block_type"] == "UNetMidBlock2DCrossAttn"
    else:
        assert config["mid_block_type"] is None
    if student == "tiny":
        assert config["block_out_channels"] == [320, 640, 1280]
        assert config["down_block_types"] == ["CrossAttnDownBlock2D"] * 3
        assert config["up_block_types"] == ["CrossAttnUpBlock2D"] * 3
    else:
        assert config["block_out_channels"] == [320, 640, 1280, 1280]
        assert config["down_block_types"] == sd1.UNET["down_block_types"]
        assert config["up_block_types"] == sd1.UNET["up_block_types"]


def test_student_config_leaves_the_teacher_config_alone():
    teacher = copy.deepcopy(sd1.UNET)
    student_config(teacher, "tiny")
    assert teacher == sd1.UNET


def test_unknown_student():
    with pytest.raises(ValueError, match=r"^unknown BK-SDM student 'huge': choose one of base, small, tiny$"):
        student_config(sd1.UNET, "huge")


# --------------------------------------------------------------------------- teacher_key


@pytest.mark.parametrize(
    ("student_key", "student", "expected"),
    [
        # Down stages keep the teacher's first resnet and attention: same names.
        ("down_blocks.0.resnets.0.conv1.weight", "small", "down_blocks.0.resnets.0.conv1.weight"),
        ("down_blocks.2.attentions.0.proj_in.weight", "base", "down_blocks.2.attentions.0.proj_in.weight"),
        ("down_blocks.1.downsamplers.0.conv.weight", "tiny", "down_blocks.1.downsamplers.0.conv.weight"),
        ("conv_in.weight", "tiny", "conv_in.weight"),
        ("time_embedding.linear_1.weight", "small", "time_embedding.linear_1.weight"),
        ("mid_block.attentions.0.proj_out.bias", "base", "mid_block.attentions.0.proj_out.bias"),
        # Up stages drop the teacher's middle layer: student index 1 is teacher index 2.
        ("up_blocks.0.resnets.0.conv1.weight", "small", "up_blocks.0.resnets.0.conv1.weight"),
        ("up_blocks.0.resnets.1.conv1.weight", "small", "up_blocks.0.resnets.2.conv1.weight"),
        ("up_blocks.3.resnets.1.conv_shortcut.weight", "base", "up_blocks.3.resnets.2.conv_shortcut.weight"),
        ("up_blocks.1.attentions.1.proj_in.weight", "base", "up_blocks.1.attentions.2.proj_in.weight"),
        ("up_blocks.3.attentions.1.transformer_blocks.0.attn2.to_k.weight", "small",
         "up_blocks.3.attentions.2.transformer_blocks.0.attn2.to_k.weight"),
        ("up_blocks.2.upsamplers.0.conv.weight", "small", "up_blocks.2.upsamplers.0.conv.weight"),
        # bk-sdm-tiny's up stage i is the teacher's stage i + 1.
        ("up_blocks.0.resnets.0.norm1.weight", "tiny", "up_blocks.1.resnets.0.norm1.weight"),
        ("up_blocks.0.resnets.1.conv1.weight", "tiny", "up_blocks.1.resnets.2.conv1.weight"),
        ("up_blocks.2.attentions.1.proj_out.weight", "tiny", "up_blocks.3.attentions.2.proj_out.weight"),
        ("up_blocks.1.upsamplers.0.conv.bias", "tiny", "up_blocks.2.upsamplers.0.conv.bias"),
    ],
)
def test_teacher_key(student_key, student, expected):
    assert teacher_key(student_key, student) == expected


# --------------------------------------------------------------------------- tiny profile: real copies


@pytest.mark.parametrize("student", STUDENTS)
def test_every_student_weight_equals_its_teacher_weight(tiny_teacher, tiny_students, student):
    teacher_state = state(tiny_teacher)
    student_state = state(tiny_students[student])
    assert len(student_state) > 100
    for key, tensor in student_state.items():
        source = teacher_state[teacher_key(key, student)]
        assert tensor.shape == source.shape, key
        assert torch.equal(tensor, source), key
        assert tensor.data_ptr() != source.data_ptr(), key  # a copy, not an alias


@pytest.mark.parametrize("student", ["base", "small"])
def test_up_stage_second_layer_is_teacher_third(tiny_teacher, tiny_students, student):
    model = tiny_students[student]
    for i in range(4):
        assert_same_weights(model.up_blocks[i].resnets[0], tiny_teacher.up_blocks[i].resnets[0])
        assert_same_weights(model.up_blocks[i].resnets[1], tiny_teacher.up_blocks[i].resnets[2])
        # ... and not the teacher's middle one (random weights never coincide).
        assert not torch.equal(
            model.up_blocks[i].resnets[1].conv2.weight, tiny_teacher.up_blocks[i].resnets[1].conv2.weight
        )
    for i in range(1, 4):
        assert_same_weights(model.up_blocks[i].attentions[0], tiny_teacher.up_blocks[i].attentions[0])
        assert_same_weights(model.up_blocks[i].attentions[1], tiny_teacher.up_blocks[i].attentions[2])
    for i in range(4):
        assert_same_weights(model.down_blocks[i].resnets[0], tiny_teacher.down_blocks[i].resnets[0])
    for i in range(3):
        assert_same_weights(model.down_blocks[i].attentions[0], tiny_teacher.down_blocks[i].attentions[0])
    assert_same_weights(model.conv_out, tiny_teacher.conv_out)
    if student == "base":
        assert_same_weights(model.mid_block, tiny_teacher.mid_block)


def test_tiny_student_up_stages_are_the_teachers_next(tiny_teacher, tiny_students):
    model = tiny_students["tiny"]
    for i in range(3):
        teacher_block = tiny_teacher.up_blocks[i + 1]
        assert_same_weights(model.up_blocks[i].resnets[0], teacher_block.resnets[0])
        assert_same_weights(model.up_blocks[i].resnets[1], teacher_block.resnets[2])
        assert_same_weights(model.up_blocks[i].attentions[0], teacher_block.attentions[0])
        assert_same_weights(model.up_blocks[i].attentions[1], teacher_block.attentions[2])
    assert_same_weights(model.up_blocks[0].upsamplers, tiny_teacher.up_blocks[1].upsamplers)
    assert_same_weights(model.up_blocks[1].upsamplers, tiny_teacher.up_blocks[2].upsamplers)
    assert model.up_blocks[2].upsamplers is None and tiny_teacher.up_blocks[3].upsamplers is None
    for i in range(3):
        assert_same_weights(model.down_blocks[i].resnets[0], tiny_teacher.down_blocks[i].resnets[0])


def test_perturbed_teacher_gives_different_students(tiny_teacher, tiny_students):
    """The weights really come from the teacher: changing the teacher changes the student."""
    perturbed = copy.deepcopy(tiny_teacher)
    with torch.no_grad():
        for parameter in perturbed.parameters():
            parameter.add_(0.5)
    for student in STUDENTS:
        original = state(tiny_students[student])
        changed = state(derive_student(perturbed, student))
        for key in original:
            if original[key].is_floating_point():
                assert not torch.equal(changed[key], original[key]), (student, key)
                assert torch.equal(changed[key], original[key] + 0.5), (student, key)


def test_single_teacher_tensor_moves_only_its_student_tensor(tiny_teacher, tiny_students):
    perturbed = copy.deepcopy(tiny_teacher)
    with torch.no_grad():
        perturbed.up_blocks[0].resnets[2].conv1.weight.mul_(-1.0)
    original = state(tiny_students["small"])
    changed = state(derive_student(perturbed, "small"))
    moved = [key for key in original if not torch.equal(changed[key], original[key])]
    assert moved == ["up_blocks.0.resnets.1.conv1.weight"]
    assert torch.equal(changed[moved[0]], -original[moved[0]])


def test_teacher_changes_after_derivation_do_not_reach_the_student(tiny_teacher):
    teacher = copy.deepcopy(tiny_teacher)
    student = derive_student(teacher, "small")
    before = student.conv_in.weight.clone()
    with torch.no_grad():
        teacher.conv_in.weight.zero_()
    assert torch.equal(student.conv_in.weight, before)


@pytest.mark.parametrize("student", STUDENTS)
def test_students_run(tiny_students, student):
    model = tiny_students[student]
    assert not model.training
    assert not any(parameter.requires_grad for parameter in model.parameters())
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(1, 4, 16, 16, generator=generator)
    hidden = torch.randn(1, 77, 64, generator=generator)
    with torch.no_grad():
        out = model(sample, 10, hidden).sample
    assert out.shape == (1, 4, 16, 16)
    assert torch.isfinite(out).all()


def test_half_precision_teacher_gives_half_precision_student(tiny_teacher):
    teacher = clone_module(tiny_teacher, dtype=torch.float16)
    student = derive_student(teacher, "small")
    assert student.dtype == torch.float16
    teacher_state = state(teacher)
    for key, tensor in state(student).items():
        assert torch.equal(tensor, teacher_state[teacher_key(key, "small")]), key


def test_distilled_component_is_the_small_student():
    component = sd1.FAMILY.component("bk-sdm-small")
    assert component.teacher == "unet" and component.fills == "unet"
    source = zoo.SyntheticSource("tiny", CPU)
    distilled = source.build(sd1.FAMILY, "bk-sdm-small")
    expected = derive_student(source.build(sd1.FAMILY, "unet"), "small")
    assert distilled.config.mid_block_type is None and distilled.config.layers_per_block == 1
    assert_same_weights(distilled, expected)
