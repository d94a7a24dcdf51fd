"""diffperf: a pytest performance regression suite for diffusers text-to-image inference."""

__version__ = "0.1.0"
