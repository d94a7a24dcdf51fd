"""Measure the optional speed-up variants on the CPU tiny profile (docs/variants.md, docs/similarity.md).

Usage (one process each, nothing else running: these are CPU-heavy and time what they run):

    # latency of candidate stacks against the fp32 baseline, rounds interleaved (B C B C ...)
    python tools/speedup_variants.py latency --rounds 8 --threads 2
    python tools/speedup_variants.py latency --rounds 8 --candidates deepcache best-cpu
    # how far each approximate variant's image is from the fp32 baseline's stored image, at its
    # documented setting and at worse ones (a higher ratio, a longer interval, coarser scales)
    python tools/speedup_variants.py images --threads 2 --json OUT/images-2t.json
    # torch.compile's compile time (first call per input shape) and its latency afterwards
    python tools/speedup_variants.py compile --rounds 8
    # record the optional variants' image baselines, the opt-in ones included (2 threads, as the others)
    python tools/speedup_variants.py record --threads 2 --variants fused-qkv tome deepcache int8 best-cpu

Candidates are declared variants or the ad hoc stacks of ``STACKS``; latency medians are of one
process (not a benchmark: ``pytest perf`` and ``diffperf calibrate`` are).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

from diffperf.stats.ratios import paired_ratio
from diffperf.images.baselines import ImageBaselines
from diffperf.cases.similarity import raw_output, scenario_conditions
from diffperf.images.similarity import compare
from diffperf.measure.process import steady_process
from diffperf.models import sd1
from diffperf.models.builtin import builtin_registry
from diffperf.models.speedups import ChannelsLast, Compile, DeepCache, FusedQKV, Precision, Student, TinyAutoencoder, ToMe
from diffperf.models.store import PipelineStore, clone_module
from diffperf.models.variants import Variant
from diffperf.models.zoo import SyntheticSource

REGISTRY = builtin_registry()
BASELINE = REGISTRY.variant("baseline")
SCENARIO_NAMES = tuple(scenario.name for scenario in sd1.SCENARIOS)
BK, TAESD = Student("bk-sdm-small"), TinyAutoencoder("taesd")

# Stacks tried for the CPU's best stack (besides the declared variants), and worse settings of the
# approximate variants (for the images command); all against the fp32 baseline.
STACKS = (
    Variant("deepcache-taesd", "sd1", (TAESD, DeepCache(3)), "baseline"),
    Variant("distilled-taesd-deepcache", "sd1", (BK, TAESD, DeepCache(3)), "baseline"),
    Variant("distilled-taesd-bf16", "sd1", (BK, TAESD, Precision("bfloat16")), "baseline"),
    Variant("distilled-taesd-deepcache-bf16", "sd1", (BK, TAESD, DeepCache(3), Precision("bfloat16")), "baseline"),
    Variant("distilled-taesd-channels-last", "sd1", (BK, TAESD, ChannelsLast()), "baseline"),
    Variant("distilled-taesd-fused", "sd1", (BK, TAESD, FusedQKV()), "baseline"),
    Variant("distilled-taesd-compile", "sd1", (BK, TAESD, Compile()), "baseline"),
    Variant("tome-0.6", "sd1", (ToMe(0.6),), "baseline"),
    Variant("tome-0.75", "sd1", (ToMe(0.75),), "baseline"),
    Variant("deepcache-4", "sd1", (DeepCache(4),), "baseline"),
    Variant("deepcache-5", "sd1", (DeepCache(5),), "baseline"),
)
REGISTRY.add(*STACKS)
DEFAULT_LATENCY = ("distilled-taesd", "deepcache", "deepcache-taesd", "distilled-taesd-deepcache",
                   "distilled-taesd-bf16", "distilled-taesd-channels-last", "distilled-taesd-fused", "fused-qkv",
                   "tome", "int8", "bf16")


def candidate(name: str) -> Variant:
    return REGISTRY.variant(name)


def tiny_scenario(name: str):
    return sd1.FAMILY.scenario(name).scaled(sd1.FAMILY.scale("tiny"))


def make_store() -> PipelineStore:
    cpu = torch.device("cpu")
    return PipelineStore(REGISTRY, SyntheticSource("tiny", cpu), cpu)


def call(store, pipe, scenario, variant) -> float:
    generator = torch.Generator(device="cpu").manual_seed(scenario.seed)
    start = time.perf_counter()
    with torch.inference_mode(), store.during_calls(variant):
        pipe(**scenario.pipeline_kwargs(), generator=generator, output_type="np")
    return time.perf_counter() - start


def paired(store, variant, scenario, rounds: int, warmup: int = 2) -> dict:
    """Interleaved rounds of the baseline and ``variant``: medians and the median pair ratio."""
    base = store.pipeline(BASELINE, scenario)
    pipe = store.pipeline(variant, scenario)
    for _ in range(warmup):
        call(store, base, scenario, BASELINE)
        call(store, pipe, scenario, variant)
    base_times, times = [], []
    for _ in range(rounds):
        base_times.append(call(store, base, scenario, BASELINE))
        times.append(call(store, pipe, scenario, variant))
    estimate = paired_ratio(base_times, times)  # the gate's statistic: median pair ratio, exact 95% interval
    return {"baseline_ms": 1000 * statistics.median(base_times), "variant_ms": 1000 * statistics.median(times),
            "speedup": estimate.median, "low": estimate.low, "high": estimate.high, "rounds": rounds}


def cmd_latency(args) -> None:
    store = make_store()
    rows = {}
    for name in args.candidates or DEFAULT_LATENCY:
        variant = candidate(name)
        for scenario_name in SCENARIO_NAMES:
            scenario = tiny_scenario(scenario_name)
            try:
                row = paired(store, variant, scenario, args.rounds)
            except Exception as error:  # noqa: BLE001 - an exploration tool: say what broke and go on
                row = {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"}
            rows[f"{name}-{scenario_name}"] = row
            print(f"{name}-{scenario_name}: {json.dumps(row)}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def quantize_per_tensor(unet) -> None:
    from torchao.quantization import Int8DynamicActivationInt8WeightConfig, PerTensor, quantize_

    quantize_(unet, Int8DynamicActivationInt8WeightConfig(granularity=PerTensor(), set_inductor_config=False))


def cmd_images(args) -> None:
    store = make_store()
    baselines = ImageBaselines(args.baselines, "tiny", "cpu")
    rows = {}
    names = args.candidates or ["fused-qkv", "tome", "tome-0.6", "tome-0.75", "deepcache", "deepcache-4",
                                "deepcache-5", "int8", "int8-per-tensor"]
    for name in names:
        for scenario_name in SCENARIO_NAMES:
            scenario = tiny_scenario(scenario_name)
            if name == "int8-per-tensor":
                variant = BASELINE
                pipe = store.pipeline(BASELINE, scenario)
                pipe.unet = clone_module(pipe.unet)
                quantize_per_tensor(pipe.unet)
            else:
                variant = candidate(name)
                pipe = store.pipeline(variant, scenario)
            first = raw_output(pipe, scenario, lambda: store.during_calls(variant))
            again = raw_output(pipe, scenario, lambda: store.during_calls(variant))
            fp32 = baselines.load("baseline", scenario.name, expected=scenario_conditions(scenario)).raw
            result = compare(first, fp32, "same")
            row = {key: getattr(result, key) for key in
                   ("psnr_db", "ssim", "cosine_distance", "plain_cosine_distance", "max_abs_diff")}
            row["one_minus_ssim"] = 1 - row["ssim"]
            row["repeat_identical"] = bool(np.array_equal(first, again))
            rows[f"{name}-{scenario_name}"] = row
            if args.save:
                np.save(Path(args.save) / f"{name}-{scenario_name}.npy", first)
            print(f"{name}-{scenario_name}: PSNR {row['psnr_db']:.2f} dB, 1-SSIM {row['one_minus_ssim']:.2e}, "
                  f"centred cos {row['cosine_distance']:.2e}, max|diff| {row['max_abs_diff']:.3e}, "
                  f"repeat identical {row['repeat_identical']}", flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


def cmd_compile(args) -> None:
    store = make_store()
    variant = candidate(args.variant)
    rows = {}
    for scenario_name in SCENARIO_NAMES:
        scenario = tiny_scenario(scenario_name)
        start = time.perf_counter()
        pipe = store.pipeline(variant, scenario)
        first = call(store, pipe, scenario, variant)
        row = {"first_call_s": first, "build_s": time.perf_counter() - start - first}
        row.update(paired(store, variant, scenario, args.rounds))
        row["compile_seconds"] = dict(store.compile_seconds.get(variant.name, {}))
        rows[scenario_name] = row
        print(f"{args.variant}-{scenario_name}: {json.dumps(row)}", flush=True)


def cmd_record(args) -> None:
    """Record the new variants' image baselines as ``pytest perf/test_similarity.py --perf-update-baselines
    --perf-speedups -k NAME`` does (the opt-in ones included), through the same case code."""
    from diffperf.cases.similarity import run_similarity_case
    from diffperf.options import PerfOptions
    from diffperf.session import PerfSession

    options = PerfOptions(profile="tiny", device="cpu", baselines_dir=str(Path(args.baselines).resolve()),
                          output_dir=str(Path(args.output).resolve()), update_baselines=True,
                          enabled=frozenset({"--perf-speedups", "--perf-compile"}))
    session = PerfSession(options, REGISTRY)
    for name in args.variants:
        for scenario_name in SCENARIO_NAMES:
            comparisons = run_similarity_case(session, name, scenario_name)
            checked = ", ".join(f"{label}: {c.kind} {'passed' if c.passed else 'FAILED'}" for label, c in comparisons.items())
            print(f"recorded {name}-{scenario_name} ({checked or 'nothing to check while recording'})", flush=True)
        session.store.keep_only([])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    latency = commands.add_parser("latency")
    latency.add_argument("--rounds", type=int, default=8)
    latency.add_argument("--candidates", nargs="*", choices=list(REGISTRY.variants))
    latency.add_argument("--json")
    images = commands.add_parser("images")
    images.add_argument("--candidates", nargs="*")
    images.add_argument("--baselines", default="baselines")
    images.add_argument("--json")
    images.add_argument("--save", help="directory for the raw outputs (.npy)")
    compiled = commands.add_parser("compile")
    compiled.add_argument("--variant", default="compile")
    compiled.add_argument("--rounds", type=int, default=8)
    recording = commands.add_parser("record")
    recording.add_argument("--variants", nargs="+", required=True)
    recording.add_argument("--baselines", default="baselines")
    recording.add_argument("--output", default="perf-output")
    for sub in (latency, images, compiled, recording):
        sub.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    steady_process("cpu")  # as pytest perf does, before any model is built
    if args.threads:
        torch.set_num_threads(args.threads)
    {"latency": cmd_latency, "images": cmd_images, "compile": cmd_compile, "record": cmd_record}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
