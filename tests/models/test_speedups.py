"""Unit tests of today's speed-up variants (fused QKV, ToMe, DeepCache, int8, the best stacks): their
declarations and skip reasons, and how diffperf.models.store applies each speed-up (diffperf.models.speedups)
to the variant's own module tree only. Tests that need an optional package (pip install -e '.[speedups]')
skip without it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from diffusers.models.attention_processor import FusedAttnProcessor2_0

from diffperf.gate.verdicts import GateRow
from diffperf.images.similarity import THRESHOLDS
from diffperf.models import sd1, zoo
from diffperf.models import speedups as speedups_module
from diffperf.models.builtin import builtin_registry
from diffperf.models.optin import OptIn
from diffperf.models.speedups import DeepCache, FusedQKV, Int8Dynamic, ToMe, time_first_calls
from diffperf.models.store import PipelineStore, tensor_bytes
from diffperf.models.variants import Variant
from diffperf.render import gate_text

CPU = torch.device("cpu")
CUDA = torch.device("cuda")  # only its type is looked at
NEW = ("fused-qkv", "tome", "deepcache", "int8", "best-cpu", "best-gpu")
REGISTRY = builtin_registry()
TINY_SCALE = sd1.FAMILY.scale("tiny")
ASTRONAUT = sd1.FAMILY.scenario("astronaut").scaled(TINY_SCALE)
VASE = sd1.FAMILY.scenario("vase").scaled(TINY_SCALE)


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def variant(name: str) -> Variant:
    return REGISTRY.variant(name)


def skip(name: str, device: torch.device, enabled: frozenset[str] = frozenset()) -> str | None:
    return REGISTRY.skip_reason(variant(name), None, device, enabled)


# --------------------------------------------------------------------------- declarations


def test_new_variants_are_measured_against_the_fp32_baseline():
    for name in NEW:
        assert variant(name).reference == "baseline", name


def test_each_isolates_one_change():
    assert [type(speedup) for speedup in variant("fused-qkv").speedups] == [FusedQKV]
    assert variant("tome").speedups == (ToMe(0.5),) and variant("tome").speedups[0].max_downsample == 1
    assert variant("deepcache").speedups == (DeepCache(3),) and variant("deepcache").speedups[0].branch == 0
    assert [type(speedup) for speedup in variant("int8").speedups] == [Int8Dynamic]
    baseline = variant("baseline").plan(sd1.FAMILY)
    for name in ("fused-qkv", "tome", "deepcache", "int8"):
        plan = variant(name).plan(sd1.FAMILY)
        assert plan.components == baseline.components and plan.dtype == "float32", name
        assert not plan.channels_last and not plan.tf32, name
    # DeepCache wraps each pipeline's UNet: one UNet tree per pipeline, over the same weights.
    assert variant("deepcache").plan(sd1.FAMILY).denoiser_per_pipeline and not baseline.denoiser_per_pipeline


def test_approximate_variants_have_their_own_fp32_bound():
    assert variant("fused-qkv").fp32_check() == "fp32"
    for name in ("tome", "deepcache", "int8"):
        assert variant(name).fp32_check() == name
    for declared in REGISTRY.variants.values():
        check = declared.fp32_check()
        assert check is None or check in THRESHOLDS, declared.name
        assert declared.own_check() in THRESHOLDS, declared.name


def test_one_best_stack_per_device_type_shown_first():
    best = [declared for declared in sd1.VARIANTS if declared.best_stack]
    assert [declared.name for declared in best] == ["best-cpu", "best-gpu"]
    assert [declared.devices for declared in best] == [("cpu",), ("cuda",)]
    for declared in REGISTRY.variants.values():
        assert not declared.best_stack or len(declared.devices) == 1, declared.name
    # The gate's rows carry the variant's flag, and the best stacks' rows come first.
    rows = [GateRow("speed-up", declared.name, declared.reference or declared.name, "astronaut", "ok",
                    family=declared.family, best_stack=declared.best_stack) for declared in sd1.VARIANTS]
    ordered = [row.variant for row in gate_text.best_first(rows)]
    assert ordered[:2] == ["best-cpu", "best-gpu"]
    assert ordered[2:] == [declared.name for declared in sd1.VARIANTS if not declared.best_stack]


def test_opt_in_on_the_cpu_only(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    monkeypatch.setattr(speedups_module, "cpu_has_vnni", lambda: True)
    assert skip("tome", CPU) == "tome is opt-in on cpu (no faster on the tiny CPU profile): pass --perf-speedups"
    for name in ("fused-qkv", "tome", "deepcache", "int8"):
        assert skip(name, CPU).startswith(f"{name} is opt-in on cpu ("), name
        assert skip(name, CPU, frozenset({"--perf-speedups"})) is None, name
        assert skip(name, CUDA) is None, name
    assert skip("best-cpu", CPU) is None  # DeepCache on the CPU by default


def test_fp16_family_is_opt_in_on_the_cpu(monkeypatch):
    monkeypatch.setattr(speedups_module, "dtype_supported", lambda dtype, device: True)
    for name in ("fp16", "distilled-fp16", "distilled-taesd-fp16"):
        assert skip(name, CPU) == (
            f"{name} is opt-in on cpu (slower than fp32 on CPUs; time budget): pass --perf-speedups"), name
        assert skip(name, CPU, frozenset({"--perf-speedups"})) is None, name
        assert skip(name, CUDA) is None, name


def test_int8_needs_vnni_on_the_cpu(monkeypatch):
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    monkeypatch.setattr(speedups_module, "cpu_has_vnni", lambda: False)
    assert skip("int8", CPU, frozenset({"--perf-speedups"})) == (
        "int8 needs a CPU with VNNI: without it torchao's int8 matmuls saturate (measured 33.7 dB from fp32)")
    assert skip("int8", CUDA) is None


def test_best_stacks_run_on_their_own_device_only(monkeypatch):
    monkeypatch.setattr(speedups_module, "dtype_supported", lambda dtype, device: True)
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, package=None: object())
    assert skip("best-cpu", CUDA) == "best-cpu is meant for cpu (running on cuda)"
    assert skip("best-cpu", CPU) is None
    assert skip("best-gpu", CPU) == "best-gpu is meant for cuda (running on cpu)"
    assert skip("best-gpu", CUDA) is None


@pytest.mark.parametrize(("name", "module", "package"), [
    ("tome", "tomesd", "tomesd"), ("deepcache", "DeepCache", "deepcache"), ("int8", "torchao", "torchao")])
def test_missing_optional_package_names_what_to_install(monkeypatch, name, module, package):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda wanted, package=None: None if wanted == module else real_find_spec(wanted, package))
    reason = skip(name, CPU, frozenset({"--perf-speedups"}))
    assert reason == f"{name} needs the optional package {package}: pip install {package}"


def test_opt_in_on_one_device_only():
    registry = builtin_registry()
    declared = Variant("cpu-opt-in", "sd1", description="opt-in on the CPU only",
                       opt_in=OptIn("--perf-speedups", devices=("cpu",)))
    registry.add(declared)
    assert registry.skip_reason(declared, None, CPU) == "cpu-opt-in is opt-in on cpu: pass --perf-speedups"
    assert registry.skip_reason(declared, None, CPU, frozenset({"--perf-speedups"})) is None
    assert registry.skip_reason(declared, None, CUDA) is None


def test_opt_in_option_must_be_a_declared_one():
    with pytest.raises(ValueError, match=r"^opt-in option '--perf-x': choose one of --perf-speedups, --perf-compile$"):
        OptIn("--perf-x")


# --------------------------------------------------------------------------- tensor sizes and first calls


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
    return PipelineStore(builtin_registry(), zoo.SyntheticSource("tiny", CPU), CPU)


def unet_output(unet, batch: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    sample = torch.randn(batch, 4, 16, 16, generator=generator)
    context = torch.randn(batch, 77, sd1.TINY_UNET["cross_attention_dim"], generator=generator)
    with torch.inference_mode():
        return unet(sample, torch.tensor(500), encoder_hidden_states=context, return_dict=False)[0]


def test_fused_qkv_adds_fused_weights_beside_the_shared_ones(store):
    baseline = store.models(variant("baseline"))
    fused = store.models(variant("fused-qkv"))
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
    assert store.weight_bytes(variant("fused-qkv")) > store.weight_bytes(variant("baseline"))


@pytest.mark.skipif(not has("tomesd"), reason="needs the optional package tomesd")
def test_tome_patches_the_variant_tree_only_and_is_deterministic(store):
    baseline = store.models(variant("baseline"))["unet"]
    tome = store.models(variant("tome"))["unet"]
    assert {type(block).__name__ for block in tome.modules() if hasattr(block, "_tome_info")} >= {"ToMeBlock"}
    assert not any(type(block).__name__ == "ToMeBlock" for block in baseline.modules())
    assert tome._tome_info["args"]["ratio"] == 0.5 and tome._tome_info["args"]["use_rand"] is False
    first = unet_output(tome)
    assert torch.equal(unet_output(tome), first)  # no random destinations: the same output every call
    assert not torch.equal(first, unet_output(baseline))  # tokens were merged


@pytest.mark.skipif(not has("DeepCache"), reason="needs the optional package deepcache")
def test_deepcache_wraps_one_unet_tree_per_pipeline(store):
    from diffperf.cases.similarity import raw_output

    deepcache = variant("deepcache")
    astronaut = store.pipeline(deepcache, ASTRONAUT)
    vase = store.pipeline(deepcache, VASE)
    shared = store.models(deepcache)["unet"]
    assert astronaut.unet is not vase.unet and astronaut.unet is not shared
    assert astronaut.unet.conv_in.weight.data_ptr() == shared.conv_in.weight.data_ptr()  # same weights
    assert "forward" not in vars(shared)  # the shared tree is not wrapped
    first = raw_output(astronaut, ASTRONAUT)
    raw_output(vase, VASE)  # each finds its steps in its own scheduler, in any order
    assert np.array_equal(raw_output(astronaut, ASTRONAUT), first)


@pytest.mark.skipif(not has("torchao"), reason="needs the optional package torchao")
def test_int8_quantizes_the_variant_tree_only(store):
    baseline = store.models(variant("baseline"))["unet"]
    int8 = store.models(variant("int8"))["unet"]
    linear = int8.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    original = baseline.down_blocks[0].attentions[0].transformer_blocks[0].attn1.to_q
    assert type(linear.weight.data) is not torch.Tensor or linear.weight.dtype != torch.float32
    assert type(original.weight.data) is torch.Tensor and original.weight.dtype == torch.float32
    assert int8.conv_in.weight.data_ptr() == baseline.conv_in.weight.data_ptr()  # convolutions shared
    torch.testing.assert_close(unet_output(int8), unet_output(baseline), rtol=0.1, atol=0.1)
    assert store.weight_bytes(variant("int8")) < store.weight_bytes(variant("baseline"))


# --------------------------------------------------------------------------- diffperf variants


def test_variants_command_lists_the_new_variants(capsys, monkeypatch, tmp_path):
    from diffperf import cli

    monkeypatch.chdir(tmp_path)  # no perf/ suite here: the built-in declarations only
    assert cli.main(["variants", "--profile", "tiny", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "- best-cpu vs baseline [float32]: the CPU's fastest stack" in out
    assert "(best stack: its speed-up over fp32 is shown first)" in out
    for name in NEW:
        assert f"- {name} vs baseline " in out
    assert "skipped: best-gpu is meant for cuda (running on cpu)" in out
