"""The ``--perf-*`` options as one checked value (importing this module stays light)."""

from __future__ import annotations

from dataclasses import dataclass, field

from diffperf.profiles import check_profile_name, default_profile_name


@dataclass
class PerfOptions:
    """The ``--perf-*`` options, parsed and checked."""

    profile: str | None = None  # None: full on CUDA, tiny on the CPU
    device: str | None = None  # None: cuda when available
    rounds: int | None = None  # None: the profile's default
    warmup: int | None = None  # None: the profile's default
    variants: tuple[str, ...] = ()  # empty: all
    enabled: frozenset[str] = frozenset()  # opt-in flags given, e.g. {"--perf-compile"}
    hub_models: dict = field(default_factory=dict)
    baselines_dir: str = "baselines"
    update_baselines: bool = False  # the only way a run writes baselines
    allow_missing_baselines: bool = False
    baseline_key: str | None = None  # None: this machine's hardware key
    output_dir: str = "perf-output"
    summary_path: str | None = None
    report_dir: str | None = None
    planted_slowdowns: dict[str, float] = field(default_factory=dict)  # variant -> extra work fraction

    def resolved_device(self):
        import torch

        if self.device is None:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        device = torch.device(self.device)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"--perf-device {self.device}: no CUDA device is available (use cpu)")
        return device

    def resolved_profile(self, device) -> str:
        return check_profile_name(self.profile or default_profile_name(device.type == "cuda"))

    def check(self) -> None:
        """Raise a one-line ValueError for an unknown profile or variant or a bad count."""
        if self.profile is not None:
            check_profile_name(self.profile)
        names = set(self.variants) | set(self.planted_slowdowns)
        if names:
            from diffperf.variants import get_variant  # imports torch and diffusers

            for name in sorted(names):
                get_variant(name)
        for name, fraction in self.planted_slowdowns.items():
            if not 0 < fraction < 10:
                raise ValueError(f"--perf-plant-slowdown {name}={fraction}: the fraction must be between 0 and 10")
        if self.rounds is not None and self.rounds < 1:
            raise ValueError(f"--perf-rounds must be at least 1, got {self.rounds}")
        if self.warmup is not None and self.warmup < 0:
            raise ValueError(f"--perf-warmup must be 0 or more, got {self.warmup}")


def parse_slowdowns(text: str) -> dict[str, float]:
    """``"distilled=0.1,sdpa=0.2"`` -> ``{"distilled": 0.1, "sdpa": 0.2}`` (one-line ValueError otherwise)."""
    slowdowns = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, fraction = item.partition("=")
        try:
            slowdowns[name.strip()] = float(fraction)
        except ValueError:
            raise ValueError(f"--perf-plant-slowdown {item!r}: write VARIANT=FRACTION, e.g. distilled=0.1") from None
    return slowdowns
