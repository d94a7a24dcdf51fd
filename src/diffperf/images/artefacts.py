"""The PNGs a similarity case writes: actual, expected and amplified difference, per comparison."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffperf.images.similarity import difference_image, save_png, to_uint8


@dataclass(frozen=True)
class ArtefactImages:
    """The PNGs written for one comparison."""

    actual: Path
    expected: Path
    difference: Path
    gain: float
    """How much the difference image amplifies the raw difference, in 8-bit levels of the image."""


class Artefacts:
    """Where a case writes its images: ``<output>/images/<variant>-<scenario>-{actual,expected,diff}.png``
    against its own baseline (every run, for the report), and ``...-vs-fp32-*.png`` when the fp32
    comparison fails."""

    def __init__(self, directory: Path, key: str):
        self.directory = directory
        self.key = key

    def write_actual(self, raw: np.ndarray) -> Path:
        path = self.directory / f"{self.key}-actual.png"
        save_png(path, to_uint8(raw))
        return path

    def write(self, label: str, actual: np.ndarray, expected: np.ndarray) -> ArtefactImages:
        """Actual, expected and amplified-difference PNGs, and the difference's gain."""
        stem = self.directory / (self.key if label == "own" else f"{self.key}-vs-{label}")
        images = ArtefactImages(Path(f"{stem}-actual.png"), Path(f"{stem}-expected.png"), Path(f"{stem}-diff.png"),
                                gain=_difference_gain(actual, expected))
        save_png(images.actual, to_uint8(actual))
        save_png(images.expected, to_uint8(expected))
        save_png(images.difference, difference_image(actual, expected))
        return images


def _difference_gain(actual: np.ndarray, expected: np.ndarray) -> float:
    """One 8-bit level of the image is 2/255 raw; the difference image maps the largest difference to 255 levels."""
    peak = float(np.nanmax(np.abs(actual.astype(np.float64) - expected)))
    return 2.0 / peak if peak > 0 else 1.0
