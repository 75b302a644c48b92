"""Fake MONAI for the launcher tests: only `python -m monai.bundle run|download`."""

__version__ = "0.0.0+fake"
