"""Model profiles: which size of every family's components a run builds.

``full`` builds each family's exact architectures from their configs with seeded random weights,
``tiny`` keeps their structure at a size that runs on two CPU cores (the configs are the families'
own: diffperf.models.sd1, diffperf.models.sdxl), and ``hub`` loads real weights
(diffperf.models.zoo). Importing this module stays light (no torch).
"""

from __future__ import annotations

PROFILE_NAMES = ("full", "tiny", "hub")
SYNTHETIC = ("full", "tiny")


def default_profile_name(cuda_available: bool) -> str:
    """``full`` on CUDA, ``tiny`` on the CPU."""
    return "full" if cuda_available else "tiny"


def check_profile_name(name: str) -> str:
    """Return ``name`` if it is a profile, else raise a one-line ValueError listing them."""
    if name not in PROFILE_NAMES:
        raise ValueError(f"unknown profile {name!r}: choose one of {', '.join(PROFILE_NAMES)}")
    return name
