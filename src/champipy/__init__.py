"""ChampiPy: identify mushroom species from a photo."""

__version__ = "0.1.0"
