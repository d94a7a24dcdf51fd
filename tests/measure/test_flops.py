"""FLOPs per call and per stage (diffperf.measure.flops), checked against counts made independently.

The independent count reads module shapes through forward hooks: 2 FLOPs per multiply-add of every
convolution (k x k x Cin/groups x Cout x Hout x Wout) and linear layer (in x out per token), and of
attention's two matmuls (QK^T and AV: queries x keys x inner dim each). PyTorch's counter instead
reads the aten ops a forward dispatches. The full-size UNets are counted on the meta device: shapes
only, no memory, no arithmetic.
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor

from diffperf.measure.flops import (
    CALL, CallFlops, MatmulPeak, Throughput, attention_flops, count_call_flops, datasheet_device, datasheet_peak,
    flop_counter, measure_matmul_peak, precision_of,
)
from diffperf.models import sd1
from diffperf.models.builtin import builtin_registry
from diffperf.models.zoo import SyntheticSource
from diffperf.options import PerfOptions
from diffperf.session import PerfSession

# One UNet call of SD v1 at 512x512 (a 64x64 latent), batch 2 (classifier-free guidance), 77 text tokens.
SD_UNET_FLOPS = 1_606_546_882_560
BK_SMALL_UNET_FLOPS = 1_021_788_815_360


def hooked_flops(model: torch.nn.Module, *args, **kwargs) -> dict[str, int]:
    """FLOPs of one forward from module shapes, by kind: convolutions, linear layers, attention matmuls."""
    totals = {"convolutions": 0, "linears": 0, "attention": 0}

    def conv(module, inputs, output):
        batch, channels_out, height, width = output.shape
        kernel = math.prod(module.kernel_size)
        totals["convolutions"] += 2 * batch * channels_out * height * width * module.in_channels // module.groups \
            * kernel

    def linear(module, inputs, output):
        tokens = output.numel() // module.out_features
        totals["linears"] += 2 * tokens * module.in_features * module.out_features

    def attention(module, inputs, named, output):
        hidden = inputs[0] if inputs else named["hidden_states"]
        context = named.get("encoder_hidden_states")
        context = hidden if context is None else context
        queries = math.prod(hidden.shape[2:]) if hidden.ndim == 4 else hidden.shape[1]
        keys = math.prod(context.shape[2:]) if context.ndim == 4 else context.shape[1]
        totals["attention"] += 2 * hidden.shape[0] * queries * keys * (module.to_q.out_features
                                                                       + module.to_v.out_features)

    handles = []
    for module in model.modules():
        if isinstance(module, torch.nn.Conv2d):
            handles.append(module.register_forward_hook(conv))
        elif isinstance(module, torch.nn.Linear):
            handles.append(module.register_forward_hook(linear))
        elif isinstance(module, Attention):
            handles.append(module.register_forward_hook(attention, with_kwargs=True))
    try:
        with torch.no_grad():
            model(*args, **kwargs)
    finally:
        for handle in handles:
            handle.remove()
    return totals


def counted_flops(model: torch.nn.Module, *args, **kwargs) -> int:
    """FLOPs of one forward by diffperf's counter (PyTorch's FlopCounterMode)."""
    with torch.no_grad(), flop_counter() as counter:
        model(*args, **kwargs)
    return counter.get_total_flops()


def unet_inputs(batch: int = 2, latent: int = 64, device: str = "meta", config: dict = sd1.UNET) -> tuple:
    sample = torch.zeros(batch, 4, latent, latent, device=device)
    context = torch.zeros(batch, 77, config["cross_attention_dim"], device=device)
    return (sample, 999), {"encoder_hidden_states": context, "return_dict": False}


@pytest.fixture(scope="module")
def full_unets() -> dict[str, torch.nn.Module]:
    """The full-size SD v1 UNet and its BK-SDM-small student as the sd1 family declares them, on the meta device."""
    source = SyntheticSource("full", torch.device("cpu"))
    return {"sd": source.build(sd1.FAMILY, "unet", meta=True),
            "bk-small": source.build(sd1.FAMILY, "bk-sdm-small", meta=True)}


def test_full_unets_at_512_count_what_their_module_shapes_say(full_unets):
    """The target figures: one UNet call per denoising step at 512x512, batch 2."""
    args, kwargs = unet_inputs()
    found = {}
    for name, unet in full_unets.items():
        counted = counted_flops(unet, *args, **kwargs)
        by_kind = hooked_flops(unet, *args, **kwargs)
        assert counted == sum(by_kind.values()), (name, counted, by_kind)
        found[name] = (counted, by_kind)
    assert found["sd"][0] == SD_UNET_FLOPS
    assert found["bk-small"][0] == BK_SMALL_UNET_FLOPS
    # reference.md: torch.utils.flop_counter per call at a 64x64 latent, batch 1: SD 401.6 GMACs, BK-small 255.4.
    assert found["sd"][0] / 2 / 2 / 1e9 == pytest.approx(401.6, abs=0.05)
    assert found["bk-small"][0] / 2 / 2 / 1e9 == pytest.approx(255.4, abs=0.05)
    # Without attention's two matmuls (what module-hook MAC counters such as thop report): docs/throughput.md.
    for name, paper_gmacs in (("sd", 339), ("bk-small", 218)):
        by_kind = found[name][1]
        assert (by_kind["convolutions"] + by_kind["linears"]) / 2 / 2 / 1e9 == pytest.approx(paper_gmacs, rel=0.005)


def test_classic_attention_counts_as_sdpa_does(full_unets):
    """The classic processor's baddbmm/bmm and SDPA count the same FLOPs (a small latent keeps it quick)."""
    args, kwargs = unet_inputs(batch=1, latent=16)
    teacher = full_unets["sd"]
    sdpa = counted_flops(teacher, *args, **kwargs)
    processors = teacher.attn_processors
    teacher.set_attn_processor(AttnProcessor())
    try:
        assert counted_flops(teacher, *args, **kwargs) == sdpa == sum(hooked_flops(teacher, *args, **kwargs).values())
    finally:
        teacher.set_attn_processor(processors)


