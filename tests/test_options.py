"""Unit tests of the ``--perf-*`` options: PerfOptions checks, and the plugin through ``pytester``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import torch

from diffperf.models.builtin import builtin_registry
from diffperf.models.plants import Plants
from diffperf.options import PerfOptions, parse_duration

pytest_plugins = ["pytester"]

LATENCY_SUITE = Path(__file__).resolve().parents[1] / "perf" / "test_latency.py"
REGISTRY = builtin_registry()


# --------------------------------------------------------------------------- PerfOptions


def test_defaults_pass_the_check():
    PerfOptions().check()
    PerfOptions(profile="full", variants=("baseline", "fp16"), rounds=6, warmup=0).check()


def test_unknown_profile_message():
    with pytest.raises(ValueError, match=r"^unknown profile 'nope': choose one of full, short, tiny, hub$"):
        PerfOptions(profile="nope").check()


def test_unknown_variant_message():
    options = PerfOptions(variants=("baseline", "nope"))
    options.check()  # names are judged against the run's registry, which a conftest.py may add to
    with pytest.raises(ValueError) as info:
        options.check_names(REGISTRY)
    message = str(info.value)
    assert message.startswith("unknown variant 'nope': choose one of ")
    assert "\n" not in message
    assert all(name in message for name in REGISTRY.variants)
    PerfOptions(variants=("baseline", "best-cpu")).check_names(REGISTRY)


def test_unknown_planted_slowdown_variant_message():
    with pytest.raises(ValueError, match=r"^unknown variant 'nope': choose one of baseline, "):
        PerfOptions(plants=Plants.of(slowdown={"nope": 0.1})).check_names(REGISTRY)


def test_a_slowdown_planted_in_every_variant_names_none():
    PerfOptions(plants=Plants.of(slowdown={"*": 0.15}, memory={"*": 0.1})).check_names(REGISTRY)
    with pytest.raises(ValueError, match=r"^unknown variant '\*'"):  # a perturbation names one variant
        PerfOptions(plants=Plants.of(perturbation={"*": 1e-3})).check_names(REGISTRY)


@pytest.mark.parametrize(("option", "name"), [("--perf-plant-slowdown", "slowdown"), ("--perf-plant-memory", "memory")])
def test_a_planted_fraction_out_of_range_is_one_line(option, name):
    with pytest.raises(ValueError, match=rf"^{option} \*=12.0: the fraction must be between 0 and 10$"):
        PerfOptions(plants=Plants.of(**{name: {"*": 12.0}})).check()


@pytest.mark.parametrize(("key", "message"), [
    ("nope", r"^--perf-hub nope: unknown family 'nope': declared are sd1\b"),
    ("sd1.nope", r"^--perf-hub sd1.nope: family sd1 has no component 'nope': choose one of unet, bk-sdm-small, "),
])
def test_unknown_hub_family_or_component_message(key, message):
    with pytest.raises(ValueError, match=message):
        PerfOptions(hub_models={key: "some/repo"}).check_names(REGISTRY)
    PerfOptions(hub_models={"sd1": "some/repo", "sd1.taesd": "other/repo"}).check_names(REGISTRY)


@pytest.mark.parametrize("rounds", [0, -3])
def test_rounds_below_one(rounds):
    with pytest.raises(ValueError, match=rf"^--perf-rounds must be at least 1, got {rounds}$"):
        PerfOptions(rounds=rounds).check()


def test_the_early_looks_fewest_rounds_are_the_fewest_with_the_gates_interval():
    from diffperf.gate.verdicts import CONFIDENCE
    from diffperf.options import MIN_LOOK_ROUNDS
    from diffperf.stats.ratios import min_pairs

    assert MIN_LOOK_ROUNDS == min_pairs(CONFIDENCE)


@pytest.mark.parametrize("options, message", [
    (dict(min_rounds=5), r"^--perf-min-rounds must be at least 6 \(the fewest rounds with a 95% interval\), got 5$"),
    (dict(rounds=8, min_rounds=10), r"^--perf-min-rounds 10 is more than --perf-rounds 8: the early look comes "),
])
def test_min_rounds_that_cannot_look(options, message):
    with pytest.raises(ValueError, match=message):
        PerfOptions(**options).check()


@pytest.mark.parametrize("options, profile, expected", [
    (dict(), "tiny", (16, 10)),  # the early look after 10 of 16
    (dict(), "full", (10, 10)),  # a GPU's rounds are cheap: every case gets them all
    (dict(rounds=20), "tiny", (20, 20)),  # --perf-rounds alone: every case gets that many
    (dict(rounds=20, min_rounds=12), "tiny", (20, 12)),
    (dict(min_rounds=16), "tiny", (16, 16)),  # the look turned off
])
def test_where_the_early_look_is(tmp_path, options, profile, expected):
    from diffperf.models.builtin import builtin_registry
    from diffperf.session import PerfSession

    session = PerfSession(PerfOptions(profile=profile, device="cpu", baselines_dir=str(tmp_path), **options),
                          builtin_registry())
    assert (session.policy.rounds, session.policy.min_rounds) == expected
    assert session.policy.round_counts() == sorted(set(expected))


def test_min_rounds_above_the_profiles_rounds_is_one_line(tmp_path):
    from diffperf.models.builtin import builtin_registry
    from diffperf.session import PerfSession

    with pytest.raises(ValueError, match=r"^--perf-min-rounds 20 is more than the tiny profile's 16 rounds: give at most 16$"):
        PerfSession(PerfOptions(profile="tiny", device="cpu", baselines_dir=str(tmp_path), min_rounds=20),
                    builtin_registry())


def test_negative_warmup():
    with pytest.raises(ValueError, match=r"^--perf-warmup must be 0 or more, got -1$"):
        PerfOptions(warmup=-1).check()


@pytest.mark.parametrize("device", ["gpu", "mps", "cuda:x", "tpu:0"])
def test_devices_diffperf_cannot_run_on_are_one_line(device):
    with pytest.raises(ValueError, match=rf"^--perf-device {device}: diffperf runs on cpu or cuda\[:N\]; use one of those$"):
        PerfOptions(device=device).check()


def test_options_are_frozen():
    with pytest.raises(AttributeError):
        PerfOptions().rounds = 3


def test_default_profile_follows_the_device():
    assert PerfOptions().resolved_profile(torch.device("cpu")) == "tiny"
    assert PerfOptions().resolved_profile(torch.device("cuda")) == "full"
    assert PerfOptions(profile="full").resolved_profile(torch.device("cpu")) == "full"
    assert PerfOptions(device="cpu").resolved_device() == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when CUDA is missing")
def test_cuda_device_without_cuda():
    with pytest.raises(ValueError, match=r"^--perf-device cuda: no CUDA device is available \(use cpu\)$"):
        PerfOptions(device="cuda").resolved_device()


# --------------------------------------------------------------------------- the plugin (pytester)


def test_plugin_is_registered(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*diffperf*", "*--perf-profile=*", "*--perf-variants=*"])


def test_unknown_profile_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--perf-profile", "nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perf-profile: invalid choice: 'nope'*"])


def test_unknown_variant_is_a_one_line_usage_error(pytester):
    """Refused when the session starts, before any model is built or any case runs."""
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    result = pytester.runpytest("--perf-device", "cpu", "--perf-variants", "baseline,nope")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stdout.fnmatch_lines(["*no tests ran*"])
    lines = [line for line in result.outlines + result.errlines if "unknown variant" in line]
    assert len(lines) == 1
    assert "diffperf: unknown variant 'nope'" in lines[0]
    assert all(name in lines[0] for name in REGISTRY.variants)
    assert "Traceback" not in result.stdout.str() + result.stderr.str()


def test_bad_rounds_is_a_usage_error(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--perf-rounds", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perf-rounds must be at least 1, got 0*"])


@pytest.mark.parametrize("device", ["gpu", "mps"])
def test_unknown_device_is_a_one_line_usage_error(pytester, device):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--perf-device", device)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--perf-device {device}: diffperf runs on cpu or cuda*"])
    assert "Traceback" not in result.stderr.str()


def test_unwritable_summary_and_report_paths_are_refused_up_front(pytester, monkeypatch):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    directory = pytester.mkdir("a-directory")
    result = pytester.runpytest("--perf-summary", str(directory))
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--perf-summary * is a directory: give a file name*"])
    blocker = pytester.makefile(".txt", blocker="")
    result = pytester.runpytest("--perf-report", str(blocker))
    result.stderr.fnmatch_lines(["*--perf-report * is a file: give a directory*"])
    result = pytester.runpytest("--perf-summary", str(blocker / "summary.md"))
    result.stderr.fnmatch_lines(["*is a file, so the directory cannot be created*"])
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(directory))
    result = pytester.runpytest()
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*GITHUB_STEP_SUMMARY * is a directory*"])


def usage_error_line(result) -> str:
    """The one line a usage error is said in; no traceback."""
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    lines = [line for line in result.errlines if line.strip()]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs /proc, where even root cannot write")
def test_paths_are_probed_by_writing_there_so_root_is_refused_too(pytester, monkeypatch):
    """Root passes every os.access check (CI runs as root), yet cannot write in /proc: refused before anything runs."""
    monkeypatch.setattr(os, "access", lambda *args, **kwargs: True)  # what root is told
    pytester.makepyfile("def test_nothing():\n    pass\n")
    line = usage_error_line(pytester.runpytest("--perf-summary", "/proc/nope/summary.md"))
    assert line.startswith("ERROR: --perf-summary /proc/nope/summary.md cannot be written (")
    assert line.endswith("): give a path you can write")
    line = usage_error_line(pytester.runpytest("--perf-report", "/proc/nope"))
    assert line.startswith("ERROR: --perf-report /proc/nope cannot be written (")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", "/proc/x/s.md")
    line = usage_error_line(pytester.runpytest())
    assert line.startswith("ERROR: GITHUB_STEP_SUMMARY /proc/x/s.md cannot be written (")


def test_files_where_directories_go_are_refused_up_front(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    blocker = pytester.makefile(".txt", blocker="")
    line = usage_error_line(pytester.runpytest("--perf-baselines", str(blocker)))
    assert line.startswith("ERROR: --perf-baselines ") and line.endswith("blocker.txt is a file: give a directory")
    line = usage_error_line(pytester.runpytest("--perf-output", str(blocker / "out")))
    assert line.startswith("ERROR: --perf-output ")
    assert line.endswith("blocker.txt is a file, so the directory cannot be created")
    line = usage_error_line(pytester.runpytest("--perf-baselines", str(blocker / "b"), "--perf-update-baselines"))
    assert line.endswith("blocker.txt is a file, so the directory cannot be created")
    # Only read: a baselines directory that does not exist yet is no error.
    pytester.runpytest("--perf-baselines", str(pytester.path / "not-yet")).assert_outcomes(passed=1)


def test_the_probes_leave_nothing_behind(pytester, monkeypatch):
    """What a probe creates it removes again; an existing file is left as it was."""
    pytester.makepyfile("def test_nothing():\n    pass\n")
    existing = pytester.path / "existing.md"
    existing.write_text("kept\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(existing))
    result = pytester.runpytest("--perf-summary", str(pytester.path / "new" / "deeper" / "summary.md"),
                                "--perf-output", str(pytester.path / "out"))
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "new").exists() and not (pytester.path / "out").exists()
    assert existing.read_text() == "kept\n"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(pytester.path / "step-summary.md"))
    pytester.runpytest().assert_outcomes(passed=1)
    assert not (pytester.path / "step-summary.md").exists()


def test_hub_model_options_without_the_hub_profile_are_refused(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    line = usage_error_line(pytester.runpytest("--perf-model", "./sd15"))
    assert line == ("ERROR: --perf-model ./sd15: only the hub profile loads weights, and this run's is the default "
                    "(full on CUDA, tiny on the CPU): add --perf-profile hub")
    line = usage_error_line(pytester.runpytest("--perf-profile", "tiny", "--perf-taesd-model", "me/taesd"))
    assert line.startswith("ERROR: --perf-taesd-model me/taesd: only the hub profile loads weights, "
                           "and this run's is tiny")
    pytester.mkdir("sd15")
    pytester.runpytest("--perf-profile", "hub", "--perf-model", "./sd15").assert_outcomes(passed=1)
    # --perf-hub is taken on any profile: the GPU workflow passes its DIFFPERF_HUB entries to every run.
    pytester.runpytest("--perf-profile", "full", "--perf-hub", "sd1=./nope").assert_outcomes(passed=1)  # not loaded


def test_output_paths_resolve_against_the_invocation_directory(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    config = pytester.parseconfigure("--perf-output", "out", "--perf-summary", "s.md", "--perf-report", "r")
    plugin = config.pluginmanager.get_plugin("diffperf-run")
    here = Path(config.invocation_params.dir)
    assert plugin.options.output_dir == str(here / "out")
    assert plugin.options.summary_path == str(here / "s.md")
    assert plugin.options.report_dir == str(here / "r")


def test_options_do_not_disturb_other_tests(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    result = pytester.runpytest("--perf-variants", "baseline", "--perf-rounds", "6")
    result.assert_outcomes(passed=1)


def test_known_library_deprecation_warnings_stay_out_of_the_summary(pytester):
    """diffusers' schedulers call numpy in a way numpy 2 deprecates (nothing a user can change): the plugin filters
    that warning, by module and message, and no other: a test's own deprecation is still reported."""
    pytester.makepyfile("""
import warnings

from diffusers import EulerDiscreteScheduler


def test_scheduler():
    EulerDiscreteScheduler().set_timesteps(2)  # what every SDXL case does


def test_own_deprecation():
    warnings.warn("an API of our own", DeprecationWarning)
""")
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, warnings=1)
    summary = result.stdout.str()
    assert "an API of our own" in summary and "__array__" not in summary and "diffusers" not in summary


