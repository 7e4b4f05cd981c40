"""Datasets: real loaders for the official layouts, synthetic look-alikes, sites.

- ``list_datasets()`` names the registered datasets (the keys of ``LOADERS``, sorted);
  ``load_dataset(name, root, size)`` reads HAM10000, Kvasir-SEG or Blastocyst from the
  layout their archives unpack to (cached after the first decode); ``synthesize(name,
  out, n=, seed=)`` writes a look-alike in that same layout.
- :mod:`.partition` deals a dataset out to sites by one of ``PARTITIONS`` (iid,
  quantity, label, acquisition).
- :mod:`.augment` (batch augmentations), :mod:`.check` (report every problem in a
  folder), :mod:`.download` (fetch and verify the real data), :mod:`.plots` (figures),
  :mod:`.catalog` (real if installed, else synthetic), :mod:`.cli` (``medseg-kit data``).
"""

from . import blastocyst, ham10000, kvasir  # noqa: F401  (register the datasets)
from .base import (
    LOADERS,
    DataError,
    SegData,
    data_dir,
    list_datasets,
    load_dataset,
    resize_pair,
    synthesize,
    train_test_split,
)
from .partition import (
    PARTITIONS,
    Partition,
    make_sites,
    partition_dirichlet,
    partition_iid,
    partition_quantity,
)

__all__ = ["LOADERS", "PARTITIONS", "DataError", "Partition", "SegData", "data_dir",
           "list_datasets", "load_dataset", "make_sites", "partition_dirichlet",
           "partition_iid", "partition_quantity", "resize_pair", "synthesize",
           "train_test_split"]
