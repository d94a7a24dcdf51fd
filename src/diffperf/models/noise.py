"""The known, harmless warnings and log lines of the libraries the pipelines are built with.

Importing diffusers' pipelines imports transformers, which imports torchao wherever it is installed,
whether or not a variant quantizes (diffperf itself imports torchao, tomesd and DeepCache only when a
variant applies them). On that import torchao logs each of its optional compiled kernels that cannot
load here (MX formats, Hopper's CUTLASS kernels: diffperf's int8 variant uses neither), torch logs
torchao's registrations of its enums as deprecated, diffusers logs that torchao's tensor classes
were not registered for loading torchao-serialized checkpoints (diffperf loads none), and
transformers logs that its image processors fall back to their PIL versions without torchvision
(what they always were before). diffusers' schedulers call numpy in a way numpy 2 deprecates. None
of it is anything a user of diffperf can act on, so the ``diffperf`` command and the pytest plugin
leave out exactly these lines, each matched by the logger or module that emits it and the start of
its message; every other warning and log line is shown as usual.

Importing this module stays light (no torch): the plugin imports it in every pytest run.
"""

from __future__ import annotations

import logging
import re
import warnings
from dataclasses import dataclass


@dataclass(frozen=True)
class KnownWarning:
    """A warning filtered out: the start of its message and the module it is attributed to, as regular expressions."""

    message: str
    category: type[Warning]
    module: str


KNOWN_WARNINGS = (
    # EulerDiscreteScheduler.set_timesteps: np.array() of a torch tensor (SDXL's scheduler, at every call).
    KnownWarning(r"__array__ implementation doesn't accept a copy keyword", DeprecationWarning,
                 r"diffusers\.schedulers\."),
)


@dataclass(frozen=True)
class KnownLogLine:
    """A log line filtered out: the logger that emits it and the start of its message, a regular expression.

    A logging filter (``logger.addFilter``): equal filters are added once."""

    logger: str
    message: str

    def filter(self, record: logging.LogRecord) -> bool:
        return re.match(self.message, record.getMessage()) is None


KNOWN_LOG_LINES = (
    KnownLogLine("torchao", r"Failed to load \S*/torchao/_C_(mxfp8|cutlass_\w+)\S*\.so: "),
    KnownLogLine("torch.utils._pytree",
                 r"<enum '\w+'> is an Enum subclass and is now natively supported by torch.compile"),
    KnownLogLine("diffusers.quantizers.torchao.torchao_quantizer", r"Unable to import `torchao` Tensor objects"),
    KnownLogLine("transformers.utils.import_utils",
                 r"`\w+ImageProcessor` requires torchvision \(not installed\); falling back to `\w+Pil`"),
)


def warning_filter_lines() -> list[str]:
    """The known warnings as pytest ``filterwarnings`` lines (the plugin adds them to the run's configuration)."""
    return [f"ignore:{known.message}:{known.category.__name__}:{known.module}" for known in KNOWN_WARNINGS]


def ignore_known_warnings() -> None:
    """Leave the known warnings out of this process's output (the ``diffperf`` command)."""
    for known in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", known.message, known.category, known.module)


def quiet_known_log_lines() -> None:
    """Leave the known log lines out of this process's output; before the libraries are imported, as their loggers
    are the ones filtered."""
    for known in KNOWN_LOG_LINES:
        logging.getLogger(known.logger).addFilter(known)
