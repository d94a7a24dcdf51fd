"""Synthetic pytest-benchmark JSON runs for the history tests (compare, trend, report).

Deterministic: every sample comes from a seeded generator. The documents have every field
pytest-benchmark 5 writes, so ``pytest-benchmark compare`` can read them too.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[1] / "data"
REAL_RUN = DATA / "run-tiny-cpu.json"  # a trimmed `pytest perf --perf-rounds 6 --benchmark-json` file


def rounds(median: float, n: int = 12, cv: float = 0.01, seed: int = 0) -> list[float]:
    """``n`` positive times around ``median`` with relative spread ``cv`` (log-normal)."""
    rng = np.random.default_rng(seed)
    return [float(x) for x in median * np.exp(rng.normal(0.0, cv, n))]


def stats_for(data: list[float], with_data: bool = True) -> dict:
    """pytest-benchmark's stats block for raw ``data``."""
    ordered = sorted(data)
    n = len(ordered)
    q1, q3 = (float(q) for q in np.percentile(ordered, [25, 75]))
    iqr = q3 - q1
    mean = statistics.fmean(ordered)
    stddev = statistics.stdev(ordered) if n > 1 else 0.0
    stats = {
        "min": ordered[0], "max": ordered[-1], "mean": mean, "stddev": stddev, "rounds": n,
        "median": statistics.median(ordered), "iqr": iqr, "q1": q1, "q3": q3,
        "iqr_outliers": sum(x < q1 - 1.5 * iqr or x > q3 + 1.5 * iqr for x in ordered),
        "stddev_outliers": sum(abs(x - mean) > stddev for x in ordered),
        "outliers": "0;0", "ld15iqr": ordered[0], "hd15iqr": ordered[-1],
        "ops": 1 / mean, "total": sum(ordered), "iterations": 1,
    }
    if with_data:
        stats["data"] = list(data)
    return stats


def benchmark(variant: str, scenario: str, data: list[float], reference: str | None = None,
              reference_rounds: list[float] | None = None, *, with_data: bool = True, plain: bool = False,
              profile: str = "tiny", device: str = "AMD EPYC", device_type: str = "cpu",
              peak_memory: int | None = None, reference_peak_memory: int | None = None,
              stages: dict | None = None) -> dict:
    """One benchmark entry as ``pytest perf`` writes it (``plain=True``: a plain test without extra_info)."""
    name = f"test_latency[{variant}-{scenario}]"
    entry = {
        "group": scenario,
        "name": name,
        "fullname": f"perf/test_latency.py::{name}",
        "params": {"variant": variant, "scenario": scenario},
        "param": f"{variant}-{scenario}",
        "extra_info": {},
        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0,
                    "min_time": 5e-06, "precision": None, "confidence": None, "warmup": False},
        "stats": stats_for(data, with_data),
    }
    if plain:
        entry.update(name=variant, fullname=f"tests/test_speed.py::{variant}", params=None, param=None,
                     group=scenario or None)
        return entry
    median = statistics.median(data)
    entry["extra_info"] = {
        "variant": variant, "reference": reference, "description": f"{variant} (synthetic)",
        "profile": profile, "scenario": scenario, "prompt": "a photo of an astronaut riding a horse on mars",
        "images": 1, "steps": 5, "scheduler": "ddim", "seed": 0, "resolution": 128, "scaled_from": None,
        "device": device, "device_type": device_type, "dtype": "float32",
        "stages": stages or {"text_encoding": 0.05 * median, "denoising": 0.8 * median, "decoding": 0.15 * median},
        "weight_bytes": 30_000_000, "peak_memory_growth": None, "peak_memory": peak_memory,
        "reference_rounds": list(reference_rounds or []),
    }
    if reference is not None:
        entry["extra_info"]["reference_peak_memory"] = reference_peak_memory
    return entry


def run(benchmarks: list[dict], *, commit: str = "1111111aaaaaaa", when: str = "2026-11-01T10:00:00+00:00",
        profile: str | None = "tiny", device_name: str = "AMD EPYC", device_type: str = "cpu",
        threads: int = 2, gate: dict | None = None, branch: str = "main") -> dict:
    """A whole pytest-benchmark document (``profile=None``: no diffperf machine info, as a plain run)."""
    machine_info = {
        "node": "ci-runner", "processor": "", "machine": "x86_64", "python_compiler": "GCC 12.2.0",
        "python_implementation": "CPython", "python_implementation_version": "3.11.7",
        "python_version": "3.11.7", "python_build": ["main", "May  9 2026 07:35:25"],
        "release": "6.1.0", "system": "Linux",
        "cpu": {"arch": "X86_64", "bits": 64, "count": 2, "brand_raw": "AMD EPYC"},
    }
    if profile is not None:
        machine_info["diffperf"] = {
            "profile": profile, "device_type": device_type, "device_name": device_name, "device_count": 1,
            "threads": threads, "torch": "2.13.0+cpu", "diffusers": "0.42.1", "transformers": "5.24.0",
        }
    document = {
        "machine_info": machine_info,
        "commit_info": {"id": commit, "time": when, "author_time": when, "dirty": False, "project": "main",
                        "branch": branch},
        "benchmarks": benchmarks,
        "datetime": when,
        "version": "5.3.1",
    }
    if gate is not None:
        document["diffperf"] = gate
    return document


