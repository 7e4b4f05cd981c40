"""Datasets: real loaders for the official layouts, synthetic look-alikes, sites."""

from . import kvasir  # noqa: F401  (registers the dataset)
from .base import (
    LOADERS,
    DataError,
    SegData,
    data_dir,
    load_dataset,
    partition_iid,
    resize_pair,
    synthesize,
    train_test_split,
)

__all__ = ["LOADERS", "DataError", "SegData", "data_dir", "load_dataset", "partition_iid",
           "resize_pair", "synthesize", "train_test_split"]
