"""Host identity: what a machine is, in the terms that change speed-up ratios.

"AMD EPYC, 2 threads" is not a machine. A :class:`Host` holds a readable name and a
*fingerprint*: the CPU's family, model and stepping, the ISA extensions kernels dispatch on, cache
sizes, cores, memory, the kernel-selection environment, and the versions of torch, oneDNN and
diffusers (on GPUs: name, capability, memory, driver, CUDA, cuDNN and power limit). Two hosts
with equal fingerprints get equal keys; expectations recorded for one key are only used on a host
with that key, and :func:`differences` says what differs when they are not.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

# ISA extensions that change which kernels ATen and oneDNN run (and so speed-up ratios).
ISA_FLAGS = (
    "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "avx512_fp16",
    "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "sve", "bf16", "i8mm",
)
# Environment variables that cap or steer kernel selection and threading.
KERNEL_ENVIRONMENT = (
    "ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS",
    "OMP_NUM_THREADS", "OMP_PROC_BIND", "OMP_PLACES", "LD_PRELOAD",
)


@dataclass(frozen=True)
class Host:
    """A machine as the gate sees it: a readable name and the fingerprint that identifies it."""

    device_type: str  # "cpu" | "cuda"
    name: str  # CPU model or GPU name
    size: str  # "2t" (CPU threads) or "x1" (GPU count)
    fingerprint: dict

    @property
    def label(self) -> str:
        """``cpu-amd-epyc-2t``: readable, but not unique (see :attr:`key`)."""
        return f"{self.device_type}-{slug(self.name)}-{self.size}"

    @property
    def key(self) -> str:
        """``cpu-amd-epyc-2t-1a2b3c4d``: the label and a hash of the whole fingerprint."""
        digest = hashlib.sha256(json.dumps(self.fingerprint, sort_keys=True).encode()).hexdigest()[:8]
        return f"{self.label}-{digest}"

    @property
    def portable_key(self) -> str:
        """The class of hosts that portable bands stand in for.

        CPUs: architecture, the instruction-set class kernels dispatch to (:func:`isa_class`) and
        threads, e.g. ``cpu-x86-64-avx512-bf16-2t``: an AVX-512 CPU without native bf16 runs bf16
        through slow conversions and an AVX2 one not at all, so their ratios are not comparable.
        GPUs: the GPU model and count.
        """
        if self.device_type == "cpu":
            arch = slug(self.fingerprint.get("arch") or platform.machine())
            return f"cpu-{arch}-{isa_class(self.fingerprint)}-{self.size}"
        return self.label

    def describe(self) -> dict:
        """What a run records of its host (machine_info), enough to rebuild it with :meth:`from_record`."""
        return {"host_key": self.key, "host_label": self.label, "portable_key": self.portable_key,
                "host_name": self.name, "host_size": self.size, "fingerprint": self.fingerprint}

    @classmethod
    def from_record(cls, info: dict) -> "Host":
        """The host a saved run was measured on (its machine_info["diffperf"])."""
        return cls(info["device_type"], info["host_name"], info["host_size"], info["fingerprint"])


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


# oneDNN's ISA caps (ONEDNN_MAX_CPU_ISA) that keep native bf16 instructions.
_BF16_ISAS = ("AVX512_CORE_BF16", "AVX512_CORE_FP16", "AVX512_CORE_AMX", "AVX512_CORE_AMX_FP16", "AVX10_1_512",
              "AVX10_1_512_AMX", "AVX10_1_512_AMX_FP16", "AVX10_2_512", "AVX10_2_512_AMX_2", "ALL", "DEFAULT")


def isa_class(fingerprint: dict) -> str:
    """``avx512-bf16``, ``avx512``, ``avx2``, ...: the kernels ATen dispatches to, and native bf16 or not.

    Follows what the process can use, not only what the CPU has: ``ATEN_CPU_CAPABILITY`` and
    ``ONEDNN_MAX_CPU_ISA`` cap it (and are how other classes are emulated on one machine).
    """
    capability = str(fingerprint.get("cpu_capability") or "default").lower()
    flags = set(fingerprint.get("isa") or ())
    cap = str(fingerprint.get("env_ONEDNN_MAX_CPU_ISA") or fingerprint.get("env_DNNL_MAX_CPU_ISA") or "ALL").upper()
    native_bf16 = bool(flags & {"avx512_bf16", "amx_bf16", "bf16"}) and cap in _BF16_ISAS
    if capability.startswith("avx512") and native_bf16:
        return "avx512-bf16"
    return capability.replace("_", "-")


def differences(recorded: dict, current: dict) -> list[tuple[str, object, object]]:
    """``(field, recorded value, current value)`` for every fingerprint field that differs."""
    fields = sorted(set(recorded) | set(current))
    return [(name, recorded.get(name), current.get(name)) for name in fields if recorded.get(name) != current.get(name)]


def this_host(device) -> Host:
    """The host the suite runs on, for the torch ``device``."""
    import torch

    if device.type == "cuda":
        return _cuda_host(device)
    cpu = cpu_identity()
    threads = torch.get_num_threads()
    fingerprint = {
        **cpu,
        "threads": threads,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "memory_gib": _memory_gib(),
        **_software(),
        **{f"env_{name}": os.environ[name] for name in KERNEL_ENVIRONMENT if name in os.environ},
    }
    return Host("cpu", cpu["model_name"], f"{threads}t", fingerprint)


def cpu_identity() -> dict:
    """Vendor, family, model, stepping, model name, ISA flags, caches and logical CPUs (Linux; less elsewhere)."""
    info: dict = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in info or not value:
                if key == "processor":
                    break
                continue
            info[key] = value.strip()
    except OSError:
        pass
    flags = set(info.get("flags", info.get("Features", "")).split())
    identity = {
        "vendor": info.get("vendor_id") or info.get("CPU implementer") or platform.processor() or "unknown",
        "family": info.get("cpu family") or info.get("CPU architecture"),
        "model": info.get("model") or info.get("CPU part"),
        "stepping": info.get("stepping") or info.get("CPU variant"),
        "model_name": info.get("model name") or platform.processor() or platform.machine(),
        "arch": platform.machine(),
        "isa": sorted(flag for flag in ISA_FLAGS if flag in flags),
        "caches": _caches(),
        "logical_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
    }
    return identity


def _caches() -> dict:
    """Cache sizes from sysfs: ``{"L1d": "32K", "L1i": "32K", "L2": "1024K", "L3": "32768K"}``."""
    caches = {}
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            level = (index / "level").read_text().strip()
            kind = (index / "type").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        suffix = {"Data": "d", "Instruction": "i"}.get(kind, "")
        caches[f"L{level}{suffix}"] = size
    return caches


def _memory_gib() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024**2)
    except OSError:
        pass
    return None


def _software() -> dict:
    import diffusers
    import torch

    onednn = re.search(r"MKL-DNN v([\d.]+)", torch.__config__.show())
    return {
        "torch": torch.__version__,
        "onednn": onednn.group(1) if onednn else None,
        "diffusers": diffusers.__version__,
        "libc": " ".join(platform.libc_ver()).strip() or None,
    }


def _cuda_host(device) -> Host:
    import torch

    properties = torch.cuda.get_device_properties(device)
    count = torch.cuda.device_count()
    fingerprint = {
        "gpu": properties.name,
        "capability": f"{properties.major}.{properties.minor}",
        "multiprocessors": properties.multi_processor_count,
        "memory_gib": round(properties.total_memory / 1024**3),
        "device_count": count,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        **_nvidia_smi(device.index or 0),
        **_software(),
        "cpu": cpu_identity()["model_name"],
    }
    return Host("cuda", properties.name, f"x{count}", fingerprint)


def _nvidia_smi(index: int) -> dict:
    """Driver version and power limit (nvidia-smi), which change clocks and so latency."""
    if shutil.which("nvidia-smi") is None:
        return {"driver": None, "power_limit_w": None}
    try:
        output = subprocess.run(
            ["nvidia-smi", f"--id={index}", "--query-gpu=driver_version,power.limit", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout.strip()
        driver, power = (part.strip() for part in output.split(","))
        return {"driver": driver, "power_limit_w": round(float(power))}
    except (OSError, subprocess.SubprocessError, ValueError):
        return {"driver": None, "power_limit_w": None}
