"""Where each pytest-xdist worker measures: a GPU of its own, or CPU cores of its own.

``pytest perf -n N`` runs N workers. pytest-benchmark switches itself off under xdist because
timings that share a device steal from each other; diffperf instead gives every worker a device
nobody else uses, or refuses:

* **CUDA**: worker ``gwI`` measures on ``cuda:I``; more workers than GPUs is refused.
* **CPU**: the cores this process may run on are split into N equal, disjoint sets; worker ``gwI``
  pins every thread of its process to set I and runs that many torch threads. Fewer cores than
  workers is refused. A pinned worker's host fingerprint counts its own cores, so it is judged
  against the record of that size (``cpu-...-1t`` for one core each), never a 2-thread one.

Numbers only; the plugin puts refusals into words.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class PlacementError(ValueError):
    """The workers cannot each get a device of their own; ``str()`` is one line saying what to do."""


@dataclass(frozen=True)
class Placement:
    """One worker's device: ``cuda:I``, or the CPU with the cores it is pinned to."""

    worker: str  # "gw0"
    index: int
    count: int  # workers in the run
    device: str  # "cuda:0" or "cpu"
    cpus: tuple[int, ...] | None = None  # CPU: the cores this worker's threads run on

    def describe(self) -> dict:
        """What the run records of the worker (machine_info, and each case's extra_info)."""
        return {"worker": self.worker, "index": self.index, "workers": self.count, "device": self.device,
                "cpus": list(self.cpus) if self.cpus is not None else None}


def worker_index(worker: str) -> int:
    """0 for ``gw0``: pytest-xdist names its workers ``gw`` and a number."""
    digits = worker[2:] if worker.startswith("gw") else ""
    if not digits.isdigit():
        raise PlacementError(f"cannot place pytest-xdist worker {worker!r}: expected a name like gw0")
    return int(digits)


def check_room(count: int, device_type: str, gpus: int, cpus: int) -> None:
    """PlacementError (one line) when ``count`` workers cannot each have a device of their own."""
    if device_type == "cuda" and count > gpus:
        raise PlacementError(f"-n {count} asks for more workers than this node has GPUs ({gpus}): a variant timed "
                             f"on a GPU another worker also uses is not a measurement; use -n {gpus} or fewer")
    if device_type == "cpu" and count > cpus:
        raise PlacementError(f"-n {count} asks for more workers than this process has CPU cores ({cpus}): workers "
                             f"sharing a core steal time from each other; use -n {cpus} or fewer")


def place(worker: str, count: int, device_type: str, gpus: int, cpus: list[int]) -> Placement:
    """Worker ``worker`` of ``count``: its GPU, or its equal share of ``cpus`` (the cores left over are unused)."""
    check_room(count, device_type, gpus, len(cpus))
    index = worker_index(worker)
    if index >= count:
        raise PlacementError(f"pytest-xdist worker {worker} is not one of the {count} this run started")
    if device_type == "cuda":
        return Placement(worker, index, count, f"cuda:{index}")
    share = len(cpus) // count
    ordered = sorted(cpus)
    return Placement(worker, index, count, "cpu", tuple(ordered[index * share:(index + 1) * share]))


def available_cpus() -> list[int]:
    """The cores this process may run on (all of them where the platform cannot say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def pin(cpus: tuple[int, ...]) -> None:
    """Run every thread of this process, and every thread it starts, on ``cpus``; as many torch threads.

    ``sched_setaffinity`` sets one thread's mask; threads started later inherit it, threads already
    running (an OpenMP pool, a logging thread) keep theirs, so each is set in turn (Linux lists them
    under /proc/self/task). Where the platform cannot pin, PlacementError: unpinned workers would
    share cores.
    """
    if not hasattr(os, "sched_setaffinity"):
        raise PlacementError("cannot pin pytest-xdist workers to their own cores on this platform: run without -n")
    import torch

    tasks = Path("/proc/self/task")
    threads = [int(entry.name) for entry in tasks.iterdir()] if tasks.is_dir() else [0]
    for thread in threads:
        try:
            os.sched_setaffinity(thread, cpus)
        except ProcessLookupError:  # the thread ended meanwhile
            continue
    torch.set_num_threads(len(cpus))
