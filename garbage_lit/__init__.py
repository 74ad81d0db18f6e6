"""garbage-lit: PyTorch Lightning + Hydra experiments for garbage image classification."""

__version__ = "0.1.0"
