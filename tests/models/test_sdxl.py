"""Unit tests of the SDXL family: the exact full-size architectures, a tiny profile that keeps their
structure, the students derived from the teacher (SSD-1B, Segmind-Vega, KOALA-700M), TAESDXL,
SDXL's fp16 upcast, and the hub loading path on a saved tiny SDXL pipeline."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionXLPipeline
from diffusers.models.unets.unet_2d_blocks import UNetMidBlock2D
from transformers import CLIPTextModel, CLIPTextModelWithProjection

from diffperf.cases.similarity import raw_output
from diffperf.models import sdxl
from diffperf.models.builtin import builtin_registry
from diffperf.models.sdxl_students import STUDENTS, TeacherKeys, derive_sdxl_student, kept_layers
from diffperf.models.store import PipelineStore
from diffperf.models.zoo import HubSource, SyntheticSource, count_parameters, save_synthetic_pipeline

CPU = torch.device("cpu")
FAMILY = sdxl.FAMILY
SDXL_UNET = 2_567_463_684


def meta(profile: str, name: str) -> torch.nn.Module:
    return SyntheticSource(profile, CPU).build(FAMILY, name, meta=True)


def depths(unet) -> dict:
    """Transformer layers of every attention block, by block: what the students cut."""
    found = {}
    for kind in ("down_blocks", "up_blocks"):
        for index, block in enumerate(getattr(unet, kind)):
            found[f"{kind}.{index}"] = [len(attention.transformer_blocks) for attention in getattr(block, "attentions", [])]
    attentions = getattr(unet.mid_block, "attentions", None) or []
    found["mid_block"] = [len(attention.transformer_blocks) for attention in attentions]
    return found


@pytest.fixture(scope="module")
def tiny_teacher():
    return SyntheticSource("tiny", CPU).build(FAMILY, "unet")


@pytest.fixture(scope="module")
def tiny_students(tiny_teacher):
    return {name: derive_sdxl_student(tiny_teacher, name) for name in STUDENTS}


@pytest.fixture(scope="module")
def store():
    return PipelineStore(builtin_registry(), SyntheticSource("tiny", CPU), CPU)


# --------------------------------------------------------------------------- full-size architectures


@pytest.mark.parametrize(("component", "cls", "parameters"), [
    ("unet", None, SDXL_UNET),
    ("text_encoder", CLIPTextModel, 123_060_480),  # CLIP ViT-L/14, as SD v1's
    ("text_encoder_2", CLIPTextModelWithProjection, 694_659_840),  # OpenCLIP ViT-bigG/14 with its projection
    ("vae", AutoencoderKL, 83_653_863),
    ("taesdxl", None, 2_445_063),
])
def test_full_profile_parameter_counts(component, cls, parameters):
    module = meta("full", component)
    assert cls is None or type(module) is cls
    assert count_parameters(module) == parameters
    declared = FAMILY.component(component).published_parameters
    assert declared is None or declared == parameters


def test_full_unet_conditioning_adds_up():
    unet = sdxl.UNET
    assert unet["cross_attention_dim"] == sdxl.TEXT_ENCODER_2["hidden_size"] + 768  # penultimate states, concatenated
    assert unet["projection_class_embeddings_input_dim"] == (sdxl.TEXT_ENCODER_2["projection_dim"]
                                                            + 6 * unet["addition_time_embed_dim"])
    assert depths(meta("full", "unet")) == {"down_blocks.0": [], "down_blocks.1": [2, 2], "down_blocks.2": [10, 10],
                                            "up_blocks.0": [10, 10, 10], "up_blocks.1": [2, 2, 2], "up_blocks.2": [],
                                            "mid_block": [10]}
    assert sdxl.VAE["force_upcast"] and sdxl.VAE["scaling_factor"] == 0.13025


def test_full_students_meet_the_published_sizes():
    teacher = meta("full", "unet")
    ssd, vega, koala = (count_parameters(meta("full", name)) for name in ("ssd-1b", "segmind-vega", "koala-700m"))
    # Segmind: SSD-1B "1.3B parameters", "50% smaller" than SDXL.
    assert round(ssd / 1e9, 1) == 1.3 and ssd / SDXL_UNET < 0.52
    # Segmind: Vega 745M, "Down Block 247M, Mid Block 31M, Up Block 460M".
    vega_unet = meta("full", "segmind-vega")
    blocks = [sum(count_parameters(block) for block in vega_unet.down_blocks), count_parameters(vega_unet.mid_block),
              sum(count_parameters(block) for block in vega_unet.up_blocks)]
    assert round(vega / 1e6) == 745 and [round(count / 1e6) for count in blocks] == [247, 31, 460]
    # ETRI: KOALA-700M "reduces the model size by 69%" of SDXL's UNet.
    assert int(100 * (1 - koala / count_parameters(teacher))) == 69


@pytest.mark.parametrize(("student", "expected"), [
    ("ssd-1b", {"down_blocks.0": [], "down_blocks.1": [2, 2], "down_blocks.2": [4, 4], "up_blocks.0": [4, 4, 10],
                "up_blocks.1": [2, 1, 1], "up_blocks.2": [], "mid_block": []}),
    ("segmind-vega", {"down_blocks.0": [], "down_blocks.1": [1, 1], "down_blocks.2": [2, 2], "up_blocks.0": [2, 2, 2],
                      "up_blocks.1": [1, 1, 1], "up_blocks.2": [], "mid_block": []}),
    ("koala-700m", {"down_blocks.0": [], "down_blocks.1": [2], "down_blocks.2": [5], "up_blocks.0": [5, 5],
                    "up_blocks.1": [2, 2], "up_blocks.2": [], "mid_block": []}),
])
def test_students_remove_transformer_layers_and_blocks(student, expected):
    for profile in ("full", "tiny"):
        unet = meta(profile, student)
        assert depths(unet) == expected, profile
        if student == "koala-700m":
            assert unet.mid_block is None
            assert [len(block.resnets) for block in unet.down_blocks] == [1, 1, 1]
            assert [len(block.resnets) for block in unet.up_blocks] == [2, 2, 2]
        else:  # one resnet instead of SDXL's two resnets around ten transformer layers
            assert type(unet.mid_block) is UNetMidBlock2D and len(unet.mid_block.resnets) == 1
            assert not unet.mid_block.attentions or unet.mid_block.attentions == [None]


# --------------------------------------------------------------------------- the tiny profile


def test_tiny_profile_keeps_the_structure():
    unet, full = sdxl.TINY_UNET, sdxl.UNET
    for key in ("down_block_types", "up_block_types", "mid_block_type", "transformer_layers_per_block",
                "layers_per_block", "addition_embed_type", "use_linear_projection"):
        assert unet[key] == full[key], key
    first, second = sdxl.TINY_TEXT_ENCODER, sdxl.TINY_TEXT_ENCODER_2
    assert unet["cross_attention_dim"] == first["hidden_size"] + second["hidden_size"]
    assert unet["projection_class_embeddings_input_dim"] == second["projection_dim"] + 6 * unet["addition_time_embed_dim"]
    assert second["num_hidden_layers"] > first["num_hidden_layers"] and second["hidden_act"] == "gelu"
    assert sdxl.TINY_VAE["force_upcast"] and sdxl.TINY_VAE["scaling_factor"] == sdxl.VAE["scaling_factor"]
    assert count_parameters(meta("tiny", "unet")) < 20e6


def test_scenarios_run_at_sdxl_native_size_with_euler():
    for scenario in FAMILY.scenarios:
        assert (scenario.resolution, scenario.scheduler) == (1024, "euler")
        assert type(FAMILY.make_scheduler(scenario.scheduler)) is EulerDiscreteScheduler
    astronaut, vase = (FAMILY.scenario(name) for name in ("astronaut-xl", "vase-xl"))
    assert (astronaut.images, astronaut.steps, vase.images) == (1, 50, 4)
    tiny = astronaut.scaled(FAMILY.scale("tiny"))
    assert (tiny.resolution, tiny.steps) == (128, 3)
    assert astronaut.scaled(FAMILY.scale("full")) == astronaut


# --------------------------------------------------------------------------- students derived from the teacher


@pytest.mark.parametrize("student", STUDENTS)
def test_every_student_tensor_is_its_teacher_tensor(tiny_teacher, tiny_students, student):
    keys = TeacherKeys(tiny_teacher, tiny_students[student])
    teacher_state = tiny_teacher.state_dict()
    for name, tensor in tiny_students[student].state_dict().items():
        assert torch.equal(tensor, teacher_state[keys(name)]), name


def test_kept_transformer_layers_and_resnets():
    assert kept_layers(10, 4) == (0, 1, 2, 6)  # where SSD-1B's weights match SDXL's
    assert kept_layers(2, 1) == (0,) and kept_layers(10, 2) == (0, 1) and kept_layers(10, 10) == tuple(range(10))
    with pytest.raises(ValueError, match="cannot come from"):
        kept_layers(2, 3)
    teacher = meta("tiny", "unet")
    ssd = TeacherKeys(teacher, meta("tiny", "ssd-1b"))
    assert ssd("down_blocks.2.attentions.1.transformer_blocks.3.attn1.to_q.weight") == \
        "down_blocks.2.attentions.1.transformer_blocks.6.attn1.to_q.weight"
    assert ssd("up_blocks.0.attentions.2.transformer_blocks.9.ff.net.2.bias") == \
        "up_blocks.0.attentions.2.transformer_blocks.9.ff.net.2.bias"  # the stack SSD-1B keeps whole
    assert ssd("mid_block.resnets.0.conv1.weight") == "mid_block.resnets.0.conv1.weight"
    koala = TeacherKeys(teacher, meta("tiny", "koala-700m"))
    assert koala("up_blocks.0.resnets.1.conv1.weight") == "up_blocks.0.resnets.2.conv1.weight"
    assert koala("up_blocks.0.attentions.1.transformer_blocks.4.norm1.weight") == \
        "up_blocks.0.attentions.2.transformer_blocks.4.norm1.weight"


def kept_modules(student) -> list[str]:
    """The student's modules that are whole copies of a teacher module: resnets, single transformer layers,
    the transformer blocks' projections, samplers and the stem and head."""
    names = []
    for name, _ in student.named_modules():
        parts = name.split(".")
        if name in ("conv_in", "time_embedding", "add_embedding", "conv_norm_out", "conv_out") \
                or (len(parts) == 4 and parts[2] in ("resnets", "downsamplers", "upsamplers")) \
                or (len(parts) == 3 and parts[0] == "mid_block" and parts[1] == "resnets") \
                or (len(parts) == 6 and parts[4] == "transformer_blocks") \
                or (len(parts) == 5 and parts[2] == "attentions" and parts[4] in ("proj_in", "proj_out", "norm")):
            names.append(name)
    return names


