"""Measure the numerical variation of each variant's raw output, to calibrate diffperf.images.similarity.

Usage (CPU, tiny profile; docs/similarity.md has the results):

    # one process per configuration; each writes the raw outputs of every runnable variant
    python tools/similarity_calibration.py run OUT/default-2t.npz --threads 2 --repeat --planted
    python tools/similarity_calibration.py run OUT/default-1t.npz --threads 1
    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 \
        python tools/similarity_calibration.py run OUT/avx2-2t.npz --threads 2
    # fp16 without fast kernels, and TF32 emulated on the CPU, against fp32 from the same process
    python tools/similarity_calibration.py run OUT/half-1t.npz --threads 1 --force --planted \
        --variants baseline fp16 --emulate tf32-emulated tf32-conv-emulated
    # compare them all with a reference configuration (the first file), then tabulate
    python tools/similarity_calibration.py analyze OUT/default-2t.npz OUT/*.npz --json OUT/rows.json
    python tools/similarity_calibration.py report OUT/rows.json
    # record baselines of variants that lack fast kernels here but run elsewhere (fp16 on a CPU)
    python tools/similarity_calibration.py record --variants fp16 distilled-fp16 distilled-taesd-fp16
    # FLUX's cache variants against fp32 over other seeds and prompts too (docs/similarity.md, "Caches")
    python tools/similarity_calibration.py run OUT/flux-2t.npz --family flux --threads 2 --repeat --planted \
        --seeds 1 2 --prompts "a golden vase with different flowers" "a red bicycle leaning on a brick wall"

``run`` stores, per variant and scenario, the clean raw output (and with ``--repeat`` a second
run in the same process; with ``--planted`` the planted changes: another seed, one step fewer
than the call makes (one more for a one-step sampler), the variant's denoiser (UNet or
transformer, or the teacher its student is derived from) weights x (1 + 1e-3 N(0, 1)), the other
scheduler, and for a variant
with a diffusers cache its stale state: the cache's state of a call with another seed left in place
for the next call). ``--seeds`` and ``--prompts`` add workloads: every variant also runs each
scenario with those seeds and prompts (stored as ``SCENARIO@pPsS``: prompt P, 0 the scenario's own,
and seed S), so that a variant's error against fp32 is measured on more than one image.
``analyze`` prints, for every variant, the metrics of each configuration against the reference
file's clean output under the variant's own kind, the metrics against fp32 (every workload), and
each planted change's metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
import torch

from diffperf.cases.similarity import raw_output
from diffperf.models.store import perturbed_copy
from diffperf.images.similarity import THRESHOLDS, ImageComparison, compare
from diffperf.models import zoo
from diffperf.models.builtin import builtin_registry
from diffperf.models.caches import Cache, pipeline_denoiser
from diffperf.models.store import PipelineStore
from diffperf.models.variants import Variant

PLANTED = ("seed", "steps", "weights", "scheduler", "stale")

WORSE_CACHES = {
    "first-block": {"threshold": 0.5},
    "taylorseer": {"disable_cache_before_step": 1, "taylor_factors_dtype": torch.bfloat16},
    "magcache": {"threshold": 0.2},
    "fastercache": {"spatial_attention_block_skip_range": 3, "spatial_attention_timestep_skip_range": (-1, 901)},
    "pab": {"spatial_attention_block_skip_range": 3},
}
"""A worse setting of each diffusers cache (``--planted``): more skipped on the tiny profile's 7 steps, compared with
fp32 under the variant's fp32 bound (``analyze``: ``worse-vs-fp32``)."""
REGISTRY = builtin_registry()


def _runnable(family: str, device, force: bool = False):
    """The family's variants that run here; with ``force`` also those lacking only fast kernels (fp16 on most CPUs)."""
    runnable = []
    for variant in REGISTRY.variants.values():
        if variant.family != family:
            continue
        reason = REGISTRY.skip_reason(variant, None, device, frozenset({"--perf-speedups"}))
        if reason is None or (force and "kernels, which this" in reason):
            runnable.append(variant)
    return runnable


def _scenario_names(family) -> list[str]:
    return [scenario.name for scenario in family.scenarios]


