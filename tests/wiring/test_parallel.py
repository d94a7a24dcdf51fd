"""``pytest perf -n N``: the workers' parts made one run (diffperf.wiring.parallel), and the run itself."""

import json
import os
from pathlib import Path

import pytest

from diffperf.wiring.parallel import (
    VariantScheduling, WorkerPart, case_groups, check_options, merge_json, merge_parts, merge_parts_json,
)
from diffperf.gate.verdicts import CaseResult
from diffperf.measure.placement import PlacementError
from diffperf.options import PerfOptions

HOST = {"device_type": "cpu", "host_key": "cpu-amd-epyc-1t-12345678", "host_label": "cpu-amd-epyc-1t",
        "portable_key": "cpu-x86-64-avx512-bf16-1t", "host_name": "AMD EPYC", "host_size": "1t",
        "fingerprint": {"threads": 1}}


def part(worker: str, index: int, variant: str, host: dict = HOST) -> WorkerPart:
    result = CaseResult(variant, "baseline", "astronaut", [0.1] * 6, [0.2] * 7, 100, 200, family="sd1")
    return WorkerPart(worker, {"worker": worker, "index": index, "workers": 2, "device": "cpu", "cpus": [index]},
                      host, "tiny", [result], {f"xformers-{worker}": "needs CUDA"},
                      [{"variant": variant, "scenario": "astronaut", "flops": None, "throughput": None}])


def test_a_workers_part_crosses_as_plain_data_and_back():
    original = part("gw0", 0, "distilled")
    output = original.to_output()
    assert json.loads(json.dumps(output)) == output
    assert WorkerPart.from_output(output) == original


def test_parts_merge_in_worker_order_into_one_run():
    run = merge_parts([part("gw1", 1, "bf16"), part("gw0", 0, "distilled")])
    assert [result.variant for result in run.results] == ["distilled", "bf16"]
    assert run.skipped == {"xformers-gw0": "needs CUDA", "xformers-gw1": "needs CUDA"}
    assert [entry["variant"] for entry in run.throughput] == ["distilled", "bf16"]
    assert run.host.key.startswith("cpu-amd-epyc-1t-") and run.profile == "tiny"
    assert [placement["worker"] for placement in run.placements] == ["gw0", "gw1"]


def test_parts_from_different_hosts_are_not_judged_as_one():
    other = {**HOST, "fingerprint": {"threads": 2}, "host_size": "2t"}
    with pytest.raises(PlacementError, match="different hosts"):
        merge_parts([part("gw0", 0, "distilled"), part("gw1", 1, "bf16", other)])
    with pytest.raises(PlacementError, match="no pytest-xdist worker"):
        merge_parts([])


def benchmark_json(worker: str, names: list[str], when: str, unfinished=()) -> dict:
    return {"machine_info": {"diffperf": {"placement": {"worker": worker}}}, "commit_info": {"id": "abc"},
            "benchmarks": [{"name": name, "extra_info": {"variant": name}} for name in names],
            "datetime": when, "version": "5.3.1", "diffperf": {"unfinished": list(unfinished)}}


def test_the_workers_json_parts_become_one_document(tmp_path):
    parts = [part("gw0", 0, "distilled"), part("gw1", 1, "bf16")]
    (tmp_path / "gw0.json").write_text(json.dumps(benchmark_json("gw0", ["distilled"], "2026-12-03T10:00:02")))
    (tmp_path / "gw1.json").write_text(json.dumps(benchmark_json("gw1", ["bf16", "int8"], "2026-12-03T10:00:01",
                                                                 ["test_latency[int8-vase]"])))
    merged = merge_parts_json(tmp_path, parts)
    assert [(bench["name"], bench["extra_info"]["worker"]) for bench in merged["benchmarks"]] == [
        ("distilled", "gw0"), ("bf16", "gw1"), ("int8", "gw1")]
    assert [worker["worker"] for worker in merged["machine_info"]["diffperf"]["workers"]] == ["gw0", "gw1"]
    assert merged["datetime"] == "2026-12-03T10:00:01"  # the run began when its first worker did
    assert merged["diffperf"] == {"unfinished": ["test_latency[int8-vase]"]}
    with pytest.raises(ValueError, match="no worker wrote"):
        merge_json([], [])
    assert merge_parts_json(tmp_path / "empty", parts) is None  # --benchmark-disable: no worker wrote its part


class FakeConfig:
    def __init__(self, **options):
        self.options = options

    def getoption(self, name, default=None):
        return self.options.get(name, default)


