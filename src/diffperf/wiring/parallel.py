"""``pytest perf -n N`` (pytest-xdist): one worker per device, one run made of their parts.

* **Placement.** Each worker measures on a device of its own (:mod:`diffperf.measure.placement`):
  ``cuda:I`` for worker ``gwI``, or its own share of the CPU cores. The controller refuses, as
  pytest starts and before any worker does, a run whose workers would share a device.
* **Grouping.** Under ``-n`` (xdist's ``--dist load``) the controller schedules with
  :class:`VariantScheduling`: xdist's load-by-scope, where a diffperf case's scope is its variant,
  so every case of a variant, latency and image alike, runs on one worker: the variant is built
  once, and measured there beside its reference (which that worker builds too). (xdist's own
  ``loadgroup`` marks its groups by rewriting node ids, which pytest 9.2 no longer honours:
  pytest-xdist issue 1386.)
* **Timing.** pytest-benchmark switches itself off under xdist; on a placed worker nothing else
  shares its device, so diffperf switches it back on and each worker writes its part of the
  benchmark JSON, with raw rounds, where the controller asked.
* **One run.** At its end each worker sends the controller what the gate needs, as plain data
  (:class:`WorkerPart`, through xdist's ``workeroutput``). The controller judges every case once
  against the host's record (all workers must be the same host: same GPU model, or equal core
  shares), and writes one JSON (the parts' benchmarks, each with its worker; the workers'
  placements in ``machine_info``), one report and one summary.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from xdist.scheduler import LoadScopeScheduling

from diffperf.gate.verdicts import CaseResult
from diffperf.measure.host import Host
from diffperf.measure.placement import Placement, PlacementError, available_cpus, check_room, pin, place
from diffperf.models.names import case_name
from diffperf.options import PerfOptions, benchmarks_disabled
from diffperf.run_end import Measured

WORKER_JSON = "diffperf_json"  # workerinput: where a worker writes its part of the benchmark JSON
WORKER_OUTPUT = "diffperf"  # workeroutput: the worker's WorkerPart, as plain data
GROUP_PREFIX = "diffperf-"  # the scheduling scope of a variant's cases: "diffperf-<variant>"


def worker_count(config: pytest.Config) -> int:
    """Workers the controller starts (its plugin object is registered only under -n: diffperf.plugin)."""
    return len(config.getoption("tx", None) or [])


def check_options(options: PerfOptions, config: pytest.Config, workers: int) -> None:
    """One-line ValueError for what cannot work with ``workers`` xdist workers (before anything runs)."""
    if options.update_baselines:
        raise ValueError("--perf-update-baselines records images in one process: run it without -n")
    if options.budget is not None:
        raise ValueError("--perf-budget plans one process's wall time: run it without -n")
    if config.getoption("benchmark_save", None) or config.getoption("benchmark_autosave", None):
        raise ValueError("under -n each worker would save its own part: save the merged run with --benchmark-json "
                         "or --perf-report")
    if options.device is not None and ":" in options.device and workers > 0:
        raise ValueError(f"--perf-device {options.device} names one device, and under -n each worker takes a device "
                         "of its own (gwI: cuda:I): leave it out (cuda), give cpu, or choose GPUs with "
                         "CUDA_VISIBLE_DEVICES")


def case_groups(registry) -> Callable[[str], str | None]:
    """A function from a node id to its variant's scope (``diffperf-<variant>``), None for anything but a
    diffperf case of ``registry`` (cases are parametrized ``[VARIANT-SCENARIO]``; the registry tells
    variant from scenario where both hold hyphens)."""
    variants = {case_name(variant, scenario): variant for variant, scenario in registry.cases()}

    def group(node_id: str) -> str | None:
        start, end = node_id.find("["), node_id.rfind("]")
        if start < 0 or end < start:
            return None
        variant = variants.get(node_id[start + 1:end])
        return f"{GROUP_PREFIX}{variant}" if variant is not None else None

    return group


class VariantScheduling(LoadScopeScheduling):
    """pytest-xdist's load-by-scope, with each diffperf case's scope its variant (``group``); any other test is a
    scope of its own, as under ``--dist load``."""

    def __init__(self, config: pytest.Config, log, group: Callable[[str], str | None]):
        super().__init__(config, log)
        self.group = group

    def _split_scope(self, nodeid: str) -> str:
        return self.group(nodeid) or nodeid


def _device_and_gpus(options: PerfOptions):
    """The run's torch device and, on CUDA, how many GPUs this node has (0 on the CPU)."""
    import torch

    device = options.resolved_device()
    return device, torch.cuda.device_count() if device.type == "cuda" else 0


def check_room_for(options: PerfOptions, workers: int) -> None:
    """PlacementError (one line) when ``workers`` cannot each have a device of their own here."""
    import torch

    device, gpus = _device_and_gpus(options)
    check_room(workers, device.type, gpus, len(available_cpus()))
    kinds = {torch.cuda.get_device_name(index) for index in range(workers)} if device.type == "cuda" else set()
    if len(kinds) > 1:
        raise PlacementError(f"the first {workers} GPUs are of different kinds ({', '.join(sorted(kinds))}), and each "
                             "kind is judged against its own record: run one kind per run (CUDA_VISIBLE_DEVICES)")


