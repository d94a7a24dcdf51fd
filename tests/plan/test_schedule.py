"""A budget keeps tier 1 whole, then fits tier 2 in declared order, and names what it leaves out."""

import pytest

from diffperf.gate.rounds import RoundPolicy
from diffperf.models.builtin import builtin_registry
from diffperf.plan.costs import DeviceClass, Rates
from diffperf.plan.devices import DEVICE_CLASSES
from diffperf.plan.schedule import BudgetError, CasePlan, RunPlan, fit_budget, plan_run

DEVICE = DeviceClass("test", "a test device", "cpu", Rates({"float32": 1e9}, 0.0), "made up", startup_seconds=10.0,
                     build_seconds_per_parameter=0.0)


def case(name: str, tier: int, seconds: float, runs: bool = True) -> CasePlan:
    """A case whose latency and similarity take ``seconds`` in all (1 warm-up pair, 2 rounds, no partner)."""
    call = seconds / 4  # 3 calls of the latency case, 1 of the similarity case
    return CasePlan(name, "s", "f", tier, None, None if runs else "opt-in", 1, 2, 2, 2.0, call, 0.0, 0.0, 0.0)


PLAN = RunPlan(DEVICE, "tiny", (case("a", 1, 20), case("b", 2, 30), case("c", 1, 20), case("d", 2, 15),
                                case("e", 2, 100, runs=False)))


def test_a_budget_holds_tier_1_then_tier_2_while_it_fits():
    selection = fit_budget(PLAN, 70)  # start-up 10 + tier 1 (a, c) 40: 20 left, which d fits and b does not
    assert [item.variant for item in selection.chosen] == ["a", "c", "d"]
    assert [item.variant for item in selection.left_out] == ["b"]  # e does not run here: not left out by the budget
    assert selection.predicted == selection.most == pytest.approx(65)


def test_a_budget_that_cannot_hold_tier_1_is_refused_with_what_it_needs():
    with pytest.raises(BudgetError) as info:
        fit_budget(PLAN, 45)
    assert (info.value.needed, info.value.cases) == (pytest.approx(50), 2)


def test_a_comparison_takes_tier_1_in_order_while_it_fits():
    selection = fit_budget(PLAN, 35, whole_first_tier=False)
    assert [item.variant for item in selection.chosen] == ["a"]
    assert [item.variant for item in selection.left_out] == ["b", "c", "d"]
    with pytest.raises(BudgetError):
        fit_budget(PLAN, 20, whole_first_tier=False)  # not even the smallest case


def test_early_looks_make_expected_rounds_between_the_fewest_and_the_most():
    registry = builtin_registry()
    policy = RoundPolicy.for_profile("tiny")
    plan = plan_run(registry, "tiny", DEVICE_CLASSES["cpu"], policy, cases=[("distilled", "astronaut")],
                    looks=lambda variant, scenario: True)
    (looked,) = plan.cases
    assert (looked.fewest_rounds, looked.most_rounds) == (10, 16)
    assert looked.rounds == 10 + DEVICE_CLASSES["cpu"].continued_share * 6
    assert looked.partner == "baseline" and looked.tier == 1
    assert plan.predicted() < plan.predicted(most=True)


def test_tiers_follow_what_a_variant_is_unless_declared():
    registry = builtin_registry()
    tiers = {name: variant.planned_tier for name, variant in registry.variants.items()}
    assert tiers["baseline"] == tiers["sdxl"] == 1  # the fp32 baselines
    assert tiers["best-cpu"] == tiers["best-gpu"] == 1  # best stacks
    assert tiers["distilled"] == tiers["ssd-1b"] == tiers["segmind-vega-taesdxl"] == 1  # students, tiny autoencoders
    assert tiers["fp16"] == tiers["tf32"] == 1  # published figures (the source documents')
    assert tiers["bf16"] == tiers["attn-classic"] == tiers["sdxl-fp16"] == 2
    from diffperf.models.variants import Variant

    assert Variant("mine", "sd1", reference="baseline", tier=1).planned_tier == 1
    with pytest.raises(ValueError, match="tier 3"):
        Variant("mine", "sd1", reference="baseline", tier=3)


def test_a_baseline_is_planned_with_a_yardstick_where_it_follows_the_denoiser():
    from types import SimpleNamespace

    from diffusers import PixArtTransformer2DModel

    from diffperf.plan.schedule import yardstick_follows

    registry = builtin_registry()
    assert all(yardstick_follows(family) for family in registry.families.values())  # UNets, FLUX.1's and SD3's
    pixart = SimpleNamespace(slots=("transformer", "vae"),
                             component=lambda name: SimpleNamespace(cls=PixArtTransformer2DModel))
    assert not yardstick_follows(pixart)  # cross-attention, not joint: its baseline runs alone
