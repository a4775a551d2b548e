"""digittrain: a multilayer perceptron written with NumPy alone, trained on digitprep's CSVs."""

__version__ = "0.1.0"