def _round_to_tf32(tensor):
    """Round float32 to TF32 (10-bit mantissa), to nearest, as tensor cores read their inputs."""
    if not isinstance(tensor, torch.Tensor) or tensor.dtype != torch.float32:
        return tensor
    bits = tensor.contiguous().view(torch.int32)
    return ((bits + 0x1000) & ~0x1FFF).view(torch.float32)


class EmulatedTF32(torch.overrides.TorchFunctionMode):
    """Emulate CUDA TF32 on the CPU: the operands of matmuls (and, with ``conv``, convolutions) are
    rounded to TF32 before an fp32 computation. torch.backends.cuda.matmul.allow_tf32 (the tf32
    variant) covers matmuls and attention; cuDNN convolutions use TF32 by default on CUDA anyway."""

    def __init__(self, conv: bool = False):
        super().__init__()
        import torch.nn.functional as F

        self.functions = {F.linear, torch.matmul, torch.bmm, torch.baddbmm, torch.Tensor.matmul,
                          torch.Tensor.__matmul__, F.scaled_dot_product_attention}
        if conv:
            self.functions.add(F.conv2d)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in self.functions:
            args = tuple(_round_to_tf32(a) for a in args)
            kwargs = {k: _round_to_tf32(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


class PerturbedSource:
    """A component source whose fp32 denoiser component ``name`` (the UNet or transformer a variant runs, or the
    teacher its student is derived from) is ``denoiser``; every other component comes from ``source``."""

    def __init__(self, source, name: str, denoiser: torch.nn.Module):
        self.source = source
        self.name = name
        self.denoiser = denoiser

    def build(self, family, component: str, meta: bool = False) -> torch.nn.Module:
        if component == self.name and not meta:
            return self.denoiser
        return self.source.build(family, component, meta=meta)

    def __getattr__(self, name):  # name, derives_students, scheduler_config
        return getattr(self.source, name)


EMULATED = {"tf32-emulated": lambda: EmulatedTF32(conv=False), "tf32-conv-emulated": lambda: EmulatedTF32(conv=True)}


def _workloads(scenario, prompts: list[str], seeds: list[int]) -> list[tuple[str, dict, int]]:
    """The extra workloads of ``--prompts`` and ``--seeds``: (key suffix, prompt change, seed), every combination of
    the scenario's prompt and the given ones with the scenario's seed and the given ones, but the scenario's own."""
    found = []
    for index, prompt in enumerate([scenario.prompt, *prompts]):
        for seed in dict.fromkeys([scenario.seed, *seeds]):
            if index or seed != scenario.seed:
                found.append((f"@p{index}s{seed}", {"prompt": prompt}, seed))
    return found


def _worse(variant: Variant, cache: Cache) -> Variant:
    """``variant`` with ``cache`` at its worse setting (:data:`WORSE_CACHES`), under another name."""
    worse = Cache(cache.kind, **{**dict(cache.settings), **WORSE_CACHES[cache.kind]})
    speedups = tuple(worse if speedup is cache else speedup for speedup in variant.speedups)
    return Variant(f"{variant.name}-worse", variant.family, speedups, variant.reference)


def _stale_output(pipe, scenario, settings, arguments) -> np.ndarray:
    """The variant's output when its cache keeps the state of the call before (one with another seed): the
    pipeline's end-of-call reset (``maybe_free_model_hooks``) is skipped for both calls."""
    pipe.maybe_free_model_hooks = lambda: None
    try:
        raw_output(pipe, scenario, settings, seed=scenario.seed + 1, arguments=arguments)
        return raw_output(pipe, scenario, settings, arguments=arguments)
    finally:
        del pipe.maybe_free_model_hooks
        pipeline_denoiser(pipe)._reset_stateful_cache()


def run(args) -> None:
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    family = REGISTRY.family(args.family)
    scale = family.scale(args.profile)
    source = zoo.make_source(args.profile, device)
    store = PipelineStore(REGISTRY, source, device)
    arrays = {}
    start = time.perf_counter()
    variants = [v for v in _runnable(family.name, device, args.force) if not args.variants or v.name in args.variants]
    for name in args.emulate:
        for scenario_name in _scenario_names(family):
            scenario = family.scenario(scenario_name).scaled(scale)
            pipe = store.pipeline(REGISTRY.variant(family.baseline), scenario)
            with EMULATED[name]():
                arrays[f"{name}/{scenario_name}/clean"] = raw_output(pipe, scenario)
    for variant in variants:
        for scenario_name in _scenario_names(family):
            scenario = family.scenario(scenario_name).scaled(scale)
            pipe = store.pipeline(variant, scenario)
            settings = lambda: store.during_calls(variant)  # noqa: E731
            arguments = store.call_plan(variant, scenario).arguments
            key = f"{variant.name}/{scenario_name}"
            arrays[f"{key}/clean"] = raw_output(pipe, scenario, settings, arguments=arguments)
            if args.repeat:
                arrays[f"{key}/repeat"] = raw_output(pipe, scenario, settings, arguments=arguments)
            for suffix, change, seed in _workloads(scenario, args.prompts, args.seeds):
                arrays[f"{key}{suffix}/clean"] = raw_output(pipe, scenario, settings, seed=seed,
                                                            arguments={**arguments, **change})
            if args.planted:
                arrays[f"{key}/seed"] = raw_output(pipe, scenario, settings, seed=scenario.seed + 1,
                                                   arguments=arguments)
                # One step fewer than the call makes (one more for a one-step sampler).
                steps = store.call_plan(variant, scenario).steps
                arrays[f"{key}/steps"] = raw_output(pipe, scenario, settings, steps=steps - 1 if steps > 1 else 2,
                                                    arguments=arguments)
                others = [name for name in family.schedulers if name != scenario.scheduler]
                if others:  # a family with one scheduler has no other to plant
                    other = family.make_scheduler(others[0], source.scheduler_config(family))
                    swapped = zoo.assemble_pipeline(family, store.models(variant), other)
                    arrays[f"{key}/scheduler"] = raw_output(swapped, scenario, settings, arguments=arguments)
                caches = [speedup for speedup in variant.speedups if isinstance(speedup, Cache)]
                if caches:
                    arrays[f"{key}/stale"] = _stale_output(pipe, scenario, settings, arguments)
                    worse = _worse(variant, caches[0])
                    arrays[f"{key}/worse"] = raw_output(store.pipeline(worse, scenario), scenario,
                                                        lambda: store.during_calls(worse), arguments=arguments)
        if args.planted:
            # Perturb the fp32 source of the variant's denoiser (its own component, or the teacher its student is
            # derived from) and rebuild the variant from it (casts, students, layout).
            declared = family.component(store.plan(variant).components[family.denoiser])
            name = declared.teacher if declared.derive is not None else declared.name
            denoiser = perturbed_copy(store.component(family.name, name, torch.float32))
            perturbed = PipelineStore(REGISTRY, PerturbedSource(source, name, denoiser), device)
            for scenario_name in _scenario_names(family):
                scenario = family.scenario(scenario_name).scaled(scale)
                pipe = perturbed.pipeline(variant, scenario)
                arrays[f"{variant.name}/{scenario_name}/weights"] = raw_output(
                    pipe, scenario, lambda: perturbed.during_calls(variant),
                    arguments=perturbed.call_plan(variant, scenario).arguments,
                )
        store.keep_only([v.name for v in variants[variants.index(variant) + 1:]])
    meta = {
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "env": {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "ONEDNN_MAX_CPU_ISA",
                                            "OMP_NUM_THREADS") if k in os.environ},
        "seconds": time.perf_counter() - start,
    }
    np.savez_compressed(args.out, meta=json.dumps(meta), **arrays)
    print(json.dumps(meta))


def _label(path: str) -> str:
    return os.path.splitext(os.path.basename(path))[0]


def _row(variant: str, scenario: str, what: str, comparison: ImageComparison) -> dict:
    """One row of ``analyze``'s table (and JSON): a comparison's numbers."""
    return dict(variant=variant, scenario=scenario, kind=comparison.kind, what=what, psnr=comparison.psnr_db,
                ssim=comparison.ssim, cos=comparison.cosine_distance, plain=comparison.plain_cosine_distance,
                absdiff=comparison.max_abs_diff, passed=comparison.passed)


def analyze(args) -> None:
    reference = np.load(args.reference)
    others = [(p, np.load(p)) for p in args.files]
    rows = []
    keys = sorted(k[: -len("/clean")] for k in reference.files if k.endswith("/clean"))
    for key in keys:
        variant_name, scenario = key.split("/")
        variant = REGISTRY.variant("tf32") if variant_name in EMULATED else REGISTRY.variant(variant_name)
        fp32_variant = REGISTRY.family_of(variant).baseline
        expected = reference[f"{key}/clean"]
        kind = variant.own_check()
        for path, data in others:
            for run_name in ("clean", "repeat"):
                name = f"{key}/{run_name}"
                if name not in data.files or (path == args.reference and run_name == "clean"):
                    continue
                rows.append(_row(variant_name, scenario, f"{_label(path)}:{run_name}",
                                 compare(data[name], expected, kind)))
        for planted in PLANTED:
            name = f"{key}/{planted}"
            if name in reference.files:
                comparison = compare(reference[name], expected, kind)
                rows.append(_row(variant_name, scenario, f"planted:{planted}", comparison))
        if variant.fp32_check() and variant_name != fp32_variant:
            fp32 = reference[f"{fp32_variant}/{scenario}/clean"]
            if f"{key}/worse" in reference.files:
                rows.append(_row(variant_name, scenario, "worse-vs-fp32",
                                 compare(reference[f"{key}/worse"], fp32, variant.fp32_check())))
            for path, data in others:
                name = f"{key}/clean"
                if name in data.files:
                    rows.append(_row(variant_name, scenario, f"vs-fp32:{_label(path)}",
                                     compare(data[name], fp32, variant.fp32_check())))
    for row in rows:
        print(f"{row['variant']:16s} {row['scenario']:10s} {row['kind']:9s} {row['what']:28s} "
              f"PSNR {row['psnr']:7.1f}  SSIM {row['ssim']:.7f}  cos {row['cos']:.2e}  plain {row['plain']:.2e}  "
              f"maxdiff {row['absdiff']:.2e}  {'pass' if row['passed'] else 'FAIL'}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(rows, handle, indent=1, default=float)
    print("thresholds:", {k: v.__dict__ for k, v in THRESHOLDS.items()})


def record(args) -> None:
    """Record image baselines of variants that lack fast kernels here (fp16 on most CPUs): the command
    `diffperf record-baselines --device cpu VARIANT...`, with this script's thread count."""
    from diffperf import cli

    torch.set_num_threads(args.threads)
    code = cli.main(["record-baselines", "--device", "cpu", "--profile", args.profile, "--baselines", args.baselines,
                     *args.variants])
    if code:
        sys.exit(code)


def _worst(rows):
    finite = list(rows)
    return {
        "psnr": min(r["psnr"] for r in finite),
        "dssim": max(1 - r["ssim"] for r in finite),
        "cos": max(r["cos"] for r in finite),
        "absdiff": max(r["absdiff"] for r in finite),
        "passed": all(r["passed"] for r in finite),
        "n": len(finite),
    }


def _fmt(w) -> str:
    if w is None:
        return "-"
    if w["psnr"] == float("inf"):
        return "identical"
    return f"{w['psnr']:.1f} dB / {w['dssim']:.1e} / {w['cos']:.1e} / {w['absdiff']:.1e}"


def report(args) -> None:
    """A Markdown table per variant from ``analyze --json`` outputs."""
    known = list(REGISTRY.variants)
    rows = [row for path in args.json_files for row in json.load(open(path))]
    names = [n for n in known if any(r["variant"] == n for r in rows)]
    names += sorted({r["variant"] for r in rows} - set(known))
    print("| variant | own check | clean vs own baseline, worst of thread counts and ISAs | "
          "vs fp32 (this machine; worst) | weakest planted change | margin (PSNR dB: clean - limit, limit - planted; "
          "cos dist: limit / clean, planted / limit) |")
    print("|---|---|---|---|---|---|")
    for name in names:
        mine = [r for r in rows if r["variant"] == name]
        noise = [r for r in mine if not r["what"].startswith(("planted", "vs-fp32", "worse"))]
        fp32 = [r for r in mine if r["what"].startswith("vs-fp32")]
        planted = [r for r in mine if r["what"].startswith("planted")]
        kind = mine[0]["kind"] if name in known else None
        own = _worst(noise) if noise else None
        fp32_worst = _worst(fp32) if fp32 else None
        here = [r for r in fp32 if r["what"].split(":")[1] in args.here]
        fp32_cell = "-" if not fp32 else (
            f"{fp32[0]['kind']}: {_fmt(_worst(here)) if here else '-'}; {_fmt(fp32_worst)}"
            f" {'pass' if fp32_worst['passed'] else 'FAIL'}")
        if planted:
            by_change = {}
            for r in planted:
                by_change.setdefault(r["what"].split(":")[1], []).append(r)
            # A change is caught when it fails in every scenario; the weakest caught one is the one
            # whose least-affected scenario is closest to the clean run.
            caught = {c: rs for c, rs in by_change.items() if not any(r["passed"] for r in rs)}
            missed = sorted(set(by_change) - set(caught))
            weakest_name, weakest_rows = max(caught.items(), key=lambda kv: max(r["psnr"] for r in kv[1]))
            weakest = {"psnr": max(r["psnr"] for r in weakest_rows), "cos": min(r["cos"] for r in weakest_rows),
                       "dssim": min(1 - r["ssim"] for r in weakest_rows),
                       "absdiff": min(r["absdiff"] for r in weakest_rows)}
            planted_cell = (f"{weakest_name}: {weakest['psnr']:.1f} dB / {weakest['dssim']:.1e} / {weakest['cos']:.1e}"
                            f" / {weakest['absdiff']:.1e}"
                            + ("" if not missed else " (not caught: " + ", ".join(
                                f"{c}, {max(r['psnr'] for r in by_change[c]):.1f} dB" for c in missed) + ")"))
            limits = THRESHOLDS[kind]
            clean_psnr = own["psnr"] if own and own["psnr"] != float("inf") else None
            clean_cos = own["cos"] if own and own["cos"] > 0 else None
            margin = (f"{'inf' if clean_psnr is None else f'{clean_psnr - limits.min_psnr_db:.0f}'}, "
                      f"{limits.min_psnr_db - weakest['psnr']:.1f}; "
                      f"{'inf' if clean_cos is None else f'{limits.max_cosine_distance / clean_cos:.2g}x'}, "
                      f"{weakest['cos'] / limits.max_cosine_distance:.2g}x")
        else:
            planted_cell, margin = "-", "-"
        own_cell = "-" if own is None else f"{_fmt(own)} ({own['n']} runs) {'pass' if own['passed'] else 'FAIL'}"
        print(f"| {name} | {kind or '-'} | {own_cell} | {fp32_cell} | {planted_cell} | {margin} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run")
    p.add_argument("out")
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--profile", default="tiny")
    p.add_argument("--family", default="sd1", help="the family whose variants to run (default sd1)")
    p.add_argument("--repeat", action="store_true")
    p.add_argument("--planted", action="store_true")
    p.add_argument("--variants", nargs="*", default=[])
    p.add_argument("--force", action="store_true", help="also variants lacking only fast kernels (fp16)")
    p.add_argument("--emulate", nargs="*", default=[], choices=sorted(EMULATED),
                   help="pseudo-variants of the fp32 baseline (TF32 emulated on the CPU)")
    p.add_argument("--seeds", nargs="*", type=int, default=[], help="other seeds each scenario also runs with")
    p.add_argument("--prompts", nargs="*", default=[], help="other prompts each scenario also runs with")
    p.set_defaults(func=run)
    a = sub.add_parser("analyze")
    a.add_argument("reference")
    a.add_argument("files", nargs="*")
    a.add_argument("--json")
    a.set_defaults(func=analyze)
    r = sub.add_parser("record")
    r.add_argument("--variants", nargs="+", required=True)
    r.add_argument("--baselines", default="baselines")
    r.add_argument("--profile", default="tiny")
    r.add_argument("--threads", type=int, default=torch.get_num_threads())
    r.set_defaults(func=record)
    t = sub.add_parser("report")
    t.add_argument("json_files", nargs="+")
    t.add_argument("--here", nargs="+", default=["default-2t"],
                   help="the configurations the baselines were recorded in")
    t.set_defaults(func=report)
    args = parser.parse_args(argv)
    args.func(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
