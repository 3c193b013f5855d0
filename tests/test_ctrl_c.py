"""Ctrl-C at any instant: real SIGINTs, sent by a tracer at lrcycle's own source lines and by a timer thread,
over `lr_find` and a short fit. Afterwards the range test has put everything back bit for bit, a fit is
exactly where an uninterrupted replay was after some number of completed steps, and nothing of the process
is left changed: the SIGINT handler, the callbacks, grad mode."""

import contextlib
import io
import os
import random
import signal
import sys
import threading
import time
import warnings
from functools import partial
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_dls, make_mlp

import lrcycle
from lrcycle import Learner, interrupt
from lrcycle.callback import Callback, hook_table

LRCYCLE_DIR = str(Path(lrcycle.__file__).resolve().parent)

pytestmark = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler, reason="another SIGINT handler is installed"
)


# ---- the two ways of pressing Ctrl-C --------------------------------------------------------------------
class LineTracer:
    """Sends SIGINT to this process at the k-th line event inside lrcycle's source files (k = `at`), or
    counts the line events when `at` is None."""

    def __init__(self, at=None):
        self.at, self.count, self.fired = at, 0, False

    def __call__(self, frame, event, arg):
        if self.fired or not frame.f_code.co_filename.startswith(LRCYCLE_DIR):
            return None
        return self.local(frame, event, arg)

    def local(self, frame, event, arg):
        if self.fired:
            return None
        if event == "line":
            self.count += 1
            if self.count == self.at:
                self.fired = True
                os.kill(os.getpid(), signal.SIGINT)
        return self.local


def run_traced(call, at=None):
    """Run `call` under a LineTracer; return (tracer, whether a KeyboardInterrupt came out)."""
    tracer = LineTracer(at)
    interrupted = False
    try:
        sys.settrace(tracer)
        try:
            call()
        finally:
            sys.settrace(None)
    except KeyboardInterrupt:
        interrupted = True
    return tracer, interrupted


def run_timed(call, delay):
    """Run `call` while a thread sends SIGINT to this process after `delay` seconds; return (sent, interrupted)."""
    sent = threading.Event()

    def press():
        os.kill(os.getpid(), signal.SIGINT)
        sent.set()

    timer = threading.Timer(delay, press)
    interrupted = False
    try:
        try:
            timer.start()
            call()
        finally:
            timer.cancel()
            timer.join()
            for _ in range(3):  # a signal sent just before the join is handled at the next bytecode check
                time.sleep(0.001)
    except KeyboardInterrupt:
        interrupted = True
    return sent.is_set(), interrupted


# ---- what must hold after every press -----------------------------------------------------------------------
def assert_process_clean(learn, cbs_before):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the SIGINT handler was left installed"
    assert torch.is_grad_enabled(), "grad mode was left off"
    assert learn.cbs == cbs_before and all(a is b for a, b in zip(learn.cbs, cbs_before, strict=True))
    assert learn.callbacks.hooks == hook_table(learn.cbs), "the hook table disagrees with the callback list"
    assert interrupt._STATE.depth == 0 and not interrupt._STATE.held_frames


def opt_state_copy(opt):
    if opt is None:
        return None
    return [
        {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in opt.state[p].items()}
        for g in opt.param_groups
        for p in g["params"]
    ]


def same_opt_state(a, b) -> bool:
    if a is None or b is None:
        return a is b
    for sa, sb in zip(a, b, strict=True):
        if sa.keys() != sb.keys():
            return False
        for key in sa:
            va, vb = sa[key], sb[key]
            same = torch.equal(va, vb) if isinstance(va, torch.Tensor) else va == vb
            if not same:
                return False
    return True


def model_copy(model):
    return {k: v.clone() for k, v in model.state_dict().items()}


def same_model(a, b) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def rng_states():
    return torch.get_rng_state(), np.random.get_state(), random.getstate()


def same_rng(a, b) -> bool:
    (ta, na, pa), (tb, nb, pb) = a, b
    numpy_same = na[0] == nb[0] and np.array_equal(na[1], nb[1]) and na[2:] == nb[2:]
    return torch.equal(ta, tb) and numpy_same and pa == pb


# ---- the range test ------------------------------------------------------------------------------------------
def range_test_learner():
    """A tiny learner with Adam state from a first fit, the progress callback on (the range test takes it out
    and puts it back), and validation data (never touched by the test)."""
    dls = make_dls(n_train=24, n_valid=16, bs=8, n_in=4, n_out=3)
    learn = Learner(dls, make_mlp(n_in=4, hidden=8), opt_func=torch.optim.Adam, progress=True, device="cpu")
    with contextlib.redirect_stdout(io.StringIO()):
        learn.fit(0.01, 1)
    return learn


class RangeTestCheck:
    """Everything the range test must put back, taken before a trial and compared after it."""

    def __init__(self, learn):
        self.learn, self.opt = learn, learn.opt
        self.model, self.opt_state = model_copy(learn.model), opt_state_copy(learn.opt)
        self.hypers = [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups]
        self.rng, self.cbs = rng_states(), list(learn.cbs)
        self.modes = [m.training for m in learn.model.modules()]
        self.flags = [p.requires_grad for p in learn.model.parameters()]

    def assert_restored(self):
        learn = self.learn
        assert_process_clean(learn, self.cbs)
        assert learn.opt is self.opt
        assert same_model(model_copy(learn.model), self.model), "the weights were not put back"
        assert same_opt_state(opt_state_copy(learn.opt), self.opt_state), "the optimizer state was not put back"
        assert [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups] == self.hypers
        assert same_rng(rng_states(), self.rng), "the random generators were not put back"
        assert [m.training for m in learn.model.modules()] == self.modes
        assert [p.requires_grad for p in learn.model.parameters()] == self.flags


