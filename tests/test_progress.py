"""Progress display: one line per epoch in a terminal, nothing when off, fastprogress widgets in notebooks."""

import pytest
from conftest import make_dls, make_mlp

from lrcycle import Learner, ProgressCallback, accuracy


def learner(**kw):
    return Learner(make_dls(), make_mlp(), metrics=[accuracy], device="cpu", **kw)


def test_terminal_prints_one_header_and_one_line_per_epoch(capsys):
    learn = Learner(make_dls(), make_mlp(), metrics=[accuracy], device="cpu", progress=False)
    learn.add_cbs([ProgressCallback(in_notebook=False)])
    learn.fit(0.05, 3)
    out = capsys.readouterr().out
    assert "\r" not in out
    lines = out.splitlines()
    assert len(lines) == 1 + 3
    assert lines[0].split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"]
    for epoch, line in enumerate(lines[1:]):
        cells = line.split()
        assert cells[0] == str(epoch) and len(cells) == 5
        row = learn.recorder.epochs[epoch]
        expected = [row["train_loss"], row["valid_loss"], row["accuracy"]]
        assert [float(c) for c in cells[1:4]] == pytest.approx(expected, abs=1e-6)


def test_progress_is_on_by_default_outside_notebooks(capsys):
    learn = learner()
    assert isinstance(learn.progress, ProgressCallback)
    learn.fit(0.05, 2)
    out = capsys.readouterr().out
    assert len(out.splitlines()) == 3 and "\r" not in out


def test_progress_false_prints_nothing(capsys):
    learn = learner(progress=False)
    learn.fit(0.05, 2)
    learn.validate()
    assert capsys.readouterr().out == ""


def test_no_bar_prints_nothing_inside_and_restores_the_bar(capsys):
    learn = learner()
    with learn.no_bar():
        learn.fit(0.05, 2)
    assert capsys.readouterr().out == ""
    assert learn.progress in learn.cbs
    learn.fit(0.05, 1)
    assert len(capsys.readouterr().out.splitlines()) == 2


def test_no_bar_restores_the_bar_after_an_error(capsys):
    learn = learner()
    with pytest.raises(ValueError), learn.no_bar():
        learn.fit(-1.0, 1)
    assert learn.progress in learn.cbs


def test_notebook_mode_runs(monkeypatch):
    ipython_display = pytest.importorskip("IPython.display")
    from fastprogress import fastprogress

    # fastprogress imports these only when it starts inside a notebook; give them to it here
    shown = []
    monkeypatch.setattr(fastprogress, "HTML", ipython_display.HTML, raising=False)
    monkeypatch.setattr(fastprogress, "display", lambda obj, **kw: shown.append(obj) or _Handle(), raising=False)
    monkeypatch.setattr(fastprogress, "clear_output", lambda *a, **kw: None, raising=False)
    learn = learner(progress=False)
    learn.add_cbs([ProgressCallback(in_notebook=True)])
    learn.fit(0.05, 2)
    assert len(learn.recorder.epochs) == 2 and shown
    html = "".join(getattr(obj, "data", "") for obj in shown)
    assert "progress" in html


class _Handle:
    """What IPython's display(..., display_id=True) returns."""

    def update(self, obj):
        pass


def test_a_log_gets_a_bounded_number_of_lines_for_a_long_epoch(capsys):
    """Not a terminal (CI, a file): no bar is redrawn; a 3-epoch x 60-batch fit prints at most 25 lines."""
    learn = Learner(make_dls(n_train=960, bs=16), make_mlp(), metrics=[accuracy], device="cpu")
    assert learn.steps_per_epoch() == 60
    learn.lr_find(num_it=30)
    learn.fit(0.05, 3)
    out = capsys.readouterr().out
    assert "\r" not in out
    assert len(out.splitlines()) <= 25


def run_in_a_pseudo_terminal(body) -> str:
    """Call `body()` with sys.stdout a pseudo-terminal (so `isatty()` is true, as in a terminal window), and
    return what it wrote there; a thread drains the terminal so the writer never blocks."""
    import os
    import pty
    import sys
    import threading

    leader, follower = pty.openpty()
    chunks = []

    def drain():
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:  # the terminal was closed
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain)
    reader.start()
    terminal = open(follower, "w", encoding="utf-8", closefd=True)
    saved, sys.stdout = sys.stdout, terminal
    try:
        assert sys.stdout.isatty()
        body()
    finally:
        sys.stdout = saved
        terminal.close()
        reader.join(timeout=10)
        os.close(leader)
    return b"".join(chunks).decode("utf-8", "replace")