def test_the_cpus_fused_attention_is_counted():
    """torch.utils.flop_counter has no formula for the CPU's fused SDPA kernel: diffperf adds PyTorch's own."""
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.rand(2, 3, n, 8, generator=generator) for n in (16, 24, 24))
    with flop_counter() as counter:
        torch.nn.functional.scaled_dot_product_attention(query, key, value)
    expected = 2 * (2 * 3 * 16 * 24 * 8) * 2  # QK^T and AV, 2 FLOPs per multiply-add
    assert counter.get_total_flops() == expected == attention_flops(query.shape, key.shape, value.shape)
    with flop_counter() as explicit:
        torch.softmax(query @ key.transpose(-1, -2) / 8 ** 0.5, dim=-1) @ value
    assert explicit.get_total_flops() == expected


@pytest.mark.slow
def test_a_calls_flops_split_at_the_stage_marks_match_the_modules_that_ran(tmp_path):
    """Tiny profile on the CPU: the text encoder's, the UNet's and the decoder's FLOPs, each in its stage."""
    session = PerfSession(PerfOptions(profile="tiny", device="cpu", baselines_dir=str(tmp_path)), builtin_registry())
    scenario = session.scenario("baseline", "astronaut")
    timed = session.timed_pipeline(session.registry.variant("baseline"), scenario)
    rounds_before = len(timed.stage_history)
    flops = count_call_flops(timed)
    assert len(timed.stage_history) == rounds_before  # the counted call is not a round
    assert flops.unet_calls == scenario.steps  # DDIM: one UNet call per step
    with flop_counter() as counter:
        timed()
    by_module = {name: sum(counts.values()) for name, counts in counter.get_flop_counts().items()}
    assert flops.total == by_module["Global"] > 0
    assert flops.stages["text_encoding"] == by_module["CLIPTextModel"] > 0
    assert flops.stages["denoising"] == by_module["UNet2DConditionModel"] > 0
    assert flops.stages["decoding"] == flops.total - by_module["CLIPTextModel"] - by_module["UNet2DConditionModel"] > 0
    # One UNet call counted alone: batch 2 (classifier-free guidance) at the latent size.
    latent = scenario.resolution // 8
    args, kwargs = unet_inputs(batch=2, latent=latent, device="cpu", config=sd1.TINY_UNET)
    assert flops.unet_per_call == counted_flops(timed.pipe.unet, *args, **kwargs)
    assert count_call_flops(timed, every_step=True) == flops  # the whole loop counted: the same, step by step
    assert session.probes.call_flops("baseline", "astronaut", timed, every_step=False) is \
        session.probes.call_flops("baseline", "astronaut", timed, every_step=False)


class StepwiseUNet(torch.nn.Module):
    """A denoiser whose work grows with the step, as DeepCache's alternates: step s multiplies s + 1 rows."""

    def __init__(self):
        super().__init__()
        self.step = 0

    def forward(self, weight):
        self.step += 1
        return torch.ones(self.step, 4) @ weight


class StepwisePipeline:
    """Just enough of a diffusers pipeline for a TimedPipeline: prompt encoding, a 3-step loop, a decoder."""

    num_timesteps = 3

    def __init__(self):
        self.unet = StepwiseUNet()

    def encode_prompt(self):
        return torch.ones(2, 4) @ torch.ones(4, 4)  # 2 x 2 x 4 x 4 = 64 FLOPs

    def __call__(self, generator, output_type, callback_on_step_end):
        self.encode_prompt()
        for step in range(self.num_timesteps):
            self.unet(torch.ones(4, 4))  # 2 x (step + 1) x 4 x 4 FLOPs: 32, 64, 96
            callback_on_step_end(self, step, step, {})
        return torch.ones(1, 4) @ torch.ones(4, 8)  # 64 FLOPs


