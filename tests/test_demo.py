"""`python -m lrcycle demo --out DIR` writes non-empty plots and the epoch table."""

import pandas as pd
import pytest

from lrcycle.__main__ import main


@pytest.mark.slow  # trains the demo CNN: ~5 s idle, more on a loaded machine
def test_demo_writes_plots_and_the_epoch_table(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) in (0, None)
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) >= 2 and all(p.stat().st_size > 1000 for p in pngs)
    table = pd.read_csv(out / "epochs.csv")
    assert {"epoch", "train_loss", "valid_loss", "accuracy"} <= set(table.columns) and len(table) >= 1
    assert table["accuracy"].between(0, 1).all()
    assert str(out) in capsys.readouterr().out
