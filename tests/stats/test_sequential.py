"""The alpha-spending plan of extra rounds (diffperf.stats.sequential)."""

import math

import pytest

from diffperf.stats.sequential import SequentialPlan, spent


def test_the_looks_run_from_the_base_rounds_to_the_maximum_in_stages():
    plan = SequentialPlan.for_rounds(16, 32)
    assert plan.stage == 8 and plan.looks() == [16, 24, 32]
    assert SequentialPlan.for_rounds(16, 30).looks() == [16, 24, 30]
    assert SequentialPlan.for_rounds(6, 10).looks() == [6, 9, 10]
    assert (plan.next_look(16), plan.next_look(24), plan.next_look(32)) == (24, 32, None)


def test_the_looks_spend_exactly_the_error_of_one_look():
    plan = SequentialPlan.for_rounds(16, 32)
    errors = [1 - plan.confidence_at(rounds) for rounds in plan.looks()]
    assert sum(errors) == pytest.approx(0.05)  # the union bound: any look misses with probability <= 5%
    assert errors[0] > errors[1] > 0 and all(error < 0.05 for error in errors)
    assert errors[0] == pytest.approx(0.05 * math.log(1 + (math.e - 1) * 0.5))  # Pocock-type: most of it early
    assert spent(0, 0.05) == 0 and spent(1, 0.05) == pytest.approx(0.05)


def test_one_look_is_the_plain_confidence_and_a_wrong_plan_is_refused():
    assert SequentialPlan(16, 16, 8).confidence_at(16) == 0.95
    with pytest.raises(ValueError, match="not a look of this plan"):
        SequentialPlan.for_rounds(16, 32).confidence_at(20)
    with pytest.raises(ValueError, match="base <= maximum"):
        SequentialPlan(16, 8, 4)