@pytest.mark.parametrize("student", STUDENTS)
def test_each_kept_block_computes_what_the_teachers_computes(tiny_teacher, tiny_students, student):
    """Given the inputs the teacher's block received, the student's copy of it returns the very same tensors."""
    model = tiny_students[student]
    keys = TeacherKeys(tiny_teacher, model)
    kept = {name: keys(name) for name in kept_modules(model)}
    assert any("transformer_blocks" in name for name in kept) and "conv_in" in kept
    seen = {}

    def record(name):
        def hook(module, args, kwargs, output):
            seen[name] = (args, kwargs, output)
        return hook

    handles = [tiny_teacher.get_submodule(teacher_name).register_forward_hook(record(teacher_name), with_kwargs=True)
               for teacher_name in set(kept.values())]
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(2, 4, 16, 16, generator=generator)
    context = torch.randn(2, 77, sdxl.TINY_UNET["cross_attention_dim"], generator=generator)
    conditioning = {"text_embeds": torch.randn(2, sdxl.TINY_TEXT_ENCODER_2["projection_dim"], generator=generator),
                    "time_ids": torch.tensor([[128.0, 128.0, 0.0, 0.0, 128.0, 128.0]] * 2)}
    try:
        with torch.no_grad():
            tiny_teacher(sample, 999, encoder_hidden_states=context, added_cond_kwargs=conditioning)
    finally:
        for handle in handles:
            handle.remove()
    with torch.no_grad():
        assert set(seen) == set(kept.values())  # every kept teacher block ran
        for name, teacher_name in kept.items():
            args, kwargs, expected = seen[teacher_name]
            actual = model.get_submodule(name)(*args, **kwargs)
            assert torch.equal(_tensor(actual), _tensor(expected)), name