@pytest.mark.slow
def test_latency_suite_baseline_only(pytester):
    """The real latency suite, baseline only, astronaut only, tiny profile on the CPU: a few seconds."""
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    json_path = pytester.path / "bench.json"
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(1)  # in-process run: keep CPU use modest and avoid stalls on a shared CPU
    try:
        result = pytester.runpytest(
            "--perf-device", "cpu",
            "--perf-variants", "baseline",
            "--perf-rounds", "6",
            "--perf-warmup", "0",
            "--perf-baselines", str(pytester.path / "baselines"),
            f"--benchmark-json={json_path}",
            "-k", "astronaut",
            "-rs",
            "-p", "no:randomly",
        )
    finally:
        torch.set_num_threads(previous_threads)
    # -k astronaut: every variant's cases on the scenarios whose names hold "astronaut", baseline's alone running.
    others = [name for name, scenario in REGISTRY.cases() if "astronaut" in scenario and name != "baseline"]
    assert "tf32" in others
    result.assert_outcomes(passed=1, skipped=len(others))
    skip_lines = [line for line in result.stdout.lines if line.startswith("SKIPPED")]
    assert len(skip_lines) == len(others)
    for name in others:
        assert any(line.endswith(f": {name} is not in --perf-variants") for line in skip_lines), name

    report = json.loads(json_path.read_text())
    assert report["machine_info"]["diffperf"]["profile"] == "tiny"
    assert report["machine_info"]["diffperf"]["device_type"] == "cpu"
    (benchmark,) = report["benchmarks"]
    assert benchmark["name"] == "test_latency[baseline-astronaut]"
    assert benchmark["group"] == "astronaut"
    info = benchmark["extra_info"]
    assert info["variant"] == "baseline" and info["reference"] == "yardstick"  # the fp32 baseline's partner
    assert info["yardstick"]["levels"][0] == [32, 16, 16, 4, 1]  # the tiny UNet's first level, 128 px
    assert info["profile"] == "tiny"
    assert info["scenario"] == "astronaut" and info["scheduler"] == "ddim"
    assert (info["steps"], info["resolution"]) == (5, 128)  # 50 steps x 0.1, 128 px
    assert info["scaled_from"] == {"steps": 50, "resolution": 512}
    assert set(info["stages"]) == {"text_encoding", "denoising", "decoding"}
    assert all(seconds > 0 for seconds in info["stages"].values())
    assert info["stages"]["denoising"] > info["stages"]["text_encoding"]
    assert info["weight_bytes"] > 0
    if info["peak_memory_growth"] is not None:  # None where /proc/self/clear_refs is not writable
        assert info["peak_memory"] == info["weight_bytes"] + info["peak_memory_growth"]
    assert "peak_memory" in info
    assert len(info["reference_rounds"]) == 7  # Y B Y B ... B Y
    assert info["reference_peak_memory"] is None or 0 < info["reference_peak_memory"] < info["peak_memory"]
    stats = benchmark["stats"]
    assert stats["rounds"] == 6
    assert len(stats["data"]) == 6  # raw rounds, for the statistical gate
    assert all(seconds > 0 for seconds in stats["data"])
    assert stats["min"] == min(stats["data"])


