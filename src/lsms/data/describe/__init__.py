"""Referring data from labelled CT: measured lesion attributes and verified expressions (docs/data.md)."""

from lsms.data.describe.core import describe_case, describe_dataset
from lsms.data.describe.inputs import load_case
from lsms.data.describe.measure import Thresholds

__all__ = ["Thresholds", "describe_case", "describe_dataset", "load_case"]
