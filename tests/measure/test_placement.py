"""Where pytest-xdist workers measure (diffperf.measure.placement): a device of their own, or a refusal."""

import fnmatch
import os

import pytest
import torch

from diffperf.measure.placement import Placement, PlacementError, available_cpus, check_room, pin, place


def test_cpu_workers_get_equal_disjoint_shares_of_the_cores():
    shares = [place(f"gw{index}", 2, "cpu", 0, [7, 1, 3, 5]) for index in range(2)]
    assert [share.cpus for share in shares] == [(1, 3), (5, 7)]
    assert {share.device for share in shares} == {"cpu"}
    odd = [place(f"gw{index}", 2, "cpu", 0, [0, 1, 2]).cpus for index in range(2)]
    assert odd == [(0,), (1,)]  # the third core is left unused: equal shares make one host


def test_gpu_workers_get_one_gpu_each():
    assert place("gw1", 2, "cuda", 2, [0]) == Placement("gw1", 1, 2, "cuda:1")
    assert place("gw1", 2, "cuda", 2, [0]).describe() == {"worker": "gw1", "index": 1, "workers": 2,
                                                         "device": "cuda:1", "cpus": None}


@pytest.mark.parametrize(("count", "device_type", "gpus", "cpus", "expected"), [
    (3, "cuda", 2, 16, "-n 3 asks for more workers than this node has GPUs (2)*use -n 2 or fewer"),
    (3, "cpu", 0, 2, "-n 3 asks for more workers than this process has CPU cores (2)*use -n 2 or fewer"),
])
def test_workers_that_would_share_a_device_are_refused_in_one_line(count, device_type, gpus, cpus, expected):
    with pytest.raises(PlacementError) as error:
        check_room(count, device_type, gpus, cpus)
    assert "\n" not in str(error.value)
    assert fnmatch.fnmatch(str(error.value), f"{expected}*")


def test_a_worker_name_that_is_not_xdists_is_refused():
    with pytest.raises(PlacementError, match="expected a name like gw0"):
        place("main", 1, "cpu", 0, [0])
    with pytest.raises(PlacementError, match="not one of the 2"):
        place("gw2", 2, "cpu", 0, [0, 1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="pinning needs sched_setaffinity (Linux)")
def test_pinning_moves_every_thread_and_sets_torchs_threads():
    before, threads = set(os.sched_getaffinity(0)), torch.get_num_threads()
    first = available_cpus()[0]
    try:
        pin((first,))
        tasks = [int(name) for name in os.listdir("/proc/self/task")]
        assert all(os.sched_getaffinity(task) == {first} for task in tasks)
        assert torch.get_num_threads() == 1
    finally:
        for task in os.listdir("/proc/self/task"):
            try:
                os.sched_setaffinity(int(task), before)
            except ProcessLookupError:
                pass
        torch.set_num_threads(threads)
