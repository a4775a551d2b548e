"""digitprep: labelled digit images -> clean, MNIST-style one-hot CSV training data."""

__version__ = "0.1.0"
