"""Unit tests of today's speed-up variants (fused QKV, ToMe, DeepCache, int8, the best stacks): their
declarations and skip reasons, and how diffperf.models.store applies each one to the variant's own
module tree only. Tests that need an optional package (pip install -e '.[speedups]') skip without it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import FusedAttnProcessor2_0

from diffperf.images.similarity import THRESHOLDS
from diffperf.models import variants as variants_module
from diffperf.models import zoo
from diffperf.models.profiles import TINY
from diffperf.models.store import PipelineStore, tensor_bytes, time_first_calls
from diffperf.models.variants import VARIANTS, Variant, get_variant, skip_reason
from diffperf.models.workloads import get_scenario
from diffperf.render import gate_text

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only its type is looked at
NEW = ("fused-qkv", "tome", "deepcache", "int8", "best-cpu", "best-gpu")
ASTRONAUT = get_scenario("astronaut").scaled(TINY)
VASE = get_scenario("vase").scaled(TINY)


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


# --------------------------------------------------------------------------- declarations


def test_new_variants_are_measured_against_the_fp32_baseline():
    for name in NEW:
        assert get_variant(name).reference == "baseline", name


def test_each_isolates_one_change():
    assert get_variant("fused-qkv").fuse_qkv
    assert get_variant("tome").tome_ratio == 0.5 and get_variant("tome").needs_package == "tomesd"
    assert get_variant("deepcache").deepcache_interval == 3 and get_variant("deepcache").needs_package == "DeepCache"
    assert get_variant("int8").int8_dynamic and get_variant("int8").needs_package == "torchao"
    baseline = get_variant("baseline")
    for name in ("fused-qkv", "tome", "deepcache", "int8"):
        variant = get_variant(name)
        assert variant.components == baseline.components and variant.dtype == "float32", name


def test_approximate_variants_have_their_own_fp32_bound():
    assert get_variant("fused-qkv").approximates_fp32 == "fp32"
    for name in ("tome", "deepcache", "int8"):
        assert get_variant(name).approximates_fp32 == name
    for variant in VARIANTS:
        assert variant.approximates_fp32 is None or variant.approximates_fp32 in THRESHOLDS, variant.name


def test_best_stacks_agree_with_the_terminal_order():
    assert tuple(variant.name for variant in VARIANTS if variant.best_stack) == gate_text.BEST_STACKS


def test_opt_in_on_the_cpu_only(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    monkeypatch.setattr(variants_module, "cpu_has_vnni", lambda: True)
    assert skip_reason(get_variant("tome"), CPU) == (
        "tome is opt-in on cpu (no faster on the tiny CPU profile): pass --perf-speedups")
    for name in ("fused-qkv", "tome", "deepcache", "int8"):
        assert skip_reason(get_variant(name), CPU).startswith(f"{name} is opt-in on cpu ("), name
        assert skip_reason(get_variant(name), CPU, frozenset({"--perf-speedups"})) is None, name
        assert skip_reason(get_variant(name), CUDA) is None, name
    assert skip_reason(get_variant("best-cpu"), CPU) is None  # DeepCache on the CPU by default


def test_fp16_family_is_opt_in_on_the_cpu(monkeypatch):
    monkeypatch.setattr(variants_module, "dtype_supported", lambda dtype, device: True)
    assert skip_reason(get_variant("fp16"), CPU) == (
        "fp16 is opt-in on cpu (slower than fp32 on CPUs; time budget): pass --perf-speedups")
    assert skip_reason(get_variant("distilled-taesd-fp16"), CPU).startswith("its reference cannot run: ")
    for name in ("fp16", "distilled-fp16", "distilled-taesd-fp16"):
        assert skip_reason(get_variant(name), CPU, frozenset({"--perf-speedups"})) is None, name
        assert skip_reason(get_variant(name), CUDA) is None, name


def test_int8_needs_vnni_on_the_cpu(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    monkeypatch.setattr(variants_module, "cpu_has_vnni", lambda: False)
    assert skip_reason(get_variant("int8"), CPU, frozenset({"--perf-speedups"})) == (
        "int8 needs a CPU with VNNI: without it torchao's int8 matmuls saturate (measured 33.7 dB from fp32)")
    assert skip_reason(get_variant("int8"), CUDA) is None


def test_best_stacks_run_on_their_own_device_only(monkeypatch):
    monkeypatch.setattr(variants_module, "dtype_supported", lambda dtype, device: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    assert skip_reason(get_variant("best-cpu"), CUDA) == "best-cpu is the CPU's stack (running on cuda)"
    assert skip_reason(get_variant("best-cpu"), CPU) is None
    assert skip_reason(get_variant("best-gpu"), CPU) == "best-gpu needs a CUDA GPU (running on cpu)"
    assert skip_reason(get_variant("best-gpu"), CUDA) is None


@pytest.mark.parametrize(("name", "package"), [("tome", "tomesd"), ("deepcache", "deepcache"), ("int8", "torchao")])
def test_missing_optional_package_names_what_to_install(monkeypatch, name, package):
    real_find_spec = importlib.util.find_spec
    module = get_variant(name).needs_package
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda wanted, package=None: None if wanted == module else real_find_spec(wanted, package))
    reason = skip_reason(get_variant(name), CPU, frozenset({"--perf-speedups"}))
    assert reason == f"{name} needs the optional package {package}: pip install {package}"


def test_opt_in_on_one_device_only():
    variant = Variant("cpu-opt-in", "opt-in on the CPU only", opt_in="--perf-x", opt_in_devices=("cpu",))
    assert skip_reason(variant, CPU) == "cpu-opt-in is opt-in on cpu: pass --perf-x"
    assert skip_reason(variant, CPU, frozenset({"--perf-x"})) is None
    assert skip_reason(variant, CUDA) is None


# --------------------------------------------------------------------------- helpers


def test_tensor_bytes_of_a_plain_tensor():
    tensor = torch.zeros(3, 4)
    assert tensor_bytes(tensor) == {tensor.data_ptr(): 48}


def test_time_first_calls_records_once_per_input_shape():
    module = torch.nn.Linear(4, 2)
    record = {}
    time_first_calls(module, record, synchronize=lambda: None)
    module(torch.zeros(1, 4))
    module(torch.zeros(1, 4))
    module(torch.zeros(3, 4))
    assert list(record) == ["1x4", "3x4"]
    assert all(seconds >= 0 for seconds in record.values())


# --------------------------------------------------------------------------- the store (tiny)


@pytest.fixture(scope="module")
def store():
    return PipelineStore(zoo.SyntheticSource(TINY, CPU), CPU)


def unet_output(unet, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, 4, 16, 16, generator=generator)
    context = torch.randn(batch, 77, TINY.unet["cross_attention_dim"], generator=generator)
    with torch.inference_mode():
        return unet(sample, torch.tensor(500), encoder_hidden_states=context, return_dict=False)[0]


def test_fused_qkv_adds_fused_weights_beside_the_shared_ones(store):
    baseline = store.models(get_variant("baseline"))
    fused = store.models(get_variant("fused-qkv"))
    processors = {type(processor) for processor in fused["unet"].attn_processors.values()}
    assert processors == {FusedAttnProcessor2_0}
    assert {type(processor) for processor in fused["vae"].attn_processors.values()} == {FusedAttnProcessor2_0}
    assert all(not hasattr(module, "to_qkv") for module in baseline["unet"].modules())  # left alone
    attention = fused["unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn1
    original = baseline["unet"].down_blocks[0].attentions[0].transformer_blocks[0].attn1
    assert attention.to_q.weight.data_ptr() == original.to_q.weight.data_ptr()
    assert torch.equal(attention.to_qkv.weight, torch.cat([original.to_q.weight, original.to_k.weight,
                                                           original.to_v.weight]))
    assert not attention.to_qkv.weight.requires_grad
    torch.testing.assert_close(unet_output(fused["unet"]), unet_output(baseline["unet"]), rtol=1e-4, atol=1e-5)
    assert store.weight_bytes(get_variant("fused-qkv")) > store.weight_bytes(get_variant("baseline"))


@pytest.mark.skipif(not has("tomesd"), reason="needs the optional package tomesd")
def test_tome_patches_the_variant_tree_only_and_is_deterministic(store):
    baseline = store.models(get_variant("baseline"))["unet"]
    tome = store.models(get_variant("tome"))["unet"]
    assert {type(block).__name__ for block in tome.modules() if hasattr(block, "_tome_info")} >= {"ToMeBlock"}
    assert not any(type(block).__name__ == "ToMeBlock" for block in baseline.modules())
    assert tome._tome_info["args"]["ratio"] == 0.5 and tome._tome_info["args"]["use_rand"] is False
    first = unet_output(tome)
    assert torch.equal(unet_output(tome), first)  # no random destinations: the same output every call
    assert not torch.equal(first, unet_output(baseline))  # tokens were merged


@pytest.mark.skipif(not has("DeepCache"), reason="needs the optional package deepcache")
def test_deepcache_wraps_one_unet_tree_per_pipeline(store):
    from diffperf.images.checks import raw_output

    variant = get_variant("deepcache")
    astronaut = store.pipeline(variant, ASTRONAUT)
    vase = store.pipeline(variant, VASE)
    shared = store.models(variant)["unet"]
    assert astronaut.unet is not vase.unet and astronaut.unet is not shared
    assert astronaut.unet.conv_in.weight.data_ptr() == shared.conv_in.weight.data_ptr()  # same weights
    assert "forward" not in vars(shared)  # the shared tree is not wrapped
    first = raw_output(astronaut, ASTRONAUT)
    raw_output(vase, VASE)  # each finds its steps in its own scheduler, in any order
    assert np.array_equal(raw_output(astronaut, ASTRONAUT), first)


@pytest.mark.skipif(not has("torchao"), reason="needs the optional package torchao")
def test_int8_quantizes_the_variant_tree_only(store):
    baseline = store.models(get_variant("baseline"))["unet"]
    int8 = store.models(get_variant("int8"))["unet"]
    linear = int8.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    original = baseline.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert type(linear.weight.data) is not torch.Tensor or linear.weight.dtype != torch.float32
    assert type(original.weight.data) is torch.Tensor and original.weight.dtype == torch.float32
    assert int8.conv_in.weight.data_ptr() == baseline.conv_in.weight.data_ptr()  # convolutions shared
    torch.testing.assert_close(unet_output(int8), unet_output(baseline), rtol=0.1, atol=0.1)
    assert store.weight_bytes(get_variant("int8")) < store.weight_bytes(get_variant("baseline"))


# --------------------------------------------------------------------------- diffperf variants


def test_variants_command_lists_the_new_variants(capsys):
    from diffperf import cli

    assert cli.main(["variants", "--profile", "tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "- best-cpu vs baseline [float32]: the CPU's fastest stack" in out
    assert "(best stack: its speed-up over fp32 is shown first)" in out
    for name in NEW:
        assert f"- {name} vs baseline " in out
    assert "skipped: best-gpu needs a CUDA GPU (running on cpu)" in out
