"""Synthetic referring benchmark: an open stand-in for the private RefHL-Seg (see docs/synthetic.md)."""

from lsms.data.synth.generate import generate_case, generate_dataset

__all__ = ["generate_case", "generate_dataset"]
