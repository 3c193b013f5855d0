"""Independent callbacks, one per file."""
