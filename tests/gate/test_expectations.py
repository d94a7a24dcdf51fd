"""The expected speed-up store: host records by fingerprint, portable bands, merging, bad files."""

import json

import pytest

from diffperf.gate import expectations
from diffperf.gate.expectations import FORCED, HOST, PORTABLE, ExpectationsError
from diffperf.measure.host import Host

FINGERPRINT = {"model_name": "AMD EPYC", "family": "25", "model": "17", "isa": ["avx2", "avx512f"], "threads": 2,
               "torch": "2.13.0+cpu", "arch": "x86_64"}
HERE = Host("cpu", "AMD EPYC", "2t", FINGERPRINT)
UPGRADED = Host("cpu", "AMD EPYC", "2t", {**FINGERPRINT, "torch": "2.14.1+cpu"})
SPEEDUP = {"reference": "baseline", "expected": 1.5, "tolerance": 0.03, "run_sd": 0.01, "between_sd": 0.005,
           "processes": 10, "half_width": 0.02, "host_run_sd": 0.012, "host_between_sd": 0.008}
MEMORY = {"reference": "baseline", "expected": 0.5, "tolerance": 0.05}


def record_host(tmp_path, host=HERE, speedups=None, memory=None):
    header = {"label": host.label, "fingerprint": host.fingerprint, "calibration": {"processes": 10}}
    return expectations.record(tmp_path, "tiny", "hosts", host.key, header,
                               speedups if speedups is not None else {"distilled/astronaut": dict(SPEEDUP)},
                               memory if memory is not None else {"distilled/astronaut": dict(MEMORY)})


def test_keys_name_the_host_and_its_fingerprint():
    assert HERE.label == "cpu-amd-epyc-2t"
    assert HERE.key.startswith("cpu-amd-epyc-2t-") and len(HERE.key) == len("cpu-amd-epyc-2t-") + 8
    assert UPGRADED.key != HERE.key and UPGRADED.label == HERE.label
    assert HERE.portable_key == "cpu-x86-64-default-2t"  # no cpu_capability in this fingerprint


@pytest.mark.parametrize(("extra", "isa_class"), [
    ({"cpu_capability": "AVX512", "isa": ["avx512f", "avx512_bf16"]}, "avx512-bf16"),
    ({"cpu_capability": "AVX512", "isa": ["avx512f"]}, "avx512"),
    ({"cpu_capability": "AVX512", "isa": ["avx512_bf16"], "env_ONEDNN_MAX_CPU_ISA": "AVX512_CORE_VNNI"}, "avx512"),
    ({"cpu_capability": "AVX2", "isa": ["avx2", "avx512_bf16"]}, "avx2"),
])
def test_portable_classes_follow_the_kernels_a_process_can_use(extra, isa_class):
    host = Host("cpu", "AMD EPYC", "2t", {**FINGERPRINT, **extra})
    assert host.portable_key == f"cpu-x86-64-{isa_class}-2t"


def test_record_and_lookup_round_trip(tmp_path):
    path = record_host(tmp_path)
    assert path == tmp_path / "tiny" / "speedups.json"
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    found = expectations.lookup(tmp_path, "tiny", HERE)
    assert (found.key, found.source) == (HERE.key, HOST)
    entry = found.speedups["distilled/astronaut"]
    assert (entry.expected, entry.tolerance, entry.spread.run_sd, entry.spread.processes) == (1.5, 0.03, 0.01, 10)
    assert (entry.spread.host_run_sd, entry.spread.host_between_sd) == (0.012, 0.008)
    assert found.memory["distilled/astronaut"].spread is None


def test_records_merge_case_by_case(tmp_path):
    record_host(tmp_path, speedups={"distilled/astronaut": dict(SPEEDUP), "bf16/vase": dict(SPEEDUP, expected=1.1)})
    record_host(tmp_path, speedups={"bf16/vase": dict(SPEEDUP, expected=1.2)}, memory={})
    found = expectations.lookup(tmp_path, "tiny", HERE)
    assert found.speedups["distilled/astronaut"].expected == 1.5  # kept: not part of the second calibration
    assert found.speedups["bf16/vase"].expected == 1.2  # replaced, not max-ed with the old value
    assert "distilled/astronaut" in found.memory


def test_each_case_keeps_the_command_that_calibrated_it(tmp_path):
    both = {"distilled/astronaut": dict(SPEEDUP), "bf16/vase": dict(SPEEDUP)}
    expectations.record(tmp_path, "tiny", "hosts", HERE.key, {"calibration": {"command": "first", "processes": 10}},
                        both, {})
    path = expectations.record(tmp_path, "tiny", "hosts", HERE.key,
                               {"calibration": {"command": "second", "processes": 5}}, {"bf16/vase": dict(SPEEDUP)}, {})
    notes = json.loads(path.read_text())["hosts"][HERE.key]["calibrations"]
    assert [(n["command"], n["cases"]) for n in notes] == [("first", ["distilled/astronaut"]), ("second", ["bf16/vase"])]
    assert expectations.lookup(tmp_path, "tiny", HERE).calibration["command"] == "second"
    expectations.record(tmp_path, "tiny", "hosts", HERE.key, {"calibration": {"command": "third"}}, both, {})
    notes = json.loads(path.read_text())["hosts"][HERE.key]["calibrations"]
    assert [n["command"] for n in notes] == ["third"]  # nothing left that the earlier ones measured


