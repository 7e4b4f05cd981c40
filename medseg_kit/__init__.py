"""medseg_kit: Split Federated learning for medical image segmentation, for learning and research."""

__version__ = "0.1.0"
