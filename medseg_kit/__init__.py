"""medseg_kit: Split Federated learning (SplitFed) for medical image segmentation.

A thin helper package behind the notebooks: staged models (``models``), the cut
(``split``), the wire (``wire``), the SplitFed protocol (``protocol``), strategies and
the run loop (``federated``), data (``data``), metrics and pictures (``viz``).
"""

__version__ = "0.1.0"
