"""Data sets, split manifests and augmentations."""

from trainables.data.sources import ImageSource, load_source
from trainables.data.splits import SPLITS, Splits, make_splits

__all__ = ["ImageSource", "load_source", "SPLITS", "Splits", "make_splits"]
