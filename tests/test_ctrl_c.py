"""Ctrl-C at any instant: real SIGINTs, sent by a tracer at lrcycle's own source lines and by a timer thread,
over `lr_find`, `lr_tune` and a short fit, each in float32 and under bfloat16 autocast, on a model with
BatchNorm. Afterwards the range test and `lr_tune` have put everything back bit for bit, a fit is exactly where
an uninterrupted replay was after some number of completed steps (weights, BatchNorm statistics, optimizer
state and the recorder's points alike), and nothing of the process is left changed: no gradient waiting to be
applied by the next fit, autocast off (flag, dtype, nesting), `learn.autocast` a no-op, the SIGINT handler,
the callbacks, grad mode."""

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
from conftest import make_dls

import lrcycle
from lrcycle import GradientAccumulation, Learner, interrupt
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
AUTOCAST_DTYPES = {device: torch.get_autocast_dtype(device) for device in ("cpu", "cuda")}


def assert_process_clean(learn, cbs_before):
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler, "the SIGINT handler was left installed"
    assert torch.is_grad_enabled(), "grad mode was left off"
    assert_autocast_off(learn)
    assert_no_gradient_left(learn)
    assert learn.cbs == cbs_before and all(a is b for a, b in zip(learn.cbs, cbs_before, strict=True))
    assert learn.callbacks.hooks == hook_table(learn.cbs), "the hook table disagrees with the callback list"
    assert interrupt._STATE.depth == 0 and not interrupt._STATE.held_frames


def assert_autocast_off(learn):
    """Autocast as a fresh process has it: off on every device, its dtypes the defaults, its nesting count 0 (so
    its cache of low-precision weight copies was cleared), a float32 layer computing in float32; and the
    learner's own context a no-op."""
    for device, dtype in AUTOCAST_DTYPES.items():
        assert not torch.is_autocast_enabled(device), f"autocast was left on for {device}"
        assert torch.get_autocast_dtype(device) == dtype, f"autocast's {device} dtype was left changed"
    nesting = torch.autocast_increment_nesting() - 1
    torch.autocast_decrement_nesting()
    assert nesting == 0, f"autocast's nesting count was left at {nesting}: its weight cache would go stale"
    assert torch.nn.functional.linear(torch.ones(1, 2), torch.ones(2, 2)).dtype == torch.float32
    assert isinstance(learn.autocast, contextlib.nullcontext), f"learn.autocast was left as {learn.autocast!r}"


def assert_no_gradient_left(learn):
    """No gradient for a later fit to apply: each is None or zero, as a completed step leaves them."""
    stale = [n for n, p in learn.model.named_parameters() if p.grad is not None and bool(p.grad.any())]
    assert not stale, f"gradients were left in {stale}"


def assert_traces_agree(rec):
    """Every per-step trace of the recorder has one entry per recorded step."""
    names = ("iters", "iter_epochs", "losses", "smooth_losses", "lrs", "moms")
    lengths = {name: len(getattr(rec, name)) for name in names}
    lengths.update({f"group_lrs[{g}]": len(t) for g, t in enumerate(rec.group_lrs)})
    assert len(set(lengths.values())) == 1, f"the recorder's traces disagree: {lengths}"


def recorder_copy(rec):
    return {name: list(getattr(rec, name)) for name in ("iters", "losses", "smooth_losses", "lrs", "moms")}


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


# ---- the set-ups: float32 or bfloat16 autocast, a model with BatchNorm ----------------------------------------
def bn_mlp():
    """An MLP with BatchNorm: its running statistics move at every training forward pass."""
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Linear(8, 3))


def make_learner(precision, progress=False, cbs=()):
    dls = make_dls(n_train=24, n_valid=16, bs=8, n_in=4, n_out=3)
    learn = Learner(dls, bn_mlp(), opt_func=torch.optim.Adam, progress=progress, device="cpu", cbs=list(cbs))
    return learn.to_bf16() if precision == "bf16" else learn


PRECISIONS = ("fp32", "bf16")


# ---- the range test ------------------------------------------------------------------------------------------
def range_test_learner(precision="fp32"):
    """A tiny learner with Adam state from a first fit, the progress callback on (the range test takes it out
    and puts it back), and validation data (never touched by the test)."""
    learn = make_learner(precision, progress=True)
    with contextlib.redirect_stdout(io.StringIO()):
        learn.fit(0.01, 1)
    return learn


