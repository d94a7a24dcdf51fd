"""Host identity: the fingerprint holds what changes ratios, and keys follow it."""

import json

import torch

from diffperf.measure.host import Host, differences, this_host


def test_cpu_fingerprint_holds_what_changes_ratios():
    host = this_host(torch.device("cpu"))
    fingerprint = host.fingerprint
    for field in ("vendor", "family", "model", "stepping", "model_name", "isa", "caches", "logical_cpus",
                  "threads", "cpu_capability", "memory_gib", "torch", "onednn", "diffusers"):
        assert field in fingerprint, field
    assert fingerprint["threads"] == torch.get_num_threads()
    assert host.label.startswith("cpu-") and host.label.endswith(f"-{torch.get_num_threads()}t")
    json.dumps(fingerprint)  # stored in JSON as it is


def test_key_follows_every_field_and_differences_name_them():
    base = Host("cpu", "AMD EPYC", "2t", {"isa": ["avx2", "avx512f"], "torch": "2.13.0", "arch": "x86_64"})
    changed = Host("cpu", "AMD EPYC", "2t", {"isa": ["avx2"], "torch": "2.13.0", "arch": "x86_64"})
    assert base.key != changed.key and base.label == changed.label
    assert Host("cpu", "AMD EPYC", "2t", dict(base.fingerprint)).key == base.key
    assert differences(base.fingerprint, changed.fingerprint) == [("isa", ["avx2", "avx512f"], ["avx2"])]


def test_a_kernel_capping_environment_is_another_host(monkeypatch):
    here = this_host(torch.device("cpu"))
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    capped = this_host(torch.device("cpu"))
    assert capped.key != here.key
    assert differences(here.fingerprint, capped.fingerprint) == [("env_ONEDNN_MAX_CPU_ISA", None, "AVX2")]


def test_a_saved_run_rebuilds_its_host():
    host = this_host(torch.device("cpu"))
    record = {"device_type": "cpu", **host.describe()}
    assert Host.from_record(json.loads(json.dumps(record))) == host
    assert Host.from_record(record).key == record["host_key"]