def paired_case(variant: str, scenario: str, reference: str, variant_median: float, reference_median: float,
                n: int = 12, cv: float = 0.01, seed: int = 0, **kwargs) -> dict:
    """A case whose rounds are bracketed as ``pytest perf`` times them (R V R ... V R), with shared drift.

    Each variant call sees the drift between the reference calls on either side of it.
    """
    rng = np.random.default_rng(seed)
    drift = np.exp(rng.normal(0.0, cv, n + 1))  # at each reference call
    ref = reference_median * drift * np.exp(rng.normal(0.0, cv / 2, n + 1))
    var = variant_median * np.sqrt(drift[:-1] * drift[1:]) * np.exp(rng.normal(0.0, cv / 2, n))
    return benchmark(variant, scenario, [float(x) for x in var], reference, [float(x) for x in ref], **kwargs)


def standard_run(slowdown: float = 1.0, seed: int = 0, n: int = 12, cv: float = 0.01, scale: float = 1.0,
                 **kwargs) -> dict:
    """baseline, distilled (vs baseline) and distilled-taesd (vs distilled) on one scenario.

    ``slowdown`` multiplies the *distilled* variant's times only, so its latency and its speed-up
    over baseline both regress while baseline stays put. ``scale`` multiplies every time (a
    slower process: latencies move, speed-ups do not).
    """
    with_data = kwargs.pop("with_data", True)
    benches = [
        benchmark("baseline", "astronaut", rounds(0.180 * scale, n, cv, seed), with_data=with_data,
                  peak_memory=42_000_000),
        paired_case("distilled", "astronaut", "baseline", 0.120 * slowdown * scale, 0.180 * scale, n, cv, seed + 1,
                    with_data=with_data, peak_memory=29_000_000, reference_peak_memory=42_000_000),
        paired_case("distilled-taesd", "astronaut", "distilled", 0.100 * scale, 0.120 * scale, n, cv,
                    seed + 2, with_data=with_data, peak_memory=21_000_000, reference_peak_memory=29_000_000),
    ]
    return run(benches, **kwargs)


def process_runs(count: int, slowdown: float = 1.0, seed: int = 0, run_cv: float = 0.01, day: int = 1,
                 commit: str = "1111111aaaaaaa", **kwargs) -> list[dict]:
    """``count`` runs of one revision in separate processes, an hour apart from ``day`` on.

    Each process runs at its own speed (every time scaled by a log-normal factor of sd ``run_cv``)
    and its distilled variant gets a further factor of its own, so per-run latencies and speed-ups
    both vary from run to run as they do between real processes.
    """
    rng = np.random.default_rng(10_000 + seed)
    factors = np.exp(rng.normal(0.0, run_cv, (count, 2)))
    return [
        standard_run(slowdown * float(distilled), seed=seed + 10 * i, scale=float(scale), commit=commit,
                     when=f"2026-11-{day + i // 24:02d}T{i % 24:02d}:00:00+00:00", **kwargs)
        for i, (scale, distilled) in enumerate(factors)
    ]


def with_throughput(document: dict, gflop: dict[str, float], peak: float = 100e9) -> dict:
    """``document`` with the FLOPs and achieved FLOP/s a latency case records (``gflop``: per call, by variant)."""
    from diffperf.measure.flops import CallFlops, MatmulPeak, Throughput

    for bench in document["benchmarks"]:
        info = bench["extra_info"]
        total = gflop[info["variant"]] * 1e9
        flops = CallFlops({"text_encoding": int(0.05 * total), "denoising": int(0.85 * total),
                           "decoding": int(0.10 * total)}, unet_calls=info["steps"])
        record = Throughput(info["variant"], info["scenario"], info["dtype"], flops, info["stages"],
                            bench["stats"]["median"], MatmulPeak(info["dtype"], peak, 1024))
        info.update(record.case_info())
    return document


def write(path: Path, document: dict) -> Path:
    path.write_text(json.dumps(document, indent=2))
    return path