@pytest.mark.parametrize("workload, given", [({"steps": 1}, "--perf-steps 1"),
                                             ({"steps": 1, "resolution": 64}, "--perf-steps 1 --perf-resolution 64")])
def test_recording_image_baselines_of_an_overridden_workload_is_refused(workload, given):
    """The baselines hold the profile's own workload, which every run reads: never overwritten by another."""
    with pytest.raises(ValueError, match=rf"^--perf-update-baselines with {given}: the image baselines hold the "
                                         r"profile's own workload, .*record them without --perf-steps"):
        PerfOptions(update_baselines=True, **workload).check()
    PerfOptions(**workload).check()  # measuring an overridden workload is fine


# --------------------------------------------------------------------------- --perf-budget


@pytest.mark.parametrize("text, seconds", [("15m", 900.0), ("90s", 90.0), ("1.5h", 5400.0), ("120", 120.0)])
def test_budgets_are_durations(text, seconds):
    assert parse_duration("--perf-budget", text) == seconds


@pytest.mark.parametrize("text", ["soon", "-5m", "0", "inf"])
def test_a_budget_that_is_no_duration_is_one_line(text):
    with pytest.raises(ValueError, match=f"^--perf-budget {re.escape(text)}: "):
        parse_duration("--perf-budget", text)


