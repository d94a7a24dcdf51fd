"""The yardstick: torch calls at the shapes of a family's denoiser (UNet or transformer), the baseline's partner."""

import contextlib
from types import SimpleNamespace

import pytest
import torch

from diffperf.measure.yardstick import (Level, TransformerShape, Yardstick, classifier_free_guidance, pipeline_shape,
                                        shape_of, text_tokens, transformer_shape_of)
from diffperf.models import flux, sd1, sd3, sdxl
from diffperf.models.variants import Variant


def test_shape_follows_the_sd1_unet_config():
    shape = shape_of(sd1.UNET, batch=2, latent_height=64, latent_width=64, steps=50)
    assert shape.levels == (Level(320, 64, 64, 8, 1), Level(640, 32, 32, 8, 1), Level(1280, 16, 16, 8, 1),
                            Level(1280, 8, 8, 0, 0))
    assert (shape.batch, shape.steps, shape.context_dim, shape.groups) == (2, 50, 768, 32)


def test_shape_follows_the_sdxl_unet_config():
    shape = shape_of(sdxl.UNET, batch=2, latent_height=128, latent_width=128, steps=50)
    assert shape.levels == (Level(320, 128, 128, 0, 0), Level(640, 64, 64, 10, 2), Level(1280, 32, 32, 20, 10))
    assert shape.context_dim == 2048


def test_a_call_does_the_same_work_every_time_and_holds_only_its_tensors():
    shape = shape_of(sd1.TINY_UNET, batch=2, latent_height=8, latent_width=8, steps=2)
    synchronized, entered = [], []

    @contextlib.contextmanager
    def settings():  # the baseline's runtime switches: the yardstick runs under the same
        entered.append(len(synchronized))
        yield

    yardstick = Yardstick(shape, torch.float32, torch.device("cpu"), lambda: synchronized.append(True),
                          settings=settings)
    yardstick()
    yardstick()
    assert synchronized == [True, True]  # the device is idle when a call returns
    assert entered == [0, 1]
    first = Yardstick(shape, torch.float32, torch.device("cpu"))
    assert first.weight_bytes() == yardstick.weight_bytes() > 0
    assert torch.equal(first.latents, yardstick.latents)  # seeded: the same numbers in every process
    assert shape.describe()["levels"][0] == [32, 8, 8, 4, 1]


def test_no_variant_may_take_the_yardsticks_name():
    with pytest.raises(ValueError, match="'yardstick' is the fp32 baseline's partner's"):
        Variant("yardstick", "sd1")


def test_a_pipeline_without_a_unet_it_can_follow_has_no_yardstick(tmp_path):
    from types import SimpleNamespace

    from diffperf.models.builtin import builtin_registry
    from diffperf.options import PerfOptions
    from diffperf.session import PerfSession

    session = PerfSession(PerfOptions(profile="tiny", device="cpu", baselines_dir=str(tmp_path)), builtin_registry())
    scenario = session.scenario("baseline", "astronaut")
    baseline = session.registry.variant("baseline")
    transformer_based = SimpleNamespace(transformer=object(), vae_scale_factor=8)
    assert session.yardstick(baseline, scenario, transformer_based) is None
    unet = SimpleNamespace(config=sd1.TINY_UNET, dtype=torch.float32)
    yardstick = session.yardstick(baseline, scenario, SimpleNamespace(unet=unet, vae_scale_factor=8))
    assert yardstick.shape.levels[0].height == scenario.resolution // 8
    assert yardstick.shape.batch == 2 * scenario.images


# --------------------------------------------------------------------------- transformer (DiT) families

FLUX, TINY_FLUX = flux.TRANSFORMER, flux.TINY_TRANSFORMER  # 19 double- and 38 single-stream blocks; 1 and 2
SD35, TINY_SD35 = sd3.TRANSFORMER, sd3.TINY_TRANSFORMER  # 24 joint blocks, the first 13 with dual attention; 3, 1


def test_shape_follows_the_flux_transformer_config():
    # 1024 px: the packed latent is 64 x 64 patches of 1; 512 T5 tokens; 40% of 19 double and 38 single blocks
    shape = transformer_shape_of(FLUX, batch=1, latent_height=64, latent_width=64, text_tokens=512, steps=28)
    assert shape == TransformerShape(batch=1, heads=24, head_dim=128, image_tokens=4096, text_tokens=512,
                                     joint_blocks=8, single_blocks=15, image_attention_blocks=0, steps=28)
    assert shape.hidden == 3072
    assert shape.describe() == {"batch": 1, "steps": 28, "blocks": [8, 15, 0], "attention": [24, 128],
                                "tokens": [4096, 512]}