def lr_find_call(learn):
    return partial(quiet, partial(learn.lr_find, num_it=4))


def quiet(call):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()


def range_test_trials(stride, n_timer, seed=0):
    """Ctrl-C at every `stride`-th line event inside lrcycle and at `n_timer` random instants; returns the
    number of trials. Every trial must end in a KeyboardInterrupt with everything restored."""
    learn = range_test_learner()
    call = lr_find_call(learn)
    tracer_points = range(1, count_line_events(call) + 1, stride)
    check = RangeTestCheck(learn)
    for at in tracer_points:
        tracer, interrupted = run_traced(call, at)
        assert tracer.fired and interrupted, f"line event {at}: the press was lost"
        check.assert_restored()
    rng = random.Random(seed)
    duration = timed(call)
    for _ in range(n_timer):
        sent, interrupted = run_timed(call, rng.uniform(0, 1.2 * duration))
        assert interrupted or not sent
        check.assert_restored()
    return len(tracer_points) + n_timer


def count_line_events(call) -> int:
    """Line events inside lrcycle during `call`, counted on a second run (the first fills caches)."""
    counts = [run_traced(call)[0].count for _ in range(2)]
    return counts[-1]


def timed(call) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


# ---- a short fit -----------------------------------------------------------------------------------------
FIT_SEED = 3


def fit_learner():
    dls = make_dls(n_train=24, n_valid=16, bs=8, n_in=4, n_out=3)
    return Learner(dls, make_mlp(n_in=4, hidden=8), opt_func=torch.optim.Adam, progress=False, device="cpu")


def fit_call(learn):
    def call():
        torch.manual_seed(FIT_SEED)  # the shuffling
        learn.fit_one_cycle(1, 0.01)

    return partial(quiet, call)


class RecordSteps(Callback):
    """The replay's state after every completed step: weights and optimizer state by step count."""

    order = 1000

    def __init__(self, learn):
        self.states = {0: (model_copy(learn.model), None)}

    def after_step(self, learn):
        self.states[learn.train_iter] = (model_copy(learn.model), opt_state_copy(learn.opt))


def fit_replay():
    learn = fit_learner()
    record = RecordSteps(learn)
    learn.add_cbs([record])
    fit_call(learn)()
    return record.states


def assert_as_after_completed_steps(learn, replay, cbs_before):
    assert_process_clean(learn, cbs_before)
    rec = learn.recorder  # every trace has one entry per recorded step, whatever line the press hit
    lengths = {
        name: len(getattr(rec, name)) for name in ("iters", "iter_epochs", "losses", "smooth_losses", "lrs", "moms")
    }
    assert len(set(lengths.values())) == 1, f"the recorder's traces disagree: {lengths}"
    k = learn.train_iter
    weights, opt_state = replay[k]
    assert same_model(model_copy(learn.model), weights), f"the weights match no replay state (train_iter={k})"
    if k == 0:
        assert learn.opt is None or not any(learn.opt.state.values())
    else:
        assert same_opt_state(opt_state_copy(learn.opt), opt_state), f"optimizer state differs after {k} steps"


def fit_trials(stride, n_timer, seed=0):
    """Ctrl-C at every `stride`-th line event inside lrcycle and at `n_timer` random instants of a fit on a
    fresh learner; returns the number of trials. Each must end as a replay after its completed steps."""
    replay = fit_replay()
    count_line_events(fit_call(fit_learner()))  # fills the caches, as the trials find them
    tracer_points = range(1, count_line_events(fit_call(fit_learner())) + 1, stride)
    for at in tracer_points:
        learn = fit_learner()
        cbs = list(learn.cbs)
        tracer, interrupted = run_traced(fit_call(learn), at)
        assert tracer.fired and interrupted, f"line event {at}: the press was lost"
        assert_as_after_completed_steps(learn, replay, cbs)
    rng = random.Random(seed)
    duration = timed(fit_call(fit_learner()))
    for _ in range(n_timer):
        learn = fit_learner()
        cbs = list(learn.cbs)
        sent, interrupted = run_timed(fit_call(learn), rng.uniform(0, 1.2 * duration))
        assert interrupted or not sent
        assert_as_after_completed_steps(learn, replay, cbs)
    return len(tracer_points) + n_timer


# ---- the harness: a few points in the default suite, every line event in the slow set ---------------------
def test_ctrl_c_at_a_few_lines_of_lr_find_restores_everything():
    assert range_test_trials(stride=151, n_timer=4) >= 14  # ~1,660 line events


def test_ctrl_c_at_a_few_lines_of_a_fit_leaves_a_replayed_state():
    assert fit_trials(stride=83, n_timer=4) >= 13  # ~780 line events


@pytest.mark.slow
def test_ctrl_c_at_every_line_of_lrcycle_in_lr_find_and_a_fit():
    """Every line event inside lrcycle during a range test and during a fit (about 2,450 in all), plus 400
    presses from a timer thread at random instants."""
    trials = range_test_trials(stride=1, n_timer=200)
    trials += fit_trials(stride=1, n_timer=200)
    assert trials >= 2000