def place_worker(options: PerfOptions, config: pytest.Config) -> tuple[PerfOptions, Placement]:
    """This worker's placement, applied (CPU: pinned), and the options that measure on its device."""
    import torch

    device, gpus = _device_and_gpus(options)
    workerinput = config.workerinput
    placement = place(workerinput["workerid"], int(workerinput["workercount"]), device.type, gpus, available_cpus())
    if placement.cpus is not None:
        pin(placement.cpus)
    else:  # what runs on "the current device" runs on the worker's own
        torch.cuda.set_device(placement.index)
    return dataclasses.replace(options, device=placement.device), placement


def enable_benchmarks(config: pytest.Config) -> None:
    """Switch pytest-benchmark back on in a worker (it switches itself off under xdist), unless the user
    disabled it: the worker measures on a device of its own (:func:`place_worker`)."""
    session = getattr(config, "_benchmarksession", None)
    if session is None or benchmarks_disabled(config):
        return
    session.disabled = False
    session.xdist_warning = session.xdist_benchmark_found = False  # its "disabled under xdist" warning


def worker_json(config: pytest.Config) -> Path | None:
    """Where the controller asked this worker to write its part of the JSON (None: nowhere)."""
    path = config.workerinput.get(WORKER_JSON)
    return Path(path) if path else None


@dataclass
class WorkerPart:
    """What one worker measured, for the controller's gate: plain data, as xdist carries it."""

    worker: str
    placement: dict
    host: dict  # Host.describe() and device_type
    profile: str
    results: list[CaseResult] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    throughput: list[dict] = field(default_factory=list)  # Throughput.case_info() of each case
    interrupted: bool = False

    @classmethod
    def of(cls, measured: Measured, placement: Placement, interrupted: bool) -> "WorkerPart":
        """The part of the run a worker measured (its session's: diffperf.session.PerfSession.measured)."""
        return cls(placement.worker, placement.describe(),
                   {"device_type": measured.host.device_type, **measured.host.describe()}, measured.profile,
                   list(measured.results), dict(measured.skipped), list(measured.throughput), interrupted)

    def to_output(self) -> dict:
        """JSON-safe, for xdist's workeroutput."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_output(cls, data: dict) -> "WorkerPart":
        part = cls(**{**data, "results": []})
        part.results = [CaseResult(**result) for result in data["results"]]
        return part


def merge_parts(parts: list[WorkerPart]) -> Measured:
    """What the workers measured as one run, in worker order, for the gate; PlacementError (one line) when they are
    not one host."""
    if not parts:
        raise PlacementError("no pytest-xdist worker reported what it measured")
    parts = sorted(parts, key=lambda part: part.placement["index"])
    keys = {Host.from_record(part.host).key for part in parts}
    if len(keys) > 1:
        raise PlacementError(f"the workers measured on different hosts ({', '.join(sorted(keys))}): each is judged "
                             "against its own record, so run one kind of device per run (CUDA_VISIBLE_DEVICES)")
    first = parts[0]
    return Measured(
        results=[result for part in parts for result in part.results],
        skipped={case: reason for part in parts for case, reason in part.skipped.items()},
        throughput=[entry for part in parts for entry in part.throughput],
        host=Host.from_record(first.host),
        profile=first.profile,
        interrupted=any(part.interrupted for part in parts),
        placements=[part.placement for part in parts],
    )


def merge_json(parts: list[dict], placements: list[dict]) -> dict:
    """One pytest-benchmark JSON of the workers' parts (each a whole JSON document, in worker order).

    The first part's machine_info and commit_info stand for the run (the workers are one host and
    one checkout); ``machine_info["diffperf"]["workers"]`` lists every worker's placement, and each
    benchmark's ``extra_info["worker"]`` says which worker measured it.
    """
    if not parts:
        raise ValueError("no worker wrote its part of the benchmark JSON")
    merged = copy.deepcopy(parts[0])
    merged.setdefault("machine_info", {}).setdefault("diffperf", {})["workers"] = placements
    merged["benchmarks"] = []
    for part in parts:
        worker = ((part.get("machine_info") or {}).get("diffperf") or {}).get("placement", {}).get("worker")
        for bench in part.get("benchmarks", []):
            bench = copy.deepcopy(bench)
            bench.setdefault("extra_info", {})["worker"] = worker
            merged["benchmarks"].append(bench)
    merged["datetime"] = min(part.get("datetime") or merged.get("datetime") for part in parts)
    return merged


def merge_parts_json(directory: Path, parts: list[WorkerPart]) -> dict | None:
    """The JSON parts the workers of ``parts`` wrote in ``directory`` (``<worker>.json``) as one run
    (:func:`merge_json`); ``["diffperf"]["unfinished"]`` lists every worker's unfinished cases. None when no
    worker wrote one (``--benchmark-disable``: pytest-benchmark writes nothing, as without -n)."""
    placements = [part.placement for part in sorted(parts, key=lambda part: part.placement["index"])]
    documents = []
    for placement in placements:
        path = Path(directory) / f"{placement['worker']}.json"
        if path.is_file():
            documents.append(json.loads(path.read_text()))
    if not documents:
        return None
    merged = merge_json(documents, placements)
    merged["diffperf"] = {"unfinished": [name for document in documents
                                         for name in (document.get("diffperf") or {}).get("unfinished", [])]}
    return merged
