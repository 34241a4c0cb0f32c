"""derivgen: backpropagation derived by SymPy, written as documents and as NumPy code."""

__version__ = "0.1.0"