@pytest.mark.parametrize(("options", "config", "expected"), [
    (PerfOptions(update_baselines=True), {}, "--perf-update-baselines records images in one process"),
    (PerfOptions(), {"benchmark_save": "x"}, "each worker would save its own part"),
    (PerfOptions(), {"benchmark_autosave": True}, "each worker would save its own part"),
    (PerfOptions(device="cuda:1"), {}, "--perf-device cuda:1 names one device"),
])
def test_what_cannot_work_with_several_workers_is_refused_before_anything_runs(options, config, expected):
    with pytest.raises(ValueError, match=expected.replace("-", r"\-").replace(".", r"\.")):
        check_options(options, FakeConfig(**config), 2)
    check_options(PerfOptions(device="cpu"), FakeConfig(), 2)  # the CPU is split between the workers


class FakeRegistry:
    def cases(self):
        return [("baseline", "astronaut"), ("distilled-taesd", "astronaut"), ("segmind-vega", "astronaut-xl")]


def test_every_case_of_a_variant_is_scheduled_in_one_scope():
    group = case_groups(FakeRegistry())
    assert group("perf/test_latency.py::test_latency[distilled-taesd-astronaut]") == "diffperf-distilled-taesd"
    assert group("perf/test_similarity.py::test_similarity[distilled-taesd-astronaut]") == "diffperf-distilled-taesd"
    assert group("perf/test_latency.py::test_latency[segmind-vega-astronaut-xl]") == "diffperf-segmind-vega"
    assert group("tests/test_x.py::test_y[1-2]") is None and group("tests/test_x.py::test_y") is None
    scheduling = VariantScheduling.__new__(VariantScheduling)  # the scope alone, without a controller
    scheduling.group = group
    assert scheduling._split_scope("perf/test_latency.py::test_latency[baseline-astronaut]") == "diffperf-baseline"
    assert scheduling._split_scope("tests/test_x.py::test_y") == "tests/test_x.py::test_y"  # a scope of its own


pytest_plugins = ["pytester"]
SUITE = Path(__file__).resolve().parents[2] / "perf" / "test_latency.py"


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2 if hasattr(os, "sched_getaffinity") else True,
                    reason="two workers need two cores of their own")
def test_two_workers_each_pinned_to_its_own_core_make_one_run(pytester, tmp_path):
    pytester.makepyfile(test_latency=SUITE.read_text())
    output = tmp_path / "run.json"
    args = ["-n", "2", "-k", "astronaut", "--perf-variants", "baseline,distilled", "--perf-profile", "tiny",
            "--perf-device", "cpu", "--perf-rounds", "6", "--perf-warmup", "1", "-p", "no:cacheprovider",
            "--perf-baselines", str(tmp_path / "baselines"), f"--benchmark-json={output}"]
    result = pytester.runpytest_subprocess(*args)
    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*2 passed*"])
    assert result.stdout.str().count("speed-up gate: ") == 1  # one verdict, the controller's
    run = json.loads(output.read_text())
    workers = run["machine_info"]["diffperf"]["workers"]
    assert {worker["worker"] for worker in workers} <= {"gw0", "gw1"}
    cores = [set(worker["cpus"]) for worker in workers]
    assert all(len(share) == len(cores[0]) for share in cores)
    assert len(cores) == 1 or not cores[0] & cores[1]  # disjoint
    by_variant = {bench["extra_info"]["variant"]: bench for bench in run["benchmarks"]}
    assert set(by_variant) == {"baseline", "distilled"}
    for bench in by_variant.values():
        assert bench["stats"]["rounds"] == 6 and len(bench["extra_info"]["reference_rounds"]) == 7  # timed
        assert bench["extra_info"]["worker"] in {"gw0", "gw1"}
    assert len(run["diffperf"]["speedups"]) == 2  # the controller's rows, one per case
    assert run["machine_info"]["diffperf"]["threads"] == len(cores[0])

    too_many = len(os.sched_getaffinity(0)) + 1
    refused = pytester.runpytest_subprocess(*[str(too_many) if arg == "2" else arg for arg in args])
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    assert f"use -n {too_many - 1} or fewer" in refused.stdout.str() + refused.stderr.str()


def test_more_workers_than_cores_are_refused_when_pytest_starts(pytester):
    """Before any worker starts (each would import torch and collect the suite first)."""
    pytester.makepyfile(test_latency=SUITE.read_text())
    too_many = len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1
    result = pytester.runpytest("-n", str(too_many), "--perf-device", "cpu", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    lines = [line for line in result.errlines if line.strip()]
    assert lines == [f"ERROR: -n {too_many} asks for more workers than this process has CPU cores ({too_many - 1}): "
                     f"workers sharing a core steal time from each other; use -n {too_many - 1} or fewer"]


def test_other_tests_under_more_workers_than_cores_are_not_diffperf_s_to_refuse(pytester):
    pytester.makepyfile(test_plain="def test_nothing():\n    pass\n")
    too_many = len(os.sched_getaffinity(0)) + 1 if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1) + 1
    result = pytester.runpytest("-n", str(too_many), "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.OK