def test_a_budget_keeps_tier_1_and_names_what_it_leaves_out(pytester):
    """Chosen at collection, before anything runs: the left-out cases are deselected and named in one line."""
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    result = pytester.runpytest("--perf-device", "cpu", "--perf-budget", "75s", "--collect-only", "-q")
    assert result.ret == pytest.ExitCode.OK
    lines = [line for line in result.outlines if "--perf-budget 75 s holds" in line]
    assert len(lines) == 1 and "left out: bf16-astronaut, bf16-vase, attn-classic-astronaut" in lines[0]
    collected = result.stdout.str()
    assert "test_latency[baseline-astronaut]" in collected and "test_latency[bf16-vase]" not in collected
    result.stdout.fnmatch_lines(["*deselected*"])


def test_a_budget_that_cannot_hold_tier_1_is_refused_before_anything_runs(pytester):
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    result = pytester.runpytest("--perf-device", "cpu", "--perf-budget", "10s")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: diffperf: --perf-budget 10 s cannot hold tier 1 (11 cases, up to * on cpu): "
                                 "give at least *, or select fewer cases with -k"])
    assert "Traceback" not in result.stderr.str()


# --------------------------------------------------------------------------- refused before anything runs


@pytest.mark.parametrize("rounds", [1, 5])
def test_rounds_that_give_no_interval_are_refused_unless_nothing_is_judged(rounds):
    with pytest.raises(ValueError, match=rf"^--perf-rounds {rounds}: fewer than 6 paired rounds give no 95% interval, "
                                         r"so no speed-up could be judged: give --perf-rounds 6 or more \(or "
                                         r"--perf-no-gate to measure without judging\)$"):
        PerfOptions(rounds=rounds).check()
    PerfOptions(rounds=rounds, no_gate=True).check()  # measured, never judged
    PerfOptions(rounds=rounds, benchmarks_disabled=True).check()  # nothing timed
    PerfOptions(rounds=6).check()