def test_shape_follows_the_sd35_transformer_config():
    # 1024 px: the 128 x 128 latent in 2 x 2 patches; 77 CLIP and 256 T5 tokens; 40% of 24 blocks, of 13 dual ones
    shape = transformer_shape_of(SD35, batch=2, latent_height=128, latent_width=128, text_tokens=333, steps=28)
    assert shape == TransformerShape(2, 24, 64, 4096, 333, joint_blocks=10, single_blocks=0,
                                     image_attention_blocks=5, steps=28)


def test_a_small_transformer_gets_at_least_one_block():
    assert transformer_shape_of(TINY_FLUX, 1, 8, 8, 32, 3).describe()["blocks"] == [0, 1, 0]
    assert transformer_shape_of(TINY_SD35, 2, 16, 16, 109, 3).describe()["blocks"] == [1, 0, 0]
    one = transformer_shape_of({**TINY_SD35, "num_layers": 1}, 1, 16, 16, 109, 3)
    assert (one.joint_blocks, one.single_blocks, one.image_tokens) == (1, 0, 64)


class FluxLike:
    """A stand-in for FluxPipeline: its guidance scale is the transformer's embedding, not a second batch."""

    vae_scale_factor = 8
    image_processor = SimpleNamespace(config=SimpleNamespace(vae_scale_factor=16))  # the 2x2 packing
    tokenizer_max_length = 77

    def __init__(self, config):
        self.transformer = SimpleNamespace(config=config, dtype=torch.float32)

    def __call__(self, prompt=None, guidance_scale: float = 3.5, max_sequence_length: int = 512):
        raise AssertionError("the yardstick's shape never calls the pipeline")


class SD3Like(FluxLike):
    """A stand-in for StableDiffusion3Pipeline: CLIP's 77 token states precede T5's; guidance doubles the batch."""

    image_processor = SimpleNamespace(config=SimpleNamespace(vae_scale_factor=8))
    text_encoder_3 = None

    @property
    def do_classifier_free_guidance(self):
        raise AssertionError("read from the call's arguments, not the pipeline's state")

    def __call__(self, prompt=None, guidance_scale: float = 7.0, max_sequence_length: int = 256):
        raise AssertionError("the yardstick's shape never calls the pipeline")


def test_the_batch_doubles_only_under_classifier_free_guidance():
    flux, sd3 = FluxLike(FLUX), SD3Like(SD35)
    assert not classifier_free_guidance(flux, {"guidance_scale": 3.5})  # FLUX.1-dev's guidance: an embedding
    assert classifier_free_guidance(sd3, {}) and classifier_free_guidance(sd3, {"guidance_scale": 4.5})
    assert not classifier_free_guidance(sd3, {"guidance_scale": 1.0})
    assert pipeline_shape(flux, {"guidance_scale": 3.5}, images=2, resolution=1024, steps=28).batch == 2
    assert pipeline_shape(sd3, {}, images=2, resolution=1024, steps=28).batch == 4
    assert pipeline_shape(sd3, {"guidance_scale": 0.0}, images=2, resolution=1024, steps=4).batch == 2
    unet = SimpleNamespace(unet=SimpleNamespace(config={**sd1.UNET, "time_cond_proj_dim": 256}), vae_scale_factor=8)
    assert not classifier_free_guidance(unet, {})  # an LCM UNet takes the guidance as an embedding


