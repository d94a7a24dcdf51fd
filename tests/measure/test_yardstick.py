"""The yardstick: torch calls at the shapes of a family's UNet, the fp32 baseline's partner."""

import contextlib

import pytest
import torch

from diffperf.measure.yardstick import Level, Yardstick, shape_of
from diffperf.models import sd1, sdxl
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
