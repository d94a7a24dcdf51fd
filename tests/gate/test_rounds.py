"""The rounds of a latency case (diffperf.gate.rounds): the profiles' defaults, the options that change them, and the
one rule that says when a case stops, driven here by scripted verdicts."""

from dataclasses import FrozenInstanceError

import pytest

from diffperf.gate.rounds import Looks, RoundPolicy
from diffperf.gate.verdicts import CONFIDENCE, GateRow
from diffperf.stats.sequential import SequentialPlan
from diffperf.stats.status import Status


def row(status: Status, rounds_needed: int | None = None, value: float = 1.0, lower: float = 0.95) -> GateRow:
    return GateRow("speed-up", "distilled", "baseline", "vase", status, value=value, lower=lower,
                   rounds_needed=rounds_needed)


OK = row(Status.OK)
REGRESSED = row(Status.REGRESSED, value=0.8)
UNDECIDED = row(Status.INCONCLUSIVE, rounds_needed=8)  # more rounds could decide it
ON_THE_EDGE = row(Status.INCONCLUSIVE)  # no rounds could decide it, median within the band


class Script:
    """``judge`` answers with the verdict scripted for each look (the last one for any later look); ``extend``
    records the rounds asked for and says each stage took ``seconds``."""

    def __init__(self, verdicts: dict[int, GateRow], seconds: float = 1.0):
        self.verdicts = verdicts
        self.seconds = seconds
        self.judged: list[tuple[int, float]] = []
        self.extended: list[int] = []

    def judge(self, rounds: int, confidence: float) -> GateRow:
        self.judged.append((rounds, confidence))
        return self.verdicts[max(look for look in self.verdicts if look <= rounds)]

    def extend(self, rounds: int) -> float:
        self.extended.append(rounds)
        return self.seconds


def decide(policy: RoundPolicy, script: Script) -> Looks:
    return policy.decide(policy.first_rounds(True), script.judge, script.extend)


@pytest.mark.parametrize("profile, rounds, min_rounds, warmup", [
    ("tiny", 16, 10, 2),  # the early look after 10 of 16: CPU rounds are most of the suite's time
    ("full", 10, 10, 3),  # a GPU's rounds are cheap: no early look
    ("hub", 10, 10, 3),
])
def test_each_profile_has_its_rounds_early_look_and_warm_up(profile, rounds, min_rounds, warmup):
    policy = RoundPolicy.for_profile(profile)
    assert (policy.rounds, policy.min_rounds, policy.warmup) == (rounds, min_rounds, warmup)
    assert policy.sequential is None and policy.extra_time_left is None


@pytest.mark.parametrize("options, expected", [
    (dict(rounds=20), (20, 20)),  # --perf-rounds alone: every case gets that many
    (dict(rounds=20, min_rounds=12), (20, 12)),
    (dict(min_rounds=12), (16, 12)),
    (dict(min_rounds=16), (16, 16)),  # the look turned off
])
def test_the_options_move_the_rounds_and_the_early_look(options, expected):
    policy = RoundPolicy.for_profile("tiny", **options)
    assert (policy.rounds, policy.min_rounds) == expected


def test_max_rounds_above_the_rounds_makes_a_plan_and_extra_time_is_its_budget():
    policy = RoundPolicy.for_profile("tiny", warmup=0, max_rounds=32, extra_time=60.0)
    assert policy.sequential == SequentialPlan.for_rounds(16, 32)
    assert (policy.warmup, policy.extra_time_left) == (0, 60.0)
    assert RoundPolicy.for_profile("tiny", max_rounds=16).sequential is None  # no extra rounds to give


@pytest.mark.parametrize("options, message", [
    (dict(min_rounds=20), r"^--perf-min-rounds 20 is more than the tiny profile's 16 rounds: give at most 16$"),
    (dict(max_rounds=12), r"^--perf-max-rounds 12 is fewer than the tiny profile's 16 rounds: give at least 16$"),
    (dict(rounds=8, max_rounds=6), r"^--perf-max-rounds 6 is fewer than the tiny profile's 8 rounds: give at least 8$"),
])
def test_looks_that_do_not_fit_the_profiles_rounds_are_one_line(options, message):
    with pytest.raises(ValueError, match=message):
        RoundPolicy.for_profile("tiny", **options)


def test_a_policy_is_fixed_but_for_the_time_left_for_extra_rounds():
    policy = RoundPolicy.for_profile("tiny", extra_time=30.0)
    with pytest.raises(FrozenInstanceError):
        policy.rounds = 20
    policy.extra_time_left = 10.0
    assert policy.extra_time_left == 10.0
    with pytest.raises(ValueError):
        RoundPolicy(16, 20, 2)  # the early look after the rounds
    with pytest.raises(ValueError):
        RoundPolicy(16, 10, 2, SequentialPlan.for_rounds(12, 32))  # the plan's first look is not at the rounds


