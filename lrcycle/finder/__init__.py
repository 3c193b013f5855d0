"""The range test: the driver and its result (`driver`), the suggestion rules (`suggest`), `lr_tune` (`tune`)."""
