"""The one Ctrl-C mechanism (`lrcycle.interrupt`): held sections, guarded blocks, and what a 1st, 2nd and 3rd
press do, as docs/resume.md's "Ctrl-C" section says."""

import contextlib
import signal
import threading
from functools import partial

import pytest
import torch
from conftest import make_dls, make_mlp
from torch import nn

from lrcycle import Learner
from lrcycle.callback import Callback
from lrcycle.interrupt import PRESS_AGAIN, guarded, held_sigint, holds_sigint

pytestmark = pytest.mark.skipif(
    signal.getsignal(signal.SIGINT) is not signal.default_int_handler, reason="another SIGINT handler is installed"
)


def press():
    signal.raise_signal(signal.SIGINT)


def test_a_press_inside_a_held_block_waits_for_its_end():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with held_sigint():
            press()
            done.append("rest of the block")
        done.append("after the block")
    assert done == ["rest of the block"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nested_held_blocks_raise_once_at_the_outermost_end():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with held_sigint():
            with held_sigint():
                press()
            done.append("outer block goes on")
    assert done == ["outer block goes on"]


@holds_sigint
def pressed_mid_way(done: list, fail: bool = False) -> str:
    press()
    done.append("rest of the function")
    if fail:
        raise RuntimeError("failed after the press")
    return "returned"


@pytest.mark.parametrize("in_section", [False, True], ids=["alone", "inside-a-guarded-body"])
def test_a_press_inside_a_holds_sigint_function_waits_for_its_return(in_section):
    done = []
    section = guarded(lambda: None, lambda _: done.append("teardown")) if in_section else contextlib.nullcontext()
    with pytest.raises(KeyboardInterrupt):
        with section:
            pressed_mid_way(done)
            done.append("after the call")
    assert done == ["rest of the function"] + (["teardown"] if in_section else [])
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_holds_sigint_function_that_raises_after_a_press_stops_with_its_error_attached():
    done = []
    with pytest.raises(KeyboardInterrupt) as stopped:
        with guarded(lambda: None, lambda _: done.append("teardown")):
            pressed_mid_way(done, fail=True)
    assert isinstance(stopped.value.__context__, RuntimeError)  # as a held block ending by an error does
    assert done == ["rest of the function", "teardown"]


@holds_sigint
def plain_result(x):
    return 2 * x


@pytest.mark.parametrize("in_section", [False, True], ids=["alone", "inside-a-guarded-body"])
def test_a_holds_sigint_function_in_another_thread_just_runs(in_section):
    results = []
    section = guarded(lambda: None, lambda _: None) if in_section else contextlib.nullcontext()
    with section:
        worker = threading.Thread(target=lambda: results.append(plain_result(21)))
        worker.start()
        worker.join()
    assert results == [42]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_press_held_for_the_main_thread_is_not_raised_in_another_threads_holds_sigint_call():
    results = []
    with pytest.raises(KeyboardInterrupt):
        with held_sigint():
            press()  # held: pending until the block ends
            worker = threading.Thread(target=lambda: results.append(plain_result(21)))
            worker.start()
            worker.join()
            results.append("block went on")
    assert results == [42, "block went on"]


def test_a_holds_sigint_function_inside_a_held_block_leaves_the_press_to_the_block():
    done = []
    with pytest.raises(KeyboardInterrupt):
        with held_sigint():
            assert pressed_mid_way(done) == "returned"
            done.append("block goes on")
    assert done == ["rest of the function", "block goes on"]


def test_a_press_in_a_guarded_body_interrupts_at_once_and_the_teardown_runs():
    log = []
    with pytest.raises(KeyboardInterrupt):
        with guarded(lambda: log.append("setup"), lambda _: log.append("teardown")):
            press()
            log.append("body went on")
    assert log == ["setup", "teardown"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_press_during_a_guarded_setup_undoes_it_and_the_body_never_starts():
    log = []

    def setup():
        log.append("setup")
        press()
        log.append("setup finished")

    with pytest.raises(KeyboardInterrupt):
        with guarded(setup, lambda _: log.append("teardown")):
            log.append("body")
    assert log == ["setup", "setup finished", "teardown"]


def test_a_press_during_a_teardown_waits_for_it():
    log = []

    def teardown(_):
        press()
        log.append("teardown finished")

    with pytest.raises(KeyboardInterrupt):
        with guarded(lambda: None, teardown):
            log.append("body")
    assert log == ["body", "teardown finished"]


def test_a_teardown_error_is_attached_to_the_error_that_was_propagating():
    def teardown(_):
        raise ValueError("teardown failed")

    with pytest.raises(RuntimeError, match="body failed") as info:
        with guarded(lambda: None, teardown):
            raise RuntimeError("body failed")
    assert [type(e) for e in info.value.cleanup_errors] == [ValueError]


def test_a_teardown_error_alone_is_raised():
    with pytest.raises(ValueError, match="teardown failed"):
        with guarded(lambda: None, lambda _: (_ for _ in ()).throw(ValueError("teardown failed"))):
            pass


def test_held_blocks_do_nothing_outside_the_main_thread():
    seen = []

    def worker():
        with held_sigint():
            seen.append(signal.getsignal(signal.SIGINT))

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()
    assert seen == [signal.default_int_handler]


def test_a_custom_handler_is_called_once_the_held_block_ends():
    calls = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        with held_sigint():
            press()
            assert calls == []  # held
        assert calls == [signal.SIGINT]
        assert signal.getsignal(signal.SIGINT) is not signal.default_int_handler  # the custom one is back
    finally:
        signal.signal(signal.SIGINT, previous)


# ---- presses during an optimizer step -------------------------------------------------------------------
class PressingSGD(torch.optim.SGD):
    """Ctrl-C is pressed `presses` times in the middle of the 5th step: after the first parameter's update."""

    def __init__(self, params, presses=1, **kwargs):
        super().__init__(params, **kwargs)
        self.presses, self.n_steps = presses, 0

    @torch.no_grad()
    def step(self, closure=None):
        self.n_steps += 1
        params = [p for g in self.param_groups for p in g["params"]]
        for i, p in enumerate(params):
            p.add_(p.grad, alpha=-self.param_groups[0]["lr"])
            if self.n_steps == 5 and i == 0:
                for _ in range(self.presses):
                    press()


def plain_sgd_steps(model, dls, n_steps, lr):
    """The same plain SGD, step for step, without any press (the reference)."""
    torch.manual_seed(0)
    loss_func, done = nn.CrossEntropyLoss(), 0
    while done < n_steps:
        for xb, yb in dls.train:
            loss_func(model(xb), yb).backward()
            with torch.no_grad():
                for p in model.parameters():
                    p.add_(p.grad, alpha=-lr)
                    p.grad = None
            done += 1
            if done == n_steps:
                return


def interrupted_fit(presses):
    dls = make_dls()
    learn = Learner(dls, make_mlp(), opt_func=partial(PressingSGD, presses=presses), progress=False, device="cpu")
    cbs = list(learn.cbs)
    torch.manual_seed(0)
    with pytest.raises(KeyboardInterrupt):
        learn.fit(0.05, 2)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler and torch.is_grad_enabled()
    assert learn.cbs == cbs
    return learn, dls


@pytest.mark.parametrize("presses", [1, 2])
def test_one_or_two_presses_during_a_step_complete_it_then_stop(presses, capsys):
    learn, dls = interrupted_fit(presses)
    assert learn.train_iter == 5
    reference = make_mlp()
    plain_sgd_steps(reference, dls, 5, 0.05)
    for p, q in zip(learn.model.parameters(), reference.parameters(), strict=True):
        assert torch.equal(p, q)
    assert (PRESS_AGAIN in capsys.readouterr().err) == (presses == 2)


def test_a_third_press_stops_at_once_with_a_warning_that_state_may_be_partial():
    with pytest.warns(RuntimeWarning, match="partial"):
        learn, dls = interrupted_fit(3)
    assert learn.train_iter == 4  # the 5th step was cut short: only its first parameter was updated
    reference = make_mlp()
    plain_sgd_steps(reference, dls, 4, 0.05)
    first, *rest = zip(learn.model.parameters(), reference.parameters(), strict=True)
    assert not torch.equal(*first) and all(torch.equal(p, q) for p, q in rest)


def test_a_cleanup_error_does_not_hide_the_error_that_ended_the_fit():
    class Fails(Callback):
        def after_step(self, learn):
            raise RuntimeError("the real problem")

    class CleanupFails(Callback):
        def cleanup_fit(self, learn):
            raise ValueError("cleanup failed")

    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    before = list(learn.cbs)
    with pytest.raises(RuntimeError, match="the real problem") as info:
        learn.fit(0.1, 1, cbs=[Fails(), CleanupFails()])
    assert [str(e) for e in info.value.cleanup_errors] == ["cleanup failed"]
    assert learn.cbs == before  # the fit's callbacks left


def test_every_cleanup_error_after_the_first_is_attached_to_it():
    class CleanupFails(Callback):
        def __init__(self, message):
            self.message = message

        def cleanup_fit(self, learn):
            raise ValueError(self.message)

    learn = Learner(make_dls(), make_mlp(), progress=False, device="cpu")
    with pytest.raises(ValueError, match="first") as info:
        learn.fit(0.1, 1, cbs=[CleanupFails("first"), CleanupFails("second")])
    assert [str(e) for e in info.value.cleanup_errors] == ["second"]
