"""The random number generators a training run draws from (torch CPU and CUDA, numpy, Python), saved and put
back exactly, as plain data: the range test's in-memory snapshot and a full-state checkpoint both use it."""

from __future__ import annotations

import random

import numpy as np
import torch


def rng_state() -> dict:
    """torch (CPU, and CUDA once in use), numpy and Python RNG states as plain data."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": [str(kind), torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(internal), gauss_next],
    }
    # only when CUDA is already in use: asking for its state would otherwise start a CUDA context
    if torch.cuda.is_initialized() and torch.cuda.is_available():  # cheap first: is_available costs 1 to 45 us
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    """Put back what `rng_state` gave (CUDA's only where it was saved and CUDA is available)."""
    torch.set_rng_state(state["torch"].cpu())
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.cpu().numpy().astype(np.uint32), pos, has_gauss, cached))
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in state["cuda"]])
