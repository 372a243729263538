"""The package version (a leaf: imports nothing from the package)."""

__version__ = "0.1.0"
