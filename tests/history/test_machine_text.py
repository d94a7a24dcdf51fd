"""Machine facts recorded as data are worded by the rendering layer (diffperf.render.machine_text)."""

import historydata as hd

from diffperf.history.runs import run_from_dict
from diffperf.render.machine_text import allocator_text, process_settings
from diffperf.render.report import build_report


def test_the_report_words_the_process_settings_a_run_recorded():
    document = hd.standard_run(seed=0)
    document["machine_info"]["diffperf"]["process"] = {
        "allocator": {"libc": "glibc", "fixed": True, "mmap_threshold": 32 << 20, "trim_threshold": 64 << 20}}
    run = run_from_dict(document, source="run.json")
    assert process_settings(run) == ["allocator: glibc: mmap threshold 32 MiB, trim threshold 64 MiB (fixed)"]
    assert "allocator: glibc: mmap threshold 32 MiB" in build_report(run)
    # runs saved before the settings were data keep their sentence
    assert allocator_text("glibc: mmap threshold 32 MiB, trim threshold 64 MiB (fixed)").startswith("glibc")
    assert process_settings(run_from_dict(hd.standard_run(seed=0), source="old.json")) == []
