"""UAD-Bench: unsupervised anomaly detection in brain MRI, one protocol for every method."""

__version__ = "0.1.0"
