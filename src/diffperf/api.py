"""diffperf's declaration API: what a ``conftest.py`` or plugin uses to add families, speed-ups and variants.

The suite declares its own families (diffperf.models.sd1, diffperf.models.sdxl) with exactly
these names; docs/extending.md walks through each.
"""

from diffperf.models.caches import Cache
from diffperf.models.calls import CallPlan
from diffperf.models.family import Component, Family, HubId
from diffperf.models.optin import OptIn
from diffperf.models.registry import Registry
from diffperf.models.speedups import (
    FEWER_STEPS,
    OTHER_MODEL,
    TF32,
    Attention,
    BuildContext,
    BuildPlan,
    ChannelsLast,
    Compile,
    DeepCache,
    FewStep,
    FusedQKV,
    Int8Dynamic,
    LoRA,
    NoVaeUpcast,
    Precision,
    SpeedUp,
    Student,
    TinyAutoencoder,
    ToMe,
    UseComponent,
)
from diffperf.models.variants import AUTO, Published, Variant
from diffperf.models.workloads import Scale, Scenario

__all__ = [
    "AUTO", "FEWER_STEPS", "OTHER_MODEL", "TF32", "Attention", "BuildContext", "BuildPlan", "Cache", "CallPlan",
    "ChannelsLast", "Compile", "Component", "DeepCache", "Family", "FewStep", "FusedQKV", "HubId", "Int8Dynamic", "LoRA",
    "NoVaeUpcast", "OptIn", "Precision", "Published", "Registry", "Scale", "Scenario", "SpeedUp", "Student",
    "TinyAutoencoder", "ToMe", "UseComponent", "Variant",
]
