"""The latency case's bad-input paths: out of memory, a missing model, a variant that cannot run."""

from types import SimpleNamespace

import pytest
import torch

from diffperf.cases.latency import run_latency_case
from diffperf.gate.rounds import RoundPolicy
from diffperf.models.builtin import builtin_registry
from diffperf.models.zoo import ModelNotAvailable
from diffperf.options import PerfOptions
from diffperf.session import Case, PerfSession


class UnusedBenchmark:
    """Stands in for pytest-benchmark's fixture where a case must stop before timing anything."""

    def pedantic(self, *args, **kwargs):
        raise AssertionError("the case should have stopped before timing")


@pytest.fixture
def session(tmp_path):
    return PerfSession(PerfOptions(profile="tiny", device="cpu", baselines_dir=str(tmp_path)), builtin_registry())


def test_out_of_memory_fails_one_variant_in_one_line_and_releases_memory(session, monkeypatch):
    def out_of_memory(variant):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore details")

    monkeypatch.setattr(session.store, "models", out_of_memory)
    released = []
    monkeypatch.setattr(session.store, "keep_only", lambda names: released.append(list(names)))
    with pytest.raises(pytest.fail.Exception) as failure:
        run_latency_case(UnusedBenchmark(), session, "distilled", "astronaut")
    message = str(failure.value)
    assert message.startswith("distilled ran out of memory on ")
    assert "Tried to allocate 2.00 GiB" in message and "other variants still run" in message
    assert "\n" not in message and "more details" not in message
    assert released == [[]]


def test_missing_model_fails_with_the_loaders_line(session, monkeypatch):
    def missing(variant):
        raise ModelNotAvailable("cannot load the unet of 'x/y': download it with `hf download x/y`")

    monkeypatch.setattr(session.store, "models", missing)
    with pytest.raises(pytest.fail.Exception, match=r"^cannot load the unet of 'x/y': download it"):
        run_latency_case(UnusedBenchmark(), session, "baseline", "vase")


def test_variant_that_cannot_run_is_skipped_and_remembered_for_the_gate(session):
    with pytest.raises(pytest.skip.Exception, match=r"^tf32 needs a CUDA GPU \(running on cpu\)$"):
        run_latency_case(UnusedBenchmark(), session, "tf32", "astronaut")
    assert session.skipped == {"tf32/astronaut": "tf32 needs a CUDA GPU (running on cpu)"}


def test_cases_run_variant_by_variant():
    """The (variant, scenario) pairs the plugin parametrizes the suite with: each variant's cases together,
    in declaration order, on its own family's scenarios."""
    registry = builtin_registry()
    cases = registry.cases()
    assert cases[:4] == [("baseline", "astronaut"), ("baseline", "vase"), ("tf32", "astronaut"), ("tf32", "vase")]
    assert len(cases) == len(set(cases))
    variants = [variant for variant, _ in cases]
    assert list(dict.fromkeys(variants)) == list(registry.variants)
    for name, variant in registry.variants.items():
        first = variants.index(name)
        scenarios = [scenario.name for scenario in registry.family(variant.family).scenarios]
        assert cases[first:first + len(scenarios)] == [(name, scenario) for scenario in scenarios], name


class PedanticBenchmark:
    """pytest-benchmark's pedantic mode as far as the latency case uses it: setup, then the timed call; and the
    statistics extra rounds add to."""

    group = None

    def __init__(self):
        data = []
        self.stats = SimpleNamespace(stats=SimpleNamespace(data=data, update=data.append))

    def pedantic(self, target, setup, rounds, warmup_rounds, iterations):
        assert (warmup_rounds, iterations) == (0, 1)
        for _ in range(rounds):
            setup()
            target()


def test_every_variant_call_is_bracketed_by_reference_calls():
    from diffperf.cases.latency import PairedRounds

    calls = []
    subject, reference = (lambda: calls.append("V")), (lambda: calls.append("R"))
    rounds = PairedRounds(subject, reference)
    benchmark = PedanticBenchmark()
    rounds.time(benchmark, 4, "vase")
    assert "".join(calls) == "RVRVRVRVR" and benchmark.group == "vase"
    assert (len(rounds.reference_times), len(rounds.variant_times)) == (5, 4)
    rounds.extend(benchmark, 2)  # extra rounds keep the bracket closed
    assert "".join(calls) == "RVRVRVRVR" + "VRVR"
    assert (len(rounds.reference_times), len(rounds.variant_times)) == (7, 6)
    assert benchmark.stats.stats.data == rounds.variant_times[4:]  # pytest-benchmark gets the extra variant rounds
    calls.clear()
    alone = PairedRounds(subject, None)
    alone.time(PedanticBenchmark(), 4, "vase")
    assert "".join(calls) == "VVVV" and alone.reference_times == []


def case_of(variant: str, reference: str | None, tolerance: float | None = None) -> Case:
    """A case of ``variant`` measured against ``reference`` on the vase, as far as a latency case reads it."""
    declared = SimpleNamespace(name=variant, reference=reference, family="sd1", best_stack=False, same_every_step=True)
    vase = SimpleNamespace(name="vase")
    return Case(declared, SimpleNamespace(name=reference) if reference else None, vase, vase, None, tolerance)