def _tensor(output) -> torch.Tensor:
    return output[0] if isinstance(output, tuple) else getattr(output, "sample", output)


def test_unknown_student():
    with pytest.raises(ValueError, match="unknown SDXL student 'ssd-2b': choose one of ssd-1b, segmind-vega"):
        derive_sdxl_student(meta("tiny", "unet"), "ssd-2b", meta=True)


# --------------------------------------------------------------------------- pipelines


def test_tiny_pipelines_run_with_two_encoders_and_the_micro_conditioning(store):
    family = store.registry.family("sdxl")
    scenario = family.scenario("astronaut-xl").scaled(family.scale("tiny"), steps=2, resolution=64)
    for name in ("sdxl", "ssd-1b", "segmind-vega-taesdxl", "koala-700m"):
        variant = store.registry.variant(name)
        pipe = store.pipeline(variant, scenario)
        assert type(pipe) is StableDiffusionXLPipeline
        conditions = []
        handle = pipe.unet.register_forward_pre_hook(
            lambda module, args, kwargs: conditions.append(kwargs["added_cond_kwargs"]), with_kwargs=True)
        try:
            raw = raw_output(pipe, scenario, lambda: store.during_calls(variant))
        finally:
            handle.remove()
        assert raw.shape == (1, 64, 64, 3) and torch.isfinite(torch.from_numpy(raw)).all(), name
        assert len(conditions) == 2  # Euler: one UNet call per step (both guidance halves in one batch)
        assert conditions[0]["text_embeds"].shape == (2, sdxl.TINY_TEXT_ENCODER_2["projection_dim"])
        assert conditions[0]["time_ids"].tolist()[0] == [64.0, 64.0, 0.0, 0.0, 64.0, 64.0]


