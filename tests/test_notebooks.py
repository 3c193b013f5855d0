"""Every notebook in nbs/ runs top to bottom without an error, as a user runs it (working directory nbs/)."""

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NBS = Path(__file__).resolve().parent.parent / "nbs"
NOTEBOOKS = sorted(NBS.glob("*.ipynb"))


def test_every_topic_has_a_notebook():
    assert len(NOTEBOOKS) >= 6, [p.name for p in NOTEBOOKS]


@pytest.mark.notebooks
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    # The kernel inherits this environment. Models this small gain nothing from several threads, and on a
    # busy machine OpenMP threads spinning against other processes make them many times slower.
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    nb = nbformat.read(path, as_version=4)
    before = sorted(NBS.rglob("*"))
    client = nbclient.NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(NBS)}})
    client.execute()  # raises CellExecutionError, naming the cell and its traceback, on any error
    assert sorted(NBS.rglob("*")) == before, "the notebook wrote files into nbs/"