def test_another_fingerprint_uses_the_portable_bands_and_says_what_differs(tmp_path):
    record_host(tmp_path)
    assert expectations.lookup(tmp_path, "tiny", UPGRADED) is None  # no portable bands yet
    expectations.record(tmp_path, "tiny", "portable", HERE.portable_key, {"hosts": [HERE.key]},
                        {"distilled/astronaut": dict(SPEEDUP, tolerance=0.1)}, {})
    found = expectations.lookup(tmp_path, "tiny", UPGRADED)
    assert (found.key, found.source, found.closest_host) == (HERE.portable_key, PORTABLE, HERE.key)
    assert found.differences == [("torch", "2.13.0+cpu", "2.14.1+cpu")]
    assert found.speedups["distilled/astronaut"].tolerance == 0.1


def test_forced_key_must_exist(tmp_path):
    record_host(tmp_path)
    assert expectations.lookup(tmp_path, "tiny", UPGRADED, forced_key=HERE.key).source == FORCED
    with pytest.raises(ExpectationsError, match="--perf-baseline-key nope: no such record"):
        expectations.lookup(tmp_path, "tiny", HERE, forced_key="nope")
    assert expectations.known_keys(tmp_path, "tiny") == [HERE.key]


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "is not valid JSON"),
        ('{"schema": 1, "hardware": {}}', "has schema 1, not diffperf's speed-up schema 2"),
        ('{"schema": 2, "hosts": []}', "'hosts' is not a table"),
        ('{"schema": 2, "hosts": {"k": {"speedups": {"a/b": {"expected": "fast"}}}}}', "lacks numeric fields"),
        ('{"schema": 2, "hosts": {"k": {"speedups": {"a/b": {"expected": 1.2, "tolerance": 5}}}}}',
         "tolerance between 0 and 1"),
    ],
)
def test_corrupt_or_hand_broken_file_is_one_clear_line_and_untouched(tmp_path, content, fragment):
    path = expectations.expectations_path(tmp_path, "tiny")
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with pytest.raises(ExpectationsError, match=fragment) as error:
        expectations.lookup(tmp_path, "tiny", Host("cpu", "x", "2t", {"arch": "x86_64"}), forced_key="k")
    assert "\n" not in str(error.value)
    assert path.read_text() == content


def test_the_shipped_file_parses_and_has_portable_bands():
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "baselines" / "tiny" / "speedups.json"
    data = json.loads(path.read_text())
    assert data["schema"] == expectations.SCHEMA and data["portable"]
    for key in list(data["hosts"]) + list(data["portable"]):
        found = expectations.lookup(path.parents[1], "tiny", HERE, forced_key=key)
        assert found.speedups and all(entry.spread is not None for entry in found.speedups.values())


@pytest.mark.parametrize("field, value", [("between_sd", "Infinity"), ("run_sd", "NaN"), ("half_width", "-0.1"),
                                          ("host_between_sd", "-Infinity"), ("processes", "Infinity"),
                                          ("expected", "Infinity"), ("expected", "0")])
def test_numbers_no_calibration_writes_are_refused_when_loading(tmp_path, field, value):
    """A hand-edited entry fails in one line naming the record, the case and the field (not later, mid-run)."""
    path = record_host(tmp_path)
    text = path.read_text()
    written = json.dumps({field: SPEEDUP[field]})[1:-1]  # e.g. '"between_sd": 0.005'
    assert written in text
    path.write_text(text.replace(written, f'"{field}": {value}'))
    with pytest.raises(ExpectationsError) as error:
        expectations.lookup(tmp_path, "tiny", HERE)
    message = str(error.value)
    assert "\n" not in message and f"{HERE.key} speed-up 'distilled/astronaut'" in message
    assert field in message or "lacks numeric fields" in message


def test_an_unreadable_file_is_moved_aside_and_a_readable_one_left(tmp_path):
    path = record_host(tmp_path)
    content = path.read_text()
    assert expectations.move_aside_if_unreadable(path, "tiny") is None  # readable: left where it is
    assert path.read_text() == content
    assert expectations.move_aside_if_unreadable(tmp_path / "full" / "speedups.json", "full") is None  # absent
    path.write_text("{truncated")
    message = expectations.move_aside_if_unreadable(path, "tiny")
    (kept,) = path.parent.glob("speedups.json.unreadable-*")
    assert not path.exists() and kept.read_text() == "{truncated"
    assert message.startswith(f"{path} is not valid JSON (") and message.endswith(
        f": moved it to {kept} and started a new file")