class RangeTestCheck:
    """Everything the range test (or `lr_tune`) must put back, taken before a trial and compared after it."""

    def __init__(self, learn):
        self.learn, self.opt = learn, learn.opt
        self.model, self.opt_state = model_copy(learn.model), opt_state_copy(learn.opt)
        self.hypers = [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups]
        self.rng, self.cbs, self.lr = rng_states(), list(learn.cbs), learn.lr
        self.modes = [m.training for m in learn.model.modules()]
        self.flags = [p.requires_grad for p in learn.model.parameters()]

    def assert_restored(self):
        learn = self.learn
        assert_process_clean(learn, self.cbs)
        assert learn.opt is self.opt
        assert same_model(model_copy(learn.model), self.model), "the weights or BatchNorm statistics were not put back"
        assert same_opt_state(opt_state_copy(learn.opt), self.opt_state), "the optimizer state was not put back"
        assert [{k: v for k, v in g.items() if k != "params"} for g in learn.opt.param_groups] == self.hypers
        assert same_rng(rng_states(), self.rng), "the random generators were not put back"
        assert [m.training for m in learn.model.modules()] == self.modes
        assert [p.requires_grad for p in learn.model.parameters()] == self.flags
        assert learn.lr == self.lr
        assert_traces_agree(learn.recorder)


def lr_find_call(learn):
    return partial(quiet, partial(learn.lr_find, num_it=4))


def lr_tune_call(learn):
    return partial(quiet, partial(learn.lr_tune, "fit_one_cycle", 1, lr=0.01, factors=(0.5, 2.0)))


def quiet(call):
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        call()


def assert_recorder_as_left(rec, before, clean, train_iter):
    """After an interrupted range test: the history from before it (no step taken), or the test's own points
    after its `train_iter` completed steps, the same as an uninterrupted test's first ones."""
    now = recorder_copy(rec)
    if now == before:
        return
    k = len(now["iters"])
    assert k == train_iter, f"the recorder has {k} points after {train_iter} completed steps"
    assert now == {name: trace[:k] for name, trace in clean.items()}, "the recorder's points differ from a clean test's"


def restored_trials(learn, call, stride, n_timer, seed, after_each=None):
    """Ctrl-C at every `stride`-th line event inside lrcycle during `call` and at `n_timer` random instants;
    returns the number of trials. Each must end in a KeyboardInterrupt with everything restored."""
    tracer_points = range(1, count_line_events(call) + 1, stride)
    check = RangeTestCheck(learn)
    for at in tracer_points:
        before = recorder_copy(learn.recorder)
        tracer, interrupted = run_traced(call, at)
        assert tracer.fired and interrupted, f"line event {at}: the press was lost"
        check.assert_restored()
        if after_each is not None:
            after_each(before, f"line event {at}")
    rng = random.Random(seed)
    duration = timed(call)
    for _ in range(n_timer):
        before = recorder_copy(learn.recorder)
        sent, interrupted = run_timed(call, rng.uniform(0, 1.2 * duration))
        assert interrupted or not sent
        check.assert_restored()
        if after_each is not None:
            after_each(before, "a timer press")
    return len(tracer_points) + n_timer


def range_test_trials(stride, n_timer, seed=0, precision="fp32"):
    """lr_find: everything restored after every press, the recorder's points those of a clean test."""
    learn = range_test_learner(precision)
    call = lr_find_call(learn)
    call()
    clean = recorder_copy(learn.recorder)

    def recorder_check(before, where):
        try:
            assert_recorder_as_left(learn.recorder, before, clean, learn.train_iter)
        except AssertionError as error:
            raise AssertionError(f"{where}: {error}") from None

    return restored_trials(learn, call, stride, n_timer, seed, recorder_check)


def lr_tune_trials(stride, n_timer, seed=0, precision="fp32"):
    """lr_tune: trial fits and their validations, everything restored after every press."""
    learn = range_test_learner(precision)
    return restored_trials(learn, lr_tune_call(learn), stride, n_timer, seed)


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
FIT_SETUPS = ("fp32", "bf16", "fp32+accumulate")  # accumulate: 2 batches a step, so a press can fall inside a step


def fit_learner(setup="fp32"):
    cbs = [GradientAccumulation(2)] if setup.endswith("+accumulate") else []
    return make_learner(setup.split("+")[0], cbs=cbs)


def fit_call(learn):
    def call():
        torch.manual_seed(FIT_SEED)  # the shuffling
        learn.fit_one_cycle(2, 0.01)

    return partial(quiet, call)


class RecordSteps(Callback):
    """The replay's state after every completed step: weights with BatchNorm statistics, optimizer state and the
    recorder's points, by step count."""

    order = 1000

    def __init__(self, learn):
        self.states = {0: (model_copy(learn.model), None)}

    def after_step(self, learn):
        if learn.stepped:  # a step accumulation held back is no step
            self.states[learn.train_iter] = (model_copy(learn.model), opt_state_copy(learn.opt))


def fit_replay(setup):
    learn = fit_learner(setup)
    record = RecordSteps(learn)
    learn.add_cbs([record])
    fit_call(learn)()
    return record.states, recorder_copy(learn.recorder)