def stepwise_call():
    from types import SimpleNamespace

    from diffperf.measure.timing import TimedPipeline

    scenario = SimpleNamespace(seed=0, pipeline_kwargs=dict)
    instrument = SimpleNamespace(synchronize=lambda: None)
    return TimedPipeline(StepwisePipeline(), scenario, instrument, contextlib.nullcontext)


def test_a_loop_whose_steps_differ_is_counted_step_by_step():
    counted = count_call_flops(stepwise_call(), every_step=True)
    assert counted.stages == {"text_encoding": 64, "denoising": 32 + 64 + 96, "decoding": 64}
    sampled = count_call_flops(stepwise_call())  # one UNet call times three: right only when the steps agree
    assert sampled.stages == {"text_encoding": 64, "denoising": 3 * 32, "decoding": 64}
    assert sampled.unet_calls == counted.unet_calls == 3


def test_the_variants_with_deepcache_or_a_cache_are_counted_step_by_step():
    from diffperf.models.caches import Cache
    from diffperf.models.speedups import DeepCache, Precision

    assert not DeepCache().same_every_step and not Cache("pab").same_every_step
    assert Precision("float16").same_every_step
    variants = builtin_registry().variants
    changing = {name for name, variant in variants.items() if not variant.same_every_step}
    caching = {name for name, variant in variants.items()
               if any(isinstance(speedup, (DeepCache, Cache)) for speedup in variant.speedups)}
    assert changing == caching and {"best-cpu", "flux-fbcache", "sd35-pab"} <= changing


def test_matmul_peak_on_the_cpu_restores_tf32():
    previous = torch.backends.cuda.matmul.allow_tf32
    peak = measure_matmul_peak(torch.device("cpu"), "float32", lambda: None, repeats=2)
    assert torch.backends.cuda.matmul.allow_tf32 == previous
    assert peak.precision == "float32" and peak.size in (256, 512, 1024, 2048) and peak.flops_per_second > 0
    assert peak.datasheet is None and peak.to_json()["matmul_size"] == peak.size


@pytest.mark.parametrize(("name", "entry"), [
    ("NVIDIA H100 80GB HBM3", "H100 SXM"), ("NVIDIA H100 PCIe", "H100 PCIe"), ("NVIDIA H100 NVL", None),
    ("NVIDIA H200", "H200 SXM"), ("NVIDIA A100-SXM4-80GB", "A100"), ("NVIDIA A100 80GB PCIe", "A100"),
    ("NVIDIA L40S", "L40S"), ("NVIDIA L40", None), ("NVIDIA L4", "L4"), ("NVIDIA A10G", "A10G"), ("NVIDIA A10", None),
    ("NVIDIA GeForce RTX 4090", None), ("AMD EPYC 7B13", None),
])
def test_datasheet_entry_of_a_device_name(name, entry):
    assert datasheet_device(name) == entry


def test_datasheet_peaks_are_dense_figures():
    assert datasheet_peak("NVIDIA H100 80GB HBM3", "float16") == 989.5e12  # 1,979 with 2:4 sparsity
    assert datasheet_peak("NVIDIA A100-SXM4-40GB", "tf32") == 156e12
    assert datasheet_peak("NVIDIA L4", "bfloat16") == 121e12
    assert datasheet_peak("NVIDIA GeForce RTX 4090", "float32") is None


def test_precision_of_a_variant():
    assert precision_of("float32", True, "cuda") == "tf32"
    assert precision_of("float32", True, "cpu") == "float32"
    assert precision_of("float16", True, "cuda") == "float16"
    assert precision_of("bfloat16", False, "cpu") == "bfloat16"


def test_throughput_is_flops_over_the_median_times():
    flops = CallFlops({"text_encoding": 2_000_000_000, "denoising": 30_000_000_000, "decoding": 0}, unet_calls=5)
    peak = MatmulPeak("float32", 100e9, 1024, datasheet=400e9)
    record = Throughput("distilled", "astronaut", "float32", flops,
                        stage_seconds={"text_encoding": 0.1, "denoising": 0.5, "decoding": 0.2}, call_seconds=0.8,
                        peak=peak)
    assert flops.total == 32_000_000_000 and flops.unet_per_call == 6_000_000_000
    achieved = record.achieved()
    assert achieved == {"text_encoding": pytest.approx(20e9), "denoising": pytest.approx(60e9), "decoding": None,
                        CALL: pytest.approx(40e9)}
    info = record.to_json()
    assert info["fraction_of_peak"]["denoising"] == pytest.approx(0.6)
    assert info["fraction_of_datasheet"][CALL] == pytest.approx(0.1)
    assert info["peak"] == {"precision": "float32", "measured": 100e9, "matmul_size": 1024, "datasheet": 400e9}
    untimed = Throughput("baseline", "vase", "float32", flops, {}, None, MatmulPeak("float32", 100e9, 512))
    assert set(untimed.achieved().values()) == {None} and untimed.to_json()["fraction_of_datasheet"] is None
    case = record.case_info()
    assert case["flops"]["unet_per_call"] == 6_000_000_000 and case["throughput"] == info
