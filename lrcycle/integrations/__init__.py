"""Running lrcycle inside other training frameworks (PyTorch Lightning, Hugging Face). Each module here imports
its framework only when used, so none of them is a dependency of lrcycle."""
