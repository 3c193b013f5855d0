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
