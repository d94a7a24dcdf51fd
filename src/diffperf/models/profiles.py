"""Model profiles: which size of every family's components a run builds.

``full`` builds each family's exact architectures from their configs with seeded random weights,
``short`` the same architectures at a fifth of each scenario's steps (the pull-request gate on GPUs:
a speed-up of every step keeps nearly its ratio, and the profile has its own calibration and images),
``tiny`` keeps their structure at a size that runs on two CPU cores (the configs are the families'
own: diffperf.models.sd1, diffperf.models.sdxl, diffperf.models.flux, diffperf.models.sd3), and ``hub``
loads real weights (diffperf.models.zoo). Importing this module stays light (no torch).
"""

from __future__ import annotations

PROFILE_NAMES = ("full", "short", "tiny", "hub")
SYNTHETIC = ("full", "short", "tiny")
PUBLISHED_WORKLOADS = ("full", "hub")  # the profiles that run each scenario as declared, as it was published


def architecture(profile: str) -> str:
    """The configs a profile builds: ``tiny``'s own, else the exact ``full`` ones."""
    return "tiny" if profile == "tiny" else "full"


def default_profile_name(cuda_available: bool) -> str:
    """``full`` on CUDA, ``tiny`` on the CPU."""
    return "full" if cuda_available else "tiny"


def check_profile_name(name: str) -> str:
    """Return ``name`` if it is a profile, else raise a one-line ValueError listing them."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    return name
