"""The loop's events: their exact order, the cancel exceptions, errors in hooks, and callback ordering."""

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import (
    EVENTS,
    Callback,
    CancelBatchException,
    CancelEpochException,
    CancelFitException,
    CancelStepException,
    CancelTrainException,
    CancelValidException,
    Learner,
    ProgressCallback,
)

# The hand-written expectation: what one training batch, one validation batch and a whole epoch fire.
TRAIN_BATCH = [
    "before_batch",
    "after_pred",
    "after_loss",
    "before_backward",
    "before_step",
    "after_step",
    "after_batch",
]
VALID_BATCH = ["before_batch", "after_pred", "after_loss", "after_batch"]
TRAIN = ["before_train", *TRAIN_BATCH, *TRAIN_BATCH, *TRAIN_BATCH, "after_train"]
VALIDATE = ["before_validate", *VALID_BATCH, *VALID_BATCH, "after_validate"]
EPOCH = ["before_epoch", *TRAIN, *VALIDATE, "after_epoch"]
END = ["after_epoch", "after_fit", "cleanup_fit"]  # the end of a one-epoch fit


def three_two_dls():
    """3 training batches of 16, 2 validation batches of 32."""
    return make_dls(n_train=48, n_valid=64, bs=16)


class Log(Callback):
    """Records every event it sees; raises `exc` at `event` when `when(learn)` holds."""

    def __init__(self, event=None, exc=None, when=lambda learn: True, order=0):
        self.seen, self.event, self.exc, self.when, self.order = [], event, exc, when, order


def _logger(event):
    def hook(self, learn):
        self.seen.append(event)
        if event == self.event and self.when(learn):
            raise self.exc()

    return hook


for _event in EVENTS:
    setattr(Log, _event, _logger(_event))


def run(log, n_epoch=1, **kw):
    learn = Learner(three_two_dls(), make_mlp(), lr=0.1, progress=False, device="cpu", **kw)
    learn.fit(0.1, n_epoch, cbs=[log])
    return learn


def test_two_epoch_fit_fires_the_exact_event_sequence():
    log = Log()
    run(log, n_epoch=2)
    expected = [
        "before_fit",
        "before_epoch",
        "before_train",
        "before_batch", "after_pred", "after_loss", "before_backward",
        "before_step", "after_step", "after_batch",
        "before_batch", "after_pred", "after_loss", "before_backward",
        "before_step", "after_step", "after_batch",
        "before_batch", "after_pred", "after_loss", "before_backward",
        "before_step", "after_step", "after_batch",
        "after_train",
        "before_validate",
        "before_batch", "after_pred", "after_loss", "after_batch",
        "before_batch", "after_pred", "after_loss", "after_batch",
        "after_validate",
        "after_epoch",
        "before_epoch",
        "before_train",
        "before_batch", "after_pred", "after_loss", "before_backward",
        "before_step", "after_step", "after_batch",
        "before_batch", "after_pred", "after_loss", "before_backward",
        "before_step", "after_step", "after_batch",
        "before_batch", "after_pred", "after_loss", "before_backward",
        "before_step", "after_step", "after_batch",
        "after_train",
        "before_validate",
        "before_batch", "after_pred", "after_loss", "after_batch",
        "before_batch", "after_pred", "after_loss", "after_batch",
        "after_validate",
        "after_epoch",
        "after_fit",
        "cleanup_fit",
    ]  # fmt: skip
    assert log.seen == expected


def test_counters_seen_by_callbacks():
    seen = []

    class Counters(Callback):
        def after_batch(self, learn):
            if learn.training:
                seen.append((learn.epoch, learn.iter, learn.train_iter, learn.pct_train, learn.stepped))

        def before_fit(self, learn):
            assert (learn.n_epoch, learn.n_iter, learn.total_iter, learn.train_iter) == (2, 3, 6, 0)

    Learner(three_two_dls(), make_mlp(), progress=False, device="cpu").fit(0.1, 2, cbs=[Counters()])
    assert seen == [(e, i, 3 * e + i + 1, (3 * e + i + 1) / 6, True) for e in range(2) for i in range(3)]


def is_train_iter(i):
    return lambda learn: learn.training and learn.iter == i


def is_valid_iter(i):
    return lambda learn: not learn.training and learn.iter == i


def test_cancel_batch_skips_the_rest_of_that_batch_only():
    log = Log("after_pred", CancelBatchException, is_train_iter(1))
    learn = run(log)
    cancelled = ["before_batch", "after_pred", "after_cancel_batch", "after_batch"]
    train = ["before_train", *TRAIN_BATCH, *cancelled, *TRAIN_BATCH, "after_train"]
    assert log.seen == ["before_fit", "before_epoch", *train, *VALIDATE, *END]
    assert learn.train_iter == 2


def test_cancel_batch_in_validation_skips_only_that_batch():
    log = Log("after_loss", CancelBatchException, is_valid_iter(0))
    run(log)
    cancelled = ["before_batch", "after_pred", "after_loss", "after_cancel_batch", "after_batch"]
    validate = ["before_validate", *cancelled, *VALID_BATCH, "after_validate"]
    assert log.seen == ["before_fit", "before_epoch", *TRAIN, *validate, *END]