def assert_as_after_completed_steps(learn, replay, cbs_before):
    states, points = replay
    assert_process_clean(learn, cbs_before)
    assert_traces_agree(learn.recorder)
    k = learn.train_iter
    recorded = recorder_copy(learn.recorder)
    expected = {name: trace[:k] for name, trace in points.items()}
    assert recorded == expected, f"the recorder's points are not the replay's first {k}"
    weights, opt_state = states[k]
    assert same_model(model_copy(learn.model), weights), f"weights or BatchNorm statistics match no replay (step {k})"
    if k == 0:
        assert learn.opt is None or not any(learn.opt.state.values())
    else:
        assert same_opt_state(opt_state_copy(learn.opt), opt_state), f"optimizer state differs after {k} steps"


def fit_trials(stride, n_timer, seed=0, setup="fp32"):
    """Ctrl-C at every `stride`-th line event inside lrcycle and at `n_timer` random instants of a fit on a
    fresh learner; returns the number of trials. Each must end as a replay after its completed steps."""
    replay = fit_replay(setup)
    count_line_events(fit_call(fit_learner(setup)))  # fills the caches, as the trials find them
    tracer_points = range(1, count_line_events(fit_call(fit_learner(setup))) + 1, stride)
    for at in tracer_points:
        learn = fit_learner(setup)
        cbs = list(learn.cbs)
        tracer, interrupted = run_traced(fit_call(learn), at)
        assert tracer.fired and interrupted, f"line event {at}: the press was lost"
        try:
            assert_as_after_completed_steps(learn, replay, cbs)
        except AssertionError as error:
            raise AssertionError(f"line event {at}: {error}") from None
    rng = random.Random(seed)
    duration = timed(fit_call(fit_learner(setup)))
    for _ in range(n_timer):
        learn = fit_learner(setup)
        cbs = list(learn.cbs)
        sent, interrupted = run_timed(fit_call(learn), rng.uniform(0, 1.2 * duration))
        assert interrupted or not sent
        assert_as_after_completed_steps(learn, replay, cbs)
    return len(tracer_points) + n_timer


# ---- the harness: a few points in the default suite, every line event in the slow set ---------------------
@pytest.mark.parametrize("precision", PRECISIONS)
def test_ctrl_c_at_a_few_lines_of_lr_find_restores_everything(precision):
    assert range_test_trials(stride=151, n_timer=3, precision=precision) >= 10


@pytest.mark.parametrize("precision", PRECISIONS)
def test_ctrl_c_at_a_few_lines_of_lr_tune_restores_everything(precision):
    assert lr_tune_trials(stride=401, n_timer=3, precision=precision) >= 10


@pytest.mark.parametrize("setup", FIT_SETUPS)
def test_ctrl_c_at_a_few_lines_of_a_fit_leaves_a_replayed_state(setup):
    assert fit_trials(stride=157, n_timer=3, setup=setup) >= 10


def test_a_gradient_left_behind_is_never_applied_by_the_next_fit():
    """A fit that starts with gradients in `p.grad` (left by a step that never completed) trains exactly as one
    that starts with none."""
    clean, dirty = fit_learner(), fit_learner()
    for p in dirty.model.parameters():
        p.grad = torch.full_like(p, 0.5)
    for learn in (clean, dirty):
        fit_call(learn)()
    assert same_model(model_copy(dirty.model), model_copy(clean.model))


def test_ctrl_c_in_validate_puts_learn_autocast_back():
    """A press inside a bfloat16 validation (outside any fit) leaves no autocast context on the learner: a float32
    fit afterwards, the callback removed, computes in float32."""
    learn = fit_learner("bf16")
    learn.fit(0.01, 1)
    cbs = list(learn.cbs)
    tracer, interrupted = run_traced(learn.validate, at=count_line_events(learn.validate) // 2)
    assert tracer.fired and interrupted
    assert_process_clean(learn, cbs)


@pytest.mark.slow
def test_ctrl_c_at_every_line_of_lrcycle_in_lr_find_lr_tune_and_fits():
    """Every other line event inside lrcycle during a range test and a fit (every third in an lr_tune), float32
    and bfloat16 (the fit also with accumulation), plus presses from a timer thread at random instants: about
    7,500 in all (stride 1 everywhere gives about 14,900)."""
    trials = {}
    for precision in PRECISIONS:
        trials[f"lr_find {precision}"] = range_test_trials(stride=2, n_timer=100, precision=precision)
        trials[f"lr_tune {precision}"] = lr_tune_trials(stride=3, n_timer=100, precision=precision)
    for setup in FIT_SETUPS:
        trials[f"fit {setup}"] = fit_trials(stride=2, n_timer=100, setup=setup)
    print("injection points:", trials, "total", sum(trials.values()))
    assert sum(trials.values()) >= 2000
