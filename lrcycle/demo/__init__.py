"""The demo: the embedded digits data, two small models for it, and `python -m lrcycle demo`."""

from .data import digits, digits_arrays
from .models import digits_cnn, digits_mlp

__all__ = ["digits", "digits_arrays", "digits_cnn", "digits_mlp"]