def test_a_terminal_shows_live_bars_with_an_eta_and_a_range_test_bar_over_num_it():
    import re

    def body():
        learn = Learner(make_dls(n_train=960, bs=16), make_mlp(), metrics=[accuracy], device="cpu")
        learn.lr_find(num_it=40, stop_div=False)
        learn.fit(0.05, 3)

    out = run_in_a_pseudo_terminal(body)
    frames = out.replace("\r\n", "\n").split("\r")
    # the range test: one bar over num_it=40 iterations (not the epoch's 60 batches), finished
    assert any(re.search(r"range test \|.*\[40/40 \d\d:\d\d<\d\d:\d\d", f) for f in frames)
    # the fit: per epoch a bar over its 60 batches, with elapsed<remaining (the ETA) and the smoothed loss
    for epoch in (0, 1, 2):  # counted from 0, as the table and the recorder count them
        assert any(re.search(rf"epoch {epoch} of 0-2 : \|.*\[\d+/60 \d\d:\d\d<\d\d:\d\d", f) for f in frames)
    assert re.search(r"\[\d+/60 \d\d:\d\d<\d\d:\d\d smoothed loss \d+\.\d{4}\]", out)
    # and the epoch table: the header and one row per epoch
    lines = [line.strip() for line in out.replace("\r", "\n").splitlines()]
    assert any(line.split() == ["epoch", "train_loss", "valid_loss", "accuracy", "time"] for line in lines)
    for epoch in range(3):
        assert any(line.split()[:1] == [str(epoch)] and len(line.split()) == 5 for line in lines)


def notebook_display(monkeypatch):
    """fastprogress imports these only when it starts inside a notebook; give them to it, and collect the HTML."""
    ipython_display = pytest.importorskip("IPython.display")
    from fastprogress import fastprogress

    shown = []

    class Handle:
        def update(self, obj):
            shown.append(obj)

    monkeypatch.setattr(fastprogress, "HTML", ipython_display.HTML, raising=False)
    monkeypatch.setattr(fastprogress, "display", lambda obj, **kw: shown.append(obj) or Handle(), raising=False)
    monkeypatch.setattr(fastprogress, "clear_output", lambda *a, **kw: None, raising=False)
    return shown


def test_in_a_notebook_the_range_test_bar_counts_num_it(monkeypatch):
    shown = notebook_display(monkeypatch)
    learn = learner(progress=False)
    learn.add_cbs([ProgressCallback(in_notebook=True)])
    assert learn.steps_per_epoch() == 6  # the bar must not count the epoch's batches
    learn.lr_find(num_it=30, stop_div=False)
    html = "".join(getattr(obj, "data", "") for obj in shown)
    assert "max='30'" in html and "[30/30 " in html
    assert "max='6'" not in html


def test_in_a_notebook_validation_shows_a_bar(monkeypatch):
    shown = notebook_display(monkeypatch)
    learn = Learner(make_dls(n_valid=96), make_mlp(), device="cpu", progress=False)
    learn.add_cbs([ProgressCallback(in_notebook=True)])
    n_valid_batches = len(learn.dls.valid)
    assert n_valid_batches == 3
    learn.fit(0.05, 1)
    html = "".join(getattr(obj, "data", "") for obj in shown)
    assert f"max='{n_valid_batches}'" in html and f"[{n_valid_batches}/{n_valid_batches} " in html


def test_a_bar_reads_the_loss_at_most_four_times_a_second():
    import time

    from lrcycle.callbacks.progress import LOSS_READ_EVERY, _LossComment

    class CountingList(list):
        reads = 0

        def __getitem__(self, i):
            CountingList.reads += 1
            return super().__getitem__(i)

    class Bar:
        comment = ""

    class Rec:
        smooth_losses = CountingList([0.5])
        flushes = 0

        def flush(self):  # the recorder moves the losses it keeps on the device: counted as a read too
            Rec.flushes += 1

    class Learn:
        recorder = Rec()

    comment, bar, start = _LossComment(), Bar(), time.monotonic()
    for _ in range(2000):
        comment.refresh(bar, Learn())
    elapsed = time.monotonic() - start
    assert bar.comment == "smoothed loss 0.5000"
    assert 1 <= CountingList.reads <= 1 + elapsed / LOSS_READ_EVERY
    assert Rec.flushes == CountingList.reads


@pytest.mark.slow
def test_in_a_real_notebook_kernel_the_range_test_bar_counts_num_it_and_validation_has_a_bar(tmp_path, monkeypatch):
    """Run in a Jupyter kernel (fastprogress detects the notebook itself): the range test's bar ends at
    num_it=30 of 30, not at the epoch's 6 batches, and the fit's validation pass draws a bar over its 3 batches."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    from pathlib import Path

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tests, root = Path(__file__).resolve().parent, Path(__file__).resolve().parent.parent
    setup = (
        f"import sys; sys.path[:0] = [{str(root)!r}, {str(tests)!r}]\n"
        "import torch; torch.set_num_threads(1)\n"
        "from conftest import make_dls, make_mlp\n"
        "from lrcycle import Learner\n"
        "learn = Learner(make_dls(n_valid=96), make_mlp(), device='cpu')\n"
        "assert learn.steps_per_epoch() == 6 and len(learn.dls.valid) == 3"
    )
    cells = [setup, "_ = learn.lr_find(num_it=30, stop_div=False)", "learn.fit(0.05, 1)"]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    ).execute()

    def html(cell):
        return "".join(out.get("data", {}).get("text/html", "") for out in cell.outputs)

    range_test, fit = html(nb.cells[1]), html(nb.cells[2])
    assert "max='30'" in range_test and "[30/30 " in range_test and "max='6'" not in range_test
    assert "valid_loss" in fit  # the epoch table
