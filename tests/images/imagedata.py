"""Synthetic image batches and file snapshots shared by the tests of diffperf.images."""

from __future__ import annotations

import os

import numpy as np

H, W = 32, 48


def smooth_image(n: int = 2) -> np.ndarray:
    """A smooth colourful (n, 32, 48, 3) float32 batch spanning about [-0.9, 0.9]."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    images = []
    for k in range(n):
        channels = [
            np.sin(x / 7 + k) * np.cos(y / 9),
            np.cos((x + y) / 11 + k),
            np.sin(x / 5 - y / 13 + k),
        ]
        images.append(0.9 * np.stack(channels, axis=-1))
    return np.stack(images).astype(np.float32)


def flat_taesd_like() -> np.ndarray:
    """Like a random-weight TAESD output: about -1, with +-0.1 structure and a colour cast."""
    y, x = np.mgrid[0:H, 0:W].astype(np.float32)
    structure = 0.1 * np.sin(x / 4) * np.cos(y / 5)
    cast = np.array([0.02, 0.05, -0.07], dtype=np.float32)
    return (-1.0 + structure[None, :, :, None] + cast).astype(np.float32)


def with_noise(image: np.ndarray, sigma: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (image + rng.normal(0.0, sigma, image.shape)).astype(np.float32)


def files_under(root) -> dict:
    """Every file under ``root`` with its bytes and modification time."""
    found = {}
    for directory, _, names in os.walk(root):
        for name in names:
            path = os.path.join(directory, name)
            with open(path, "rb") as handle:
                found[path] = (handle.read(), os.stat(path).st_mtime_ns)
    return found