def test_the_tokens_follow_the_pipeline_and_the_calls_text_length():
    flux, sd3 = FluxLike(FLUX), SD3Like(SD35)
    assert text_tokens(flux, {}) == 512 and text_tokens(flux, {"max_sequence_length": 32}) == 32
    assert text_tokens(sd3, {}) == 77 + 256 and text_tokens(sd3, {"max_sequence_length": 32}) == 77 + 32
    # the same image tokens: FLUX packs 2x2 latent patches, SD3 cuts 2x2 patches of the latent
    assert pipeline_shape(flux, {}, 1, 1024, 28).image_tokens == pipeline_shape(sd3, {}, 1, 1024, 28).image_tokens \
        == (1024 // 16) ** 2
    assert pipeline_shape(FluxLike(TINY_FLUX), {"max_sequence_length": 32}, 1, 128, 3).describe() == \
        {"batch": 1, "steps": 3, "blocks": [0, 1, 0], "attention": [2, 16], "tokens": [64, 32]}
    cross_attention = SimpleNamespace(transformer=SimpleNamespace(config={"num_attention_heads": 16,
                                      "attention_head_dim": 72, "num_layers": 28, "cross_attention_dim": 1152}),
                                      vae_scale_factor=8)
    assert pipeline_shape(cross_attention, {"max_sequence_length": 300}, 1, 1024, 20) is None  # not joint attention


def test_the_unet_shapes_are_unchanged():
    """What a saved run records of an SD1 baseline's yardstick (its extra_info's ``yardstick``)."""
    pipe = SimpleNamespace(unet=SimpleNamespace(config=sd1.UNET, dtype=torch.float32), vae_scale_factor=8)
    assert pipeline_shape(pipe, {}, images=1, resolution=512, steps=50).describe() == {
        "batch": 2, "steps": 50, "levels": [[320, 64, 64, 8, 1], [640, 32, 32, 8, 1], [1280, 16, 16, 8, 1],
                                            [1280, 8, 8, 0, 0]], "context": [77, 768]}


@pytest.mark.parametrize("config, latent, batch, text", [(TINY_FLUX, 8, 1, 32), (TINY_SD35, 16, 2, 109)],
                         ids=["flux", "sd35"])
def test_a_transformer_yardstick_runs_on_the_cpu(config, latent, batch, text):
    shape = transformer_shape_of(config, batch, latent, latent, text, steps=2)
    yardstick = Yardstick(shape, torch.float32, torch.device("cpu"))
    yardstick()
    d = shape.hidden
    # the blocks of a kind share their weights: a joint block's two streams (4 d x d projections and a 4x MLP each),
    # a single block's (3 d x d, its MLP's first 4d x d and the 5d x d output projection)
    weights = (24 * d * d if shape.joint_blocks else 0) + (12 * d * d if shape.single_blocks else 0)
    tokens = batch * (shape.image_tokens + text) * d
    assert shape.image_tokens == 64 and yardstick.weight_bytes() == 4 * (weights + tokens)
    assert torch.equal(Yardstick(shape, torch.float32, torch.device("cpu")).latents, yardstick.latents)


def _tiny_transformer_flops(config, batch: int, text: int) -> int:
    """FLOPs of one forward of a tiny FLUX or SD3 transformer on a 128 px image (8 x 8 image tokens)."""
    from diffusers import FluxTransformer2DModel, SD3Transformer2DModel

    from diffperf.measure.flops import flop_counter

    torch.manual_seed(0)
    if "num_single_layers" in config:
        model = FluxTransformer2DModel(**config).eval()
        inputs = {"hidden_states": torch.randn(batch, 64, config["in_channels"]),
                  "encoder_hidden_states": torch.randn(batch, text, config["joint_attention_dim"]),
                  "pooled_projections": torch.randn(batch, config["pooled_projection_dim"]),
                  "timestep": torch.ones(batch), "guidance": torch.full((batch,), 3.5),
                  "img_ids": torch.zeros(64, 3), "txt_ids": torch.zeros(text, 3)}
    else:
        model = SD3Transformer2DModel(**config).eval()
        inputs = {"hidden_states": torch.randn(batch, config["in_channels"], 16, 16),
                  "encoder_hidden_states": torch.randn(batch, text, config["joint_attention_dim"]),
                  "pooled_projections": torch.randn(batch, config["pooled_projection_dim"]),
                  "timestep": torch.ones(batch)}
    with torch.inference_mode(), flop_counter() as counter:
        model(**inputs)
    return counter.get_total_flops()


@pytest.mark.parametrize("config, latent, batch, text", [(TINY_FLUX, 8, 1, 32), (TINY_SD35, 16, 2, 109)],
                         ids=["flux", "sd35"])
def test_a_yardstick_step_does_30_to_50_percent_of_the_transformers_flops(config, latent, batch, text):
    from diffperf.measure.flops import flop_counter

    yardstick = Yardstick(transformer_shape_of(config, batch, latent, latent, text, steps=1), torch.float32,
                          torch.device("cpu"))
    with flop_counter() as counter:
        yardstick()
    share = counter.get_total_flops() / _tiny_transformer_flops(config, batch, text)
    assert 0.3 <= share <= 0.5, share


def test_a_tiny_flux_and_sd35_baseline_get_a_yardstick_from_their_pipelines(tmp_path):
    """diffusers' own pipelines: FluxPipeline guides by embedding (one latent per image), StableDiffusion3Pipeline
    by a doubled batch, with CLIP's 77 tokens before the tiny profile's 32 T5 tokens."""
    from diffperf.models.builtin import builtin_registry
    from diffperf.options import PerfOptions
    from diffperf.session import PerfSession

    session = PerfSession(PerfOptions(profile="tiny", device="cpu", baselines_dir=str(tmp_path)), builtin_registry())
    described = {}
    for name, scenario_name in (("flux", "astronaut-flux"), ("sd35", "astronaut-sd35")):
        variant, scenario = session.registry.variant(name), session.scenario(name, scenario_name)
        yardstick = session.yardstick(variant, scenario, session.store.pipeline(variant, scenario))
        assert yardstick.dtype == torch.float32
        described[name] = yardstick.shape.describe()
    assert described == {
        "flux": {"batch": 1, "steps": 7, "blocks": [0, 1, 0], "attention": [2, 16], "tokens": [64, 32]},
        "sd35": {"batch": 2, "steps": 3, "blocks": [1, 0, 0], "attention": [2, 16], "tokens": [64, 77 + 32]},
    }
