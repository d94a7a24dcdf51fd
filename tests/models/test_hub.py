"""Unit tests of the hub loading path (diffperf.models.zoo.HubSource), offline, on a saved tiny pipeline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from diffusers import AutoencoderKL, AutoencoderTiny, PNDMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel

from diffperf.models import sd1, zoo

CPU = torch.device("cpu")
FAMILY = sd1.FAMILY
BUILT = ("unet", "text_encoder", "vae", "taesd")
MODULES = tuple(component.name for component in FAMILY.components if not zoo.is_tokenizer(component))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """A tiny synthetic pipeline and a tiny autoencoder saved with save_pretrained, and their weights."""
    root = tmp_path_factory.mktemp("hub")
    pipeline_dir = zoo.save_synthetic_pipeline(FAMILY, "tiny", root / "pipeline")
    source = zoo.SyntheticSource("tiny", CPU)
    originals = {name: source.build(FAMILY, name) for name in BUILT}
    originals["taesd"].save_pretrained(root / "taesd")
    hub = zoo.HubSource(device=CPU, overrides={
        "sd1": str(pipeline_dir), "sd1.bk-sdm-small": str(pipeline_dir), "sd1.taesd": str(root / "taesd")})
    return hub, originals, pipeline_dir


@pytest.fixture(scope="module")
def loaded(saved):
    hub, _, _ = saved
    return {name: hub.build(FAMILY, name) for name in MODULES}


def test_saved_pipeline_layout(saved):
    _, _, pipeline_dir = saved
    index = json.loads((pipeline_dir / "model_index.json").read_text())
    for component in ("unet", "text_encoder", "tokenizer", "vae", "scheduler"):
        assert (pipeline_dir / component).is_dir(), component
        assert component in index
    assert index["safety_checker"] == [None, None]


@pytest.mark.parametrize(
    ("component", "cls", "original"),
    [
        ("unet", UNet2DConditionModel, "unet"),
        ("bk-sdm-small", UNet2DConditionModel, "unet"),  # sd1.bk-sdm-small=DIR loads DIR/unet
        ("text_encoder", CLIPTextModel, "text_encoder"),
        ("vae", AutoencoderKL, "vae"),
        ("taesd", AutoencoderTiny, "taesd"),
    ],
)
def test_loaded_weights_equal_the_saved_ones(saved, loaded, component, cls, original):
    _, originals, _ = saved
    module = loaded[component]
    assert type(module) is cls
    assert not module.training
    assert not any(parameter.requires_grad for parameter in module.parameters())
    expected = originals[original].state_dict()
    got = module.state_dict()
    assert got.keys() == expected.keys()
    for key in expected:
        assert got[key].dtype == torch.float32, key
        assert torch.equal(got[key], expected[key]), key


def test_meta_builds_count_like_the_saved_components(saved, loaded):
    hub, _, _ = saved
    assert set(MODULES) == {"unet", "bk-sdm-small", "text_encoder", "vae", "taesd"}
    for component in MODULES:
        module = hub.build(FAMILY, component, meta=True)
        assert all(parameter.is_meta for parameter in module.parameters()), component
        assert zoo.count_parameters(module) == zoo.count_parameters(loaded[component]), component


def test_tokenizer_and_scheduler_round_trip(saved):
    hub, _, _ = saved
    tokenizer = hub.build(FAMILY, "tokenizer")
    assert len(tokenizer) == 514 and tokenizer.model_max_length == 77
    prompt = "a photo of an astronaut riding a horse on mars"
    assert tokenizer(prompt).input_ids == zoo.offline_clip_tokenizer()(prompt).input_ids
    config = hub.scheduler_config(FAMILY)
    assert config["_class_name"] == "PNDMScheduler"
    for key, value in sd1.SCHEDULER.items():
        assert config[key] == value, key
    assert type(FAMILY.make_scheduler("pndm", config)) is PNDMScheduler


def test_pipeline_from_loaded_components_runs(saved, loaded):
    hub, _, _ = saved
    pipe = zoo.assemble_pipeline(
        FAMILY,
        {"unet": loaded["unet"], "text_encoder": loaded["text_encoder"],
         "tokenizer": hub.build(FAMILY, "tokenizer"), "vae": loaded["vae"]},
        FAMILY.make_scheduler("ddim", hub.scheduler_config(FAMILY)),
    )
    calls = []
    pipe.unet.register_forward_hook(lambda module, args, output: calls.append(1))
    output = pipe(
        "a photo", num_inference_steps=2, height=64, width=64,
        generator=torch.Generator().manual_seed(0), output_type="np",
    )
    assert output.images.shape == (1, 64, 64, 3)
    assert (output.images >= 0).all() and (output.images <= 1).all()
    assert len(calls) == 2


def test_directory_that_is_not_a_pipeline(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(zoo.ModelNotAvailable) as info:
        zoo.HubSource(overrides={"sd1": str(tmp_path)}).build(FAMILY, "unet")
    message = str(info.value)
    assert "model_index.json" in message and str(tmp_path) in message
    assert "\n" not in message


def test_directory_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(zoo.ModelNotAvailable, match="does not exist"):
        zoo.HubSource(overrides={"sd1": str(missing)}).build(FAMILY, "text_encoder")


def test_taesd_directory_without_weights(tmp_path):
    with pytest.raises(zoo.ModelNotAvailable) as info:
        zoo.HubSource(overrides={"sd1.taesd": str(tmp_path)}).build(FAMILY, "taesd")
    message = str(info.value)
    assert message.startswith(f"cannot load the taesd of sd1 from {tmp_path} (")
    assert "\n" not in message and "save_pretrained" in message
    assert "hf download" not in message and "Hugging Face cache" not in message  # a directory, not a hub id
    # Nothing chained: the error prints once, wherever it is shown.
    assert info.value.__cause__ is None and info.value.__context__ is None
    assert str(info.getrepr(style="value")).count(message) == 1


def test_unknown_hub_component():
    with pytest.raises(ValueError, match=r"^family sd1 has no component 'nope': choose one of unet, "):
        zoo.HubSource().build(FAMILY, "nope")


OFFLINE_SCRIPT = textwrap.dedent(
    """
    import json
    from diffperf import cli
    from diffperf.models import sd1, zoo

    try:
        zoo.HubSource(overrides={"sd1": "diffperf-tests/never-cached"}).build(sd1.FAMILY, "unet", meta=True)
    except zoo.ModelNotAvailable as error:
        print(json.dumps({
            "message": str(error),
            "chained": error.__cause__ is not None or error.__context__ is not None,
        }))
    else:
        print(json.dumps(None))
    print(json.dumps({"cli": cli.main(["variants", "--profile", "hub", "--device", "cpu"])}))
    """
)


def test_uncached_hub_id_offline(tmp_path):
    """HF_HUB_OFFLINE and HF_HOME are read when huggingface_hub is imported: a fresh interpreter."""
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "HF_HOME": str(tmp_path / "hf-home"),
        "OMP_NUM_THREADS": "1",
        "PYTHONWARNINGS": "ignore",
    }
    env.pop("HF_HUB_CACHE", None)
    env.pop("HUGGINGFACE_HUB_CACHE", None)
    (tmp_path / "hf-home").mkdir()
    # Run outside the repository: `diffperf variants` in a directory with a perf/ suite collects it.
    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith(("{", "null"))]
    error, cli_result = lines
    assert error is not None, "loading an uncached id offline did not fail"
    message = error["message"]
    assert "\n" not in message
    assert "'diffperf-tests/never-cached'" in message
    assert "HF_HUB_OFFLINE is set" in message
    assert "hf download diffperf-tests/never-cached" in message
    assert not error["chained"]  # nothing chained: printed once
    # `diffperf variants --profile hub` reports the same in one line and exits 2.
    assert cli_result == {"cli": 2}
    stderr_lines = [line for line in result.stderr.splitlines() if line.startswith("diffperf:")]
    assert len(stderr_lines) == 1
    assert sd1.HUB_MODEL in stderr_lines[0] and "hf download" in stderr_lines[0]
    assert "Traceback" not in result.stderr
