"""The catalogue of variants (diffperf.models.catalogue): what ``diffperf variants`` lists, from meta-device builds."""

import torch

from diffperf.models.builtin import builtin_registry
from diffperf.models.catalogue import variants_table

CPU = torch.device("cpu")


def test_every_variant_with_its_parameter_counts_and_whether_it_runs_on_the_device():
    registry = builtin_registry()
    rows = {row["variant"]: row for row in variants_table("tiny", CPU)}  # the built-in registry by default
    assert list(rows) == list(registry.variants)
    baseline = rows["baseline"]
    assert (baseline["family"], baseline["reference"], baseline["runs_here"], baseline["why_not"]) == (
        "sd1", None, True, None)
    assert set(baseline["parameters"]) == {"unet", "text_encoder", "vae"}  # tokenizers have none
    assert all(count > 0 for count in baseline["parameters"].values())
    # Components shared between variants are counted once and show the same count.
    assert rows["fp16"]["parameters"] == baseline["parameters"]
    assert rows["tf32"]["why_not"] == "tf32 needs a CUDA GPU (running on cpu)" and not rows["tf32"]["runs_here"]
    assert rows["compile"]["opt_in"] == "--perf-compile" and rows["compile"]["runs_here"]


def test_the_registry_given_is_the_one_listed():
    registry = builtin_registry()
    registry.variants = {name: variant for name, variant in registry.variants.items() if name == "baseline"}
    (row,) = variants_table("tiny", CPU, registry)
    assert row["variant"] == "baseline" and row["changes"] == registry.variant("baseline").describe()