class RecordingProbes:
    """The run's probes as far as the warm-up uses them: each makes the call it is given and records what it was."""

    def __init__(self, calls):
        self.calls = calls

    def call_flops(self, variant_name, scenario_name, pipeline, every_step):
        self.calls.append("flops:")
        pipeline()
        return "flops"

    def peak_memory_growth(self, name, scenario_name, call):
        self.calls.append("memory:")
        call()
        return 24 if name == "distilled" else 12


@pytest.mark.parametrize("pairs, during, after", [
    (3, "R flops: V R V memory: R memory: V", ""),
    (2, "R flops: V memory: R memory: V", ""),
    (1, "R flops: V", "memory: R memory: V"),
    (0, "", "flops: V memory: R memory: V"),
])
def test_the_probes_ride_on_the_warm_up_and_the_last_pair_before_the_rounds_has_no_counter(pairs, during, after):
    from diffperf.cases.latency import WarmUp

    calls = []
    subject, reference = (lambda: calls.append("V")), (lambda: calls.append("R"))
    warm = WarmUp(RecordingProbes(calls), lambda variant: 1000, case_of("distilled", "baseline"), subject, reference,
                  pairs, probing=True)
    warm.run()
    assert " ".join(calls) == during
    calls.clear()
    warm.finish()
    assert " ".join(calls) == after
    assert (warm.flops, warm.peaks) == ("flops", (1024, 1012))
    calls.clear()
    warm.finish()  # probed once
    assert calls == []


def test_without_probing_the_warm_up_is_plain_pairs():
    from diffperf.cases.latency import WarmUp

    calls = []
    warm = WarmUp(RecordingProbes(calls), lambda variant: 1000, case_of("baseline", None), lambda: calls.append("V"),
                  None, 2, probing=False)
    warm.run()
    assert calls == ["V", "V"] and warm.flops is None


class Clock:
    """``time.perf_counter`` for the latency case: each call of a member moves it by that member's duration."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self):
        return self.now

    def member(self, seconds, calls, name):
        def call():
            calls.append(name)
            self.now += seconds
        return call


def adaptive_case(monkeypatch, speedup, expectation, min_rounds=10, plan=None):
    """One case's rounds under :func:`diffperf.cases.latency.case_looks`: the reference takes 1 s, the variant
    1/speedup s."""
    import diffperf.cases.latency as latency

    clock, calls = Clock(), []
    monkeypatch.setattr(latency, "time", clock)
    rounds = latency.PairedRounds(clock.member(1 / speedup, calls, "V"), clock.member(1.0, calls, "R"))
    session = SimpleNamespace(policy=RoundPolicy(16, min_rounds, warmup=2, sequential=plan),
                              options=SimpleNamespace(no_gate=False), expectation=lambda case: expectation)
    case = case_of("distilled", "reference", tolerance=0.05)
    found = latency.looked_against(session, case, rounds.reference)
    benchmark = PedanticBenchmark()
    first = session.policy.first_rounds(found is not None)
    rounds.time(benchmark, first, "vase")
    pedantic_rounds = len(benchmark.stats.stats.data)  # pedantic's own rounds are not in this stand-in's data
    looks = latency.case_looks(session, case, found, rounds, benchmark)
    assert len(benchmark.stats.stats.data) == len(rounds.variant_times) - first + pedantic_rounds
    return looks, rounds


def test_the_early_look_stops_a_settled_case_and_gives_any_other_all_its_rounds(monkeypatch):
    from diffperf.gate.simulation import calibrated

    expectation = calibrated(within_sd=0.01, between_sd=0.0, rounds=16, tolerance=0.05)  # expected 1.0
    looks, rounds = adaptive_case(monkeypatch, 1.0, expectation)  # within the band: ok after 10
    assert looks.rounds == [10] and looks.confidence == 0.95
    assert (len(rounds.variant_times), len(rounds.reference_times)) == (10, 11)
    looks, rounds = adaptive_case(monkeypatch, 0.8, expectation)  # a regression: the full design judges it
    assert looks.rounds == [10, 16] and len(rounds.variant_times) == 16 and len(rounds.reference_times) == 17
    looks, _ = adaptive_case(monkeypatch, 1.3, expectation)  # an improvement is not claimed early either
    assert looks.rounds == [10, 16]


def test_without_an_expectation_or_an_early_look_a_case_gets_its_rounds(monkeypatch):
    from diffperf.gate.simulation import calibrated

    looks, rounds = adaptive_case(monkeypatch, 1.0, None)
    assert looks is None and len(rounds.variant_times) == 16
    expectation = calibrated(within_sd=0.01, between_sd=0.0, rounds=16, tolerance=0.05)
    looks, rounds = adaptive_case(monkeypatch, 1.0, expectation, min_rounds=16)  # --perf-rounds 16: no look
    assert looks is None and len(rounds.variant_times) == 16


def test_the_early_look_comes_before_the_plans_looks(monkeypatch):
    from diffperf.gate.simulation import calibrated
    from diffperf.stats.sequential import SequentialPlan

    plan = SequentialPlan.for_rounds(16, 32)
    expectation = calibrated(within_sd=0.01, between_sd=0.0, rounds=16, tolerance=0.05)
    looks, _ = adaptive_case(monkeypatch, 1.0, expectation, plan=plan)
    assert looks.rounds == [10] and looks.confidence == 0.95
    looks, rounds = adaptive_case(monkeypatch, 0.8, expectation, plan=plan)  # regressed at 16: decided, stops
    assert looks.rounds == [10, 16] and looks.confidence == plan.confidence_at(16)
