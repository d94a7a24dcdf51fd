"""A device's cost model fitted on a saved run: the run's own calls, probes, early looks and start-up."""

import pytest

from diffperf.plan.costs import Rates
from diffperf.plan.fitting import fit_run

MODEL = Rates({"float32": 100e9, "half": 50e9}, step_overhead=0.002, call_overhead=0.05)


def case(flops: float, calls: int, dtype: str, rounds: int, looks: list[int] | None) -> dict:
    seconds = MODEL.call_seconds(flops, calls, dtype)
    partner = 0.2
    # 2 warm-up pairs, the rounds, the partner's closing call, and probes costing 3 calls of the variant
    wall = (2 + rounds) * (seconds + partner) + partner + 3 * seconds
    info = {"flops": {"total": flops, "unet_calls": calls}, "dtype": dtype, "speedups": [],
            "reference_rounds": [partner] * (rounds + 1), "case_seconds": wall}
    if looks:
        info["looks"] = {"rounds": looks, "confidence": 0.95}
    return {"extra_info": info, "stats": {"data": [seconds] * rounds}}


def run(wall: float | None) -> dict:
    cases = [case(5e9, 5, "float32", 10, [10]), case(20e9, 4, "float32", 16, [10, 16]),
             case(5e9, 3, "bfloat16", 16, None), case(8e9, 5, "float32", 10, [10]),
             case(12e9, 4, "bfloat16", 16, [10, 16]), case(3e9, 2, "float32", 16, None)]
    diffperf = {"warmup": 2}
    if wall is not None:
        diffperf["wall_seconds"] = wall
    return {"machine_info": {"diffperf": diffperf}, "benchmarks": cases}


def test_a_run_gives_back_the_model_its_calls_were_made_with():
    latency = sum(item["extra_info"]["case_seconds"] for item in run(None)["benchmarks"])
    similarity = sum(item["stats"]["data"][0] for item in run(None)["benchmarks"])
    fitted = fit_run(run(latency + similarity + 12.0))
    assert fitted.model.rates["half"] == pytest.approx(50e9, rel=1e-3)
    assert fitted.model.rates["float32"] == pytest.approx(100e9, rel=1e-3)
    assert fitted.model.call_overhead == pytest.approx(0.05, rel=1e-3)
    assert fitted.case_overhead == pytest.approx(3.0)
    assert fitted.continued_share == pytest.approx(0.5)  # 2 of the 4 cases with an early look went on
    assert fitted.startup_seconds == pytest.approx(12.0)
    assert fitted.cases == 6


def test_a_run_without_its_wall_time_fits_no_start_up():
    assert fit_run(run(None)).startup_seconds is None


def test_a_run_with_nothing_to_fit_is_one_line():
    with pytest.raises(ValueError, match="no timed latency case with counted FLOPs"):
        fit_run({"benchmarks": [{"extra_info": {}, "stats": {"data": [1.0]}}]})