def test_cancel_step_skips_the_step_keeps_gradients_and_does_not_count():
    grads, iters = {}, []

    class Watch(Callback):
        order = 1

        def before_batch(self, learn):
            if learn.training:
                grads[learn.iter] = [p.grad for p in learn.model.parameters()]

        def after_batch(self, learn):
            if learn.training:
                iters.append(learn.train_iter)

    log = Log("before_step", CancelStepException, is_train_iter(1))
    learn = Learner(three_two_dls(), make_mlp(), progress=False, device="cpu")
    learn.fit(0.1, 1, cbs=[log, Watch()])
    step = ["before_step", "after_cancel_step", "after_step", "after_batch"]
    cancelled = ["before_batch", "after_pred", "after_loss", "before_backward", *step]
    train = ["before_train", *TRAIN_BATCH, *cancelled, *TRAIN_BATCH, "after_train"]
    assert log.seen == ["before_fit", "before_epoch", *train, *VALIDATE, *END]
    assert iters == [1, 1, 2] and learn.train_iter == 2
    assert all(g is None for g in grads[1])  # zeroed (set to None) after the real step of batch 0
    assert all(g is not None and g.abs().sum() > 0 for g in grads[2])  # batch 1's gradients were left
    assert len(learn.recorder.losses) == 2


def test_cancel_train_skips_the_rest_of_training_but_validates():
    log = Log("before_batch", CancelTrainException, is_train_iter(1))
    run(log)
    train = ["before_train", *TRAIN_BATCH, "before_batch", "after_cancel_train", "after_train"]
    assert log.seen == ["before_fit", "before_epoch", *train, *VALIDATE, *END]


def test_cancel_validate_skips_the_rest_of_validation():
    log = Log("after_loss", CancelValidException, is_valid_iter(0))
    run(log)
    validate = ["before_validate", "before_batch", "after_pred", "after_loss", "after_cancel_validate"]
    validate += ["after_validate"]
    assert log.seen == ["before_fit", "before_epoch", *TRAIN, *validate, *END]


def test_cancel_epoch_skips_the_rest_of_that_epoch_only():
    log = Log("after_train", CancelEpochException, lambda learn: learn.epoch == 0)
    run(log, n_epoch=2)
    first = ["before_epoch", *TRAIN, "after_cancel_epoch", "after_epoch"]
    assert log.seen == ["before_fit", *first, *EPOCH, "after_fit", "cleanup_fit"]


def test_cancel_epoch_before_it_starts_skips_training_and_validation():
    log = Log("before_epoch", CancelEpochException, lambda learn: learn.epoch == 0)
    learn = run(log, n_epoch=2)
    first = ["before_epoch", "after_cancel_epoch", "after_epoch"]
    assert log.seen == ["before_fit", *first, *EPOCH, "after_fit", "cleanup_fit"]
    assert learn.train_iter == 3 and len(learn.recorder.epochs) == 2


def test_cancel_fit_ends_the_fit():
    log = Log("after_epoch", CancelFitException, lambda learn: learn.epoch == 0)
    learn = run(log, n_epoch=2)
    assert log.seen == ["before_fit", *EPOCH, "after_cancel_fit", "after_fit", "cleanup_fit"]
    assert learn.train_iter == 3


def test_cancel_fit_before_anything_runs_with_progress_on(capsys):
    log = Log("before_fit", CancelFitException)
    learn = Learner(three_two_dls(), make_mlp(), device="cpu")
    learn.fit(0.1, 1, cbs=[log])
    assert log.seen == ["before_fit", "after_cancel_fit", "after_fit", "cleanup_fit"]
    assert learn.train_iter == 0


class Boom(Exception):
    pass


HOOKS_THAT_FAIL = ["before_fit", "after_loss", "before_step", "after_validate", "after_epoch"]


@pytest.mark.parametrize("event", HOOKS_THAT_FAIL)
def test_an_error_in_a_hook_propagates_and_cleanup_still_runs(event):
    log = Log(event, Boom)
    learn = Learner(three_two_dls(), make_mlp(), device="cpu")  # progress on: its cleanup must cope too
    with pytest.raises(Boom):
        learn.fit(0.1, 2, cbs=[log])
    assert log.seen[-2:] == [event, "cleanup_fit"]
    assert log not in learn.cbs
    assert learn.xb is None and learn.loss is None


def test_an_error_in_cleanup_fit_propagates():
    log = Log("cleanup_fit", Boom)
    with pytest.raises(Boom):
        run(log)


def test_after_fit_does_not_run_after_an_error():
    log = Log("after_step", Boom)
    with pytest.raises(Boom):
        run(log)
    assert "after_fit" not in log.seen and "after_cancel_fit" not in log.seen


