"""Synthetic referring benchmark: an open stand-in for the private RefHL-Seg (see docs/synthetic.md)."""

from lsms.data.synth.generate import generate_case, generate_dataset
from lsms.data.synth.stats import dataset_statistics

__all__ = ["dataset_statistics", "generate_case", "generate_dataset"]
