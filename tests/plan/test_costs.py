"""The cost model: its fit recovers known parameters, and the A100's rates hold on the published times held out."""

from dataclasses import replace

import pytest

from diffperf.models.builtin import builtin_registry
from diffperf.plan.costs import PUBLISHED_TIMES, Observation, Rates, fit
from diffperf.plan.devices import A100_RATES, DEVICE_CLASSES, class_of, device_class
from diffperf.plan.work import WorkCounter

TRUE = Rates({"float32": 50e12, "half": 200e12}, step_overhead=0.03, classic_attention=1.3)


def observations(model: Rates) -> list[Observation]:
    shapes = [(80e12, 50), (400e12, 30), (2700e12, 50), (170e12, 26)]
    return [Observation(flops, calls, precision, classic, model.call_seconds(flops, calls, precision, classic))
            for flops, calls in shapes for precision in ("float32", "float16") for classic in (False, True)]


def test_the_fit_recovers_the_parameters_it_was_made_with():
    fitted = fit(observations(TRUE))
    for name, rate in TRUE.rates.items():
        assert fitted.rates[name] == pytest.approx(rate, rel=1e-3)
    assert fitted.step_overhead == pytest.approx(TRUE.step_overhead, rel=1e-3)
    assert fitted.classic_attention == pytest.approx(TRUE.classic_attention, rel=1e-3)


def test_a_fit_with_too_few_observations_says_so():
    with pytest.raises(ValueError, match="cannot fit"):
        fit(observations(TRUE)[:2])


def test_half_precisions_share_a_rate_and_tf32_has_its_own():
    model = Rates({"float32": 10e12, "tf32": 20e12, "half": 40e12}, step_overhead=0.0)
    assert model.call_seconds(40e12, 1, "bfloat16") == model.call_seconds(40e12, 1, "float16") == 1.0
    assert model.call_seconds(40e12, 1, "tf32") == 2.0


def test_scaling_to_another_gpu_divides_work_by_peaks_and_overheads_by_bandwidth():
    scaled = TRUE.scaled({"float32": 2.0, "half": 4.0}, bandwidth=1.5)
    assert scaled.rates == {"float32": 100e12, "half": 800e12}
    assert scaled.step_overhead == pytest.approx(0.02)


@pytest.fixture(scope="module")
def published(tmp_path_factory):
    """Each published time with the work of its call, counted on meta tensors at the published workload."""
    registry = builtin_registry()
    counter = WorkCounter("full", cache=tmp_path_factory.mktemp("cache"))
    rows = []
    for entry in PUBLISHED_TIMES:
        family = registry.family(entry.family)
        scenario = replace(family.scenario(entry.scenario), steps=entry.steps, images=entry.images)
        work = counter.work(family, registry.variant(family.baseline), scenario)
        rows.append((entry, Observation(work.flops.total, work.flops.unet_calls, entry.precision.split("+")[0],
                                        entry.attention == "classic", entry.seconds)))
    return rows


def test_the_shipped_a100_rates_are_the_fit_of_the_published_times(published):
    refitted = fit([observation for entry, observation in published if entry.fitted])
    for name, rate in A100_RATES.rates.items():
        assert refitted.rates[name] == pytest.approx(rate, rel=0.01)
    assert refitted.step_overhead == pytest.approx(A100_RATES.step_overhead, rel=0.01)
    assert refitted.classic_attention == pytest.approx(A100_RATES.classic_attention, rel=0.01)


def test_the_a100_model_predicts_the_held_out_published_times_within_25_percent(published):
    held_out = [(entry, observation) for entry, observation in published if not entry.fitted]
    assert len(held_out) == 2  # SD v1.5 fp16 with TF32, SDXL bf16 with SDPA: combinations of the fitted changes
    for entry, observation in held_out:
        predicted = A100_RATES.call_seconds(observation.flops, observation.denoiser_calls, observation.precision,
                                            observation.classic)
        assert predicted == pytest.approx(entry.seconds, rel=0.25), f"{entry.label}: {predicted:.2f} s"


def test_device_classes_are_named_and_found_from_a_device_name():
    assert device_class("A100").name == "a100"
    assert class_of("cuda", "NVIDIA H100 80GB HBM3").name == "h100"
    assert class_of("cuda", "NVIDIA H200").name == "h200"
    assert class_of("cuda", "Tesla T4").name == "a100"  # unknown GPUs: the fitted model
    assert class_of("cpu").name == "cpu"
    with pytest.raises(ValueError, match="choose one of"):
        device_class("tpu")
    assert set(DEVICE_CLASSES) == {"a100", "h100", "h200", "cpu"}
