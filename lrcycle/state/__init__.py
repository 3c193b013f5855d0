"""Saving and restoring state: the in-memory snapshot (`snapshot`), checkpoint files and their checks
(`checkpoint`, `checkpoint_checks`), what a full-state checkpoint adds (`training_state`), resuming (`resume`)
and the RNG states (`rng`)."""