@pytest.mark.parametrize("name", ["after_bacth", "before_fitt", "cleanup_epoch", "after_cancel_valid"])
def test_unknown_hook_name_is_rejected_when_added(name):
    typo = type("Typo", (Callback,), {name: lambda self, learn: None})()
    with pytest.raises(ValueError, match=name):
        Learner(three_two_dls(), make_mlp(), cbs=[typo], progress=False)
    learn = Learner(three_two_dls(), make_mlp(), progress=False)
    with pytest.raises(ValueError, match=name):
        learn.add_cbs([typo])
    assert typo not in learn.cbs


def test_non_hook_attributes_and_plain_classes_are_accepted():
    class Plain:  # not a Callback subclass: any object with an int order will do
        order = 3
        after_batch_count = 0  # not callable, so not a hook

        def after_batch(self, learn):
            self.after_batch_count += 1

        def helper(self):
            return None

    cb = Plain()
    Learner(three_two_dls(), make_mlp(), progress=False).fit(0.1, 1, cbs=[cb])
    assert cb.after_batch_count == 3 + 2


def test_callback_class_instead_of_instance_or_bad_order_is_a_type_error():
    learn = Learner(three_two_dls(), make_mlp(), progress=False)
    with pytest.raises(TypeError, match="instances"):
        learn.add_cbs([Log])
    bad = Log()
    bad.order = 1.5
    with pytest.raises(TypeError, match="order"):
        learn.add_cbs([bad])


def test_hooks_run_by_order_and_ties_keep_list_order():
    calls = []

    class Named(Callback):
        def __init__(self, name, order):
            self.name, self.order = name, order

        def before_fit(self, learn):
            calls.append(self.name)

    cbs = [Named("a", 5), Named("b", 0), Named("c", 5), Named("d", -1), Named("e", 0)]
    learn = Learner(three_two_dls(), make_mlp(), progress=False, cbs=cbs[:2])
    learn.fit(0.1, 1, cbs=cbs[2:])
    assert calls == ["d", "b", "e", "a", "c"]


def test_order_relative_to_the_recorder():
    seen = {}

    class Before(Callback):
        order = 40

        def after_batch(self, learn):
            if learn.training:
                seen.setdefault("before", []).append(len(learn.recorder.iters))

    class After(Callback):
        order = 55

        def after_batch(self, learn):
            if learn.training:
                seen.setdefault("after", []).append(len(learn.recorder.iters))

    Learner(three_two_dls(), make_mlp(), progress=False).fit(0.1, 1, cbs=[After(), Before()])
    assert seen == {"before": [0, 1, 2], "after": [1, 2, 3]}


def test_callbacks_of_one_fit_call_take_part_in_that_call_only():
    every, once = Log(), Log()
    learn = Learner(three_two_dls(), make_mlp(), progress=False, cbs=[every])
    learn.fit(0.1, 1, cbs=[once])
    n_events = len(once.seen)
    assert once not in learn.cbs and every in learn.cbs
    learn.fit(0.1, 1)
    assert len(once.seen) == n_events
    assert len(every.seen) == 2 * n_events


def test_added_cbs_and_remove_cbs():
    log = Log()
    learn = Learner(three_two_dls(), make_mlp(), progress=False)
    with learn.added_cbs([log]):
        learn.fit(0.1, 1)
    assert log not in learn.cbs and len(log.seen) == len(EPOCH) + 3
    learn.add_cbs([log])
    learn.remove_cbs([log])
    learn.fit(0.1, 1)
    assert len(log.seen) == len(EPOCH) + 3


def test_validate_fires_only_the_validation_events():
    log = Log()
    learn = Learner(three_two_dls(), make_mlp(), progress=False, cbs=[log])
    learn.validate()
    assert log.seen == VALIDATE


def test_validate_before_any_fit_with_progress_on_and_mode_restored():
    learn = Learner(three_two_dls(), make_mlp(), device="cpu")
    learn.model.train()
    loss, *_ = learn.validate()
    assert torch.isfinite(torch.tensor(loss)) and learn.model.training
    learn.model.eval()
    learn.validate()
    assert not learn.model.training


def test_no_bar_puts_the_callbacks_back_in_their_places():
    first, last = Log(), Log()
    learn = Learner(make_dls(), make_mlp(), cbs=[first], progress=True)
    learn.add_cbs([last])
    before = list(learn.cbs)
    with learn.no_bar():
        assert not any(isinstance(cb, ProgressCallback) for cb in learn.cbs)
    assert learn.cbs == before


def test_a_callback_given_to_the_learner_and_to_a_fit_runs_once():
    log = Log()
    learn = Learner(three_two_dls(), make_mlp(), cbs=[log], progress=False, device="cpu")
    learn.fit(0.1, 1, cbs=[log])
    assert log.seen.count("before_step") == 3  # three training batches, each seen once
    assert log in learn.cbs  # and it stays with the learner after the fit


def test_every_cleanup_hook_runs_when_an_earlier_one_raises():
    failing = Log(event="cleanup_fit", exc=RuntimeError, order=-5)
    later = Log(order=5)
    learn = Learner(three_two_dls(), make_mlp(), progress=False, device="cpu")
    with pytest.raises(RuntimeError):
        learn.fit(0.1, 1, cbs=[failing, later])
    assert later.seen[-1] == "cleanup_fit"