def test_rounds_that_give_no_interval_are_a_usage_error_before_anything_runs(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    line = usage_error_line(pytester.runpytest("--perf-rounds", "3"))
    assert line.startswith("ERROR: --perf-rounds 3: fewer than 6 paired rounds give no 95% interval")
    pytester.runpytest("--perf-rounds", "3", "--benchmark-disable").assert_outcomes(passed=1)


@pytest.mark.parametrize("options, message", [
    (dict(device="cpu", max_rounds=-1),
     "--perf-max-rounds -1 is fewer than the tiny profile's 16 rounds: give at least 16"),
    (dict(profile="full", max_rounds=8),
     "--perf-max-rounds 8 is fewer than the full profile's 10 rounds: give at least 10"),
    (dict(rounds=8, max_rounds=6), "--perf-max-rounds 6 is fewer than --perf-rounds 8: give at least 8"),
])
def test_max_rounds_below_the_rounds_names_the_rounds_a_case_gets(options, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        PerfOptions(**options).check()


@pytest.mark.parametrize("text", [",", "baseline,,distilled", " , "])
def test_empty_variant_names_are_refused(pytester, text):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    line = usage_error_line(pytester.runpytest("--perf-variants", text))
    assert line == (f"ERROR: --perf-variants {text!r} has an empty name: write variant names separated by commas, "
                    "e.g. baseline,distilled (leave the option out to run them all)")


def test_a_hub_directory_that_does_not_exist_is_refused_up_front(pytester):
    pytester.makepyfile("def test_nothing():\n    pass\n")
    for given in ("/nonexistent", "./sd15", "~/no-such-diffperf-dir", "a/b/c"):
        line = usage_error_line(pytester.runpytest("--perf-profile", "hub", "--perf-hub", f"sd1={given}"))
        assert line == (f"ERROR: --perf-hub sd1={given}: no such directory, and not a hub id (OWNER/NAME): give a "
                        "directory saved with save_pretrained, or a hub id"), line
    line = usage_error_line(pytester.runpytest("--perf-profile", "hub", "--perf-model", "./sd15"))
    assert line.startswith("ERROR: --perf-hub sd1=./sd15: no such directory")
    pytester.mkdir("sd15")
    for given in ("./sd15", "sd15", "runwayml/stable-diffusion-v1-5"):  # a directory, or a hub id: loaded later
        pytester.runpytest("--perf-profile", "hub", "--perf-hub", f"sd1={given}").assert_outcomes(passed=1)


# --------------------------------------------------------------- refused once collected, before anything is measured


@pytest.fixture
def latency_calls(monkeypatch):
    """The latency cases a run of the suite got to, each standing in for a measured one: nothing is built or timed."""
    import diffperf.suite
    from diffperf.session import Measurement

    calls = []

    def measured(benchmark, session, variant, scenario):
        calls.append(f"{variant}-{scenario}")
        case = session.case(variant, scenario)
        rounds = session.policy.rounds
        return Measurement(case, case.result("baseline", [0.1] * rounds, [0.2] * (rounds + 1)), None, 0.0)

    monkeypatch.setattr(diffperf.suite, "run_latency_case", measured)
    return calls


def stop_line(result, fragment: str) -> str:
    """The one line, without pytest's ``!`` frame, that a run stopped before any test ran says ``fragment`` in; no
    traceback."""
    assert "Traceback" not in result.stdout.str() + result.stderr.str()
    assert not {"passed", "failed", "skipped"} & set(result.parseoutcomes()), result.stdout.str()
    lines = [line for line in result.outlines + result.errlines if fragment in line]
    assert len(lines) == 1, result.stdout.str()
    return lines[0].strip("! ").removeprefix("_pytest.outcomes.Exit: ")


@pytest.mark.parametrize("key, status", [((), pytest.ExitCode.TESTS_FAILED),
                                         (("--perf-baseline-key", "cpu-x"), pytest.ExitCode.USAGE_ERROR)])
def test_unreadable_expectations_stop_the_run_before_anything_is_measured(pytester, latency_calls, key, status):
    """Said as the gate says it, with the status docs/verdicts.md gives (4 where the run names a record in it)."""
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    path = pytester.path / "baselines" / "tiny" / "speedups.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"schema": 2, "hosts": {')
    result = pytester.runpytest("--perf-device", "cpu", "--perf-profile", "tiny", "-k", "baseline-astronaut",
                                "--perf-baselines", str(pytester.path / "baselines"), *key)
    assert result.ret == status
    assert latency_calls == []
    line = stop_line(result, "could not be read")
    assert line.startswith(f"diffperf: expected speed-ups could not be read: {path} is not valid JSON ("), line
    assert line.endswith(f"restore it from git or run `diffperf calibrate --profile tiny --baselines "
                         f"{pytester.path / 'baselines'}`"), line
    assert path.read_text() == '{"schema": 2, "hosts": {'


def test_a_named_variant_that_does_not_run_here_is_refused_before_anything_runs(pytester, latency_calls):
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    result = pytester.runpytest("--perf-device", "cpu", "--perf-profile", "tiny", "--perf-variants", "compile")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert latency_calls == []
    assert stop_line(result, "--perf-variants") == ("diffperf: --perf-variants names compile, which does not run here: "
                                                    "compile is opt-in (slow to build): pass --perf-compile")


@pytest.mark.parametrize("args, why", [
    (("--perf-plant-slowdown", "fp16=0.5"),
     "fp16 is opt-in on cpu (slower than fp32 on CPUs; time budget): pass --perf-speedups"),
    (("--perf-variants", "baseline", "--perf-plant-memory", "distilled=0.1"), "distilled is not in --perf-variants"),
    (("-k", "baseline-astronaut", "--perf-plant-perturbation", "bf16=0.001"),
     "no selected case runs bf16 or measures against it (-k or --perf-budget left them out)"),
])
def test_a_change_planted_in_a_variant_that_does_not_run_is_refused_before_anything_runs(pytester, latency_calls,
                                                                                        args, why):
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    result = pytester.runpytest("--perf-device", "cpu", "--perf-profile", "tiny", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert latency_calls == []
    option, planted = args[-2:]
    assert stop_line(result, option) == (f"diffperf: {option} {planted}: {planted.split('=')[0]} does not run in this "
                                         f"run, so nothing would be planted: {why}")


def test_a_change_planted_in_the_reference_of_a_case_is_planted(pytester, latency_calls):
    """The reference runs beside its variant's cases, not selected itself."""
    pytester.makepyfile(test_latency=LATENCY_SUITE.read_text())
    result = pytester.runpytest("--perf-device", "cpu", "--perf-profile", "tiny", "--perf-variants", "distilled",
                                "-k", "distilled-astronaut", "--perf-plant-slowdown", "baseline=0.1,*=0.1",
                                "--perf-no-gate")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    assert latency_calls == ["distilled-astronaut"]


def test_max_rounds_whose_first_look_gives_no_interval_are_refused_before_anything_runs():
    with pytest.raises(ValueError, match=r"^--perf-max-rounds 12: its first look, at 6 rounds, .* give --perf-rounds 7"):
        PerfOptions(rounds=6, max_rounds=12).check()
