"""Case order and the release plan: only perf cases (those using perf_session) count."""

from types import SimpleNamespace

from diffperf.wiring.ordering import group_by_variant, variant_of


def item(variant, fixtures=("perf_session", "benchmark")):
    return SimpleNamespace(callspec=SimpleNamespace(params={"variant": variant}), fixturenames=fixtures, name=str(variant))


def test_a_unit_tests_variant_parameter_is_not_a_perf_case():
    assert variant_of(item("distilled")) == "distilled"
    assert variant_of(item(object(), fixtures=("variant",))) is None  # tests/ parametrizing variant objects
    assert variant_of(SimpleNamespace(fixturenames=("perf_session",))) is None  # not parametrized


def test_perf_cases_are_grouped_by_variant_and_others_keep_their_place():
    items = [item("a"), item("b"), item(object(), fixtures=()), item("a"), item("b")]
    unit = items[2]
    group_by_variant(items)
    # Each variant's cases move up to its first case; the unit test (key: its own position) follows.
    assert [variant_of(i) for i in items] == ["a", "a", "b", "b", None]
    assert items[-1] is unit