@pytest.mark.parametrize("options, looks, counts, planned, unlooked", [
    (dict(), True, [10, 16], (10, 16), (16, 16)),
    (dict(max_rounds=32), True, [10, 16, 24, 32], (10, 32), (16, 16)),
    (dict(min_rounds=16, max_rounds=32), True, [16, 24, 32], (16, 32), (16, 16)),
    (dict(rounds=20), False, [20], (20, 20), (20, 20)),
])
def test_where_a_case_can_end(options, looks, counts, planned, unlooked):
    policy = RoundPolicy.for_profile("tiny", **options)
    assert policy.has_looks() is looks
    assert policy.round_counts() == counts
    assert policy.planned_rounds(looks=True) == planned
    assert policy.planned_rounds(looks=False) == unlooked
    assert policy.first_rounds(looks=True) == planned[0] and policy.first_rounds(looks=False) == unlooked[0]


@pytest.mark.parametrize("verdict", [OK, ON_THE_EDGE])
def test_a_case_settled_at_the_early_look_stops_there(verdict):
    script = Script({10: verdict})
    looks = decide(RoundPolicy.for_profile("tiny", max_rounds=32), script)
    assert looks == Looks([10], CONFIDENCE)
    assert script.judged == [(10, CONFIDENCE)] and script.extended == []


@pytest.mark.parametrize("verdict", [REGRESSED, UNDECIDED, row(Status.IMPROVED, value=1.3)])
def test_any_other_case_gets_its_base_rounds_and_the_time_left_is_not_charged_for_them(verdict):
    policy = RoundPolicy.for_profile("tiny", extra_time=5.0)
    script = Script({10: verdict}, seconds=3.0)
    assert decide(policy, script) == Looks([10, 16], CONFIDENCE)
    assert script.judged == [(10, CONFIDENCE)] and script.extended == [6]
    assert policy.extra_time_left == 5.0


def test_without_looks_a_case_ends_at_its_rounds_unjudged():
    policy = RoundPolicy.for_profile("full")
    script = Script({10: REGRESSED})
    assert decide(policy, script) == Looks([10], CONFIDENCE)
    assert script.judged == [] and script.extended == []


def test_an_undecided_case_gets_the_plans_looks_until_the_extra_time_is_spent():
    policy = RoundPolicy.for_profile("tiny", min_rounds=16, max_rounds=48, extra_time=10.0)
    plan = policy.sequential
    assert plan.looks() == [16, 24, 32, 40, 48]
    script = Script({16: UNDECIDED}, seconds=4.0)
    looks = decide(policy, script)
    # 10 s: 6 s left after the first stage, 2 s after the second, -2 s after the third: no fourth
    assert looks == Looks([16, 24, 32, 40], plan.confidence_at(40))
    assert script.extended == [8, 8, 8] and policy.extra_time_left == -2.0
    assert script.judged == [(count, plan.confidence_at(count)) for count in (16, 24, 32, 40)]


def test_without_a_time_limit_an_undecided_case_goes_to_the_last_look():
    policy = RoundPolicy.for_profile("tiny", min_rounds=16, max_rounds=32)
    script = Script({16: UNDECIDED}, seconds=100.0)
    assert decide(policy, script) == Looks([16, 24, 32], policy.sequential.confidence_at(32))
    assert script.extended == [8, 8] and policy.extra_time_left is None


def test_a_case_decided_at_a_later_look_stops_there():
    policy = RoundPolicy.for_profile("tiny", max_rounds=48, extra_time=100.0)
    script = Script({10: REGRESSED, 16: UNDECIDED, 24: REGRESSED})
    looks = decide(policy, script)
    assert looks == Looks([10, 16, 24], policy.sequential.confidence_at(24))
    assert script.extended == [6, 8] and policy.extra_time_left == 99.0  # the base rounds are not extra time
    assert script.judged[0] == (10, CONFIDENCE)


def test_a_case_whose_time_is_spent_is_judged_at_its_base_rounds():
    policy = RoundPolicy.for_profile("tiny", max_rounds=32, extra_time=0.0)
    script = Script({10: REGRESSED, 16: UNDECIDED})
    assert decide(policy, script) == Looks([10, 16], policy.sequential.confidence_at(16))
    assert script.extended == [6]


def test_looks_are_recorded_as_json():
    assert Looks([10, 16], 0.95).to_json() == {"rounds": [10, 16], "confidence": 0.95}


def test_max_rounds_whose_first_look_gives_no_interval_are_refused():
    # the first look's share of the error (96.9% at 6 of 12 rounds) needs 7 pairs: every case would end unjudged
    with pytest.raises(ValueError, match=r"--perf-max-rounds 12: its first look, at 6 rounds, is at 96\.90% .*"
                                         r"give --perf-rounds 7 or more"):
        RoundPolicy.for_profile("tiny", rounds=6, max_rounds=12)
    assert RoundPolicy.for_profile("tiny", rounds=7, max_rounds=12).sequential is not None