def test_fp16_decodes_in_fp32_unless_the_upcast_is_off(store):
    """SDXL's pipeline converts an fp16 VAE to fp32 for each decode and back; NoVaeUpcast decodes in fp16."""
    family = store.registry.family("sdxl")
    scenario = family.scenario("astronaut-xl").scaled(family.scale("tiny"), steps=1, resolution=64)
    decoded = {}
    for name in ("sdxl-fp16", "sdxl-fp16-no-upcast"):
        variant = store.registry.variant(name)
        pipe = store.pipeline(variant, scenario)
        dtypes = []
        handle = pipe.vae.decoder.register_forward_pre_hook(lambda module, args: dtypes.append(args[0].dtype))
        try:
            decoded[name] = raw_output(pipe, scenario)
        finally:
            handle.remove()
        assert next(pipe.vae.parameters()).dtype == torch.float16, name  # back in fp16 after the call
        assert pipe.vae.config.force_upcast is (name == "sdxl-fp16")
        assert dtypes == [torch.float32 if name == "sdxl-fp16" else torch.float16], name
    assert store.models(store.registry.variant("sdxl-fp16"))["vae"].config.force_upcast  # its own tree kept it
    assert (decoded["sdxl-fp16"] != decoded["sdxl-fp16-no-upcast"]).any()


def test_students_on_the_hub_profile_load_from_their_repositories(tmp_path):
    """The real loading path, offline: a tiny SDXL saved with save_pretrained (and TAESDXL beside it) loads
    back with equal weights, students included, and runs."""
    pipeline_dir = save_synthetic_pipeline(FAMILY, "tiny", tmp_path / "sdxl")
    source = SyntheticSource("tiny", CPU)
    source.build(FAMILY, "taesdxl").save_pretrained(tmp_path / "taesdxl")
    student_dir = tmp_path / "ssd-1b"
    derive_sdxl_student(source.build(FAMILY, "unet"), "ssd-1b").save_pretrained(student_dir / "unet")
    (student_dir / "model_index.json").write_text("{}")
    hub = HubSource(CPU, {"sdxl": str(pipeline_dir), "sdxl.taesdxl": str(tmp_path / "taesdxl"),
                          "sdxl.ssd-1b": str(student_dir)})
    for name in ("unet", "text_encoder", "text_encoder_2", "vae", "taesdxl", "ssd-1b"):
        loaded = hub.build(FAMILY, name).state_dict()
        expected = SyntheticSource("tiny", CPU).build(FAMILY, name).state_dict()
        assert loaded.keys() == expected.keys() and all(torch.equal(loaded[k], expected[k]) for k in expected), name
    assert hub.scheduler_config(FAMILY)["_class_name"] == "EulerDiscreteScheduler"
    store = PipelineStore(builtin_registry(), hub, CPU)
    scenario = FAMILY.scenario("astronaut-xl").scaled(FAMILY.scale("tiny"), steps=1, resolution=64)
    raw = raw_output(store.pipeline(store.registry.variant("ssd-1b"), scenario), scenario)
    assert raw.shape == (1, 64, 64, 3)
