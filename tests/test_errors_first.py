"""Bad arguments are errors raised before anything changes: callbacks check themselves against the learner
(`check(learn)`), misspelt and Keras-style hook names are caught with a suggestion, and `metrics`, `cbs` and
`splitter` are type-checked."""

import pytest
import torch
from conftest import make_dls, make_mlp

from lrcycle import (
    CycleAverage,
    EarlyStoppingCallback,
    GradientAccumulation,
    Learner,
    SaveModelCallback,
    accuracy,
)
from lrcycle.callback import Callback


def learner(with_opt: bool, valid: bool = True, **kwargs):
    dls = make_dls()
    if not valid:
        dls.valid = None
    learn = Learner(dls, make_mlp(), progress=False, device="cpu", **kwargs)
    if with_opt:
        learn.create_opt()
    return learn


def state_of(learn):
    weights = {k: v.clone() for k, v in learn.model.state_dict().items()}
    return learn.opt, weights, hypers_of(learn.opt)


def hypers_of(opt):
    return None if opt is None else [dict(lr=g["lr"], momentum=g.get("momentum")) for g in opt.param_groups]


def assert_unchanged(learn, before):
    opt, weights, hypers = before
    assert learn.opt is opt
    assert all(torch.equal(v, weights[k]) for k, v in learn.model.state_dict().items())
    if opt is not None:
        assert hypers_of(learn.opt) == hypers


BAD_CALLBACKS = {
    "early_stopping": (lambda: EarlyStoppingCallback(monitor="acc"), True, "monitor: 'acc'"),
    "save_model": (lambda: SaveModelCallback("best", monitor="acc"), True, "monitor: 'acc'"),
    "cycle_average_best": (lambda: CycleAverage(keep="best"), False, "keep='best' needs validation data"),
}


@pytest.mark.parametrize("with_opt", [False, True])
@pytest.mark.parametrize("case", list(BAD_CALLBACKS))
@pytest.mark.parametrize("entry", ["fit", "fit_one_cycle", "fit_epochs", "lr_find"])
def test_a_callback_that_does_not_fit_the_learner_fails_before_anything_changes(case, entry, with_opt):
    make_cb, valid, message = BAD_CALLBACKS[case]
    learn = learner(with_opt, valid=valid)
    if entry == "lr_find":
        learn.add_cbs([make_cb()])  # a learner's own callbacks take part in the range test too
    cbs = [] if entry == "lr_find" else [make_cb()]
    before, n_cbs = state_of(learn), len(learn.cbs)
    calls = {
        "fit": lambda: learn.fit(10.0, 1, cbs=cbs),
        "fit_one_cycle": lambda: learn.fit_one_cycle(1, 10.0, cbs=cbs),
        "fit_epochs": lambda: learn.fit_epochs(1, cbs=cbs),
        "lr_find": lambda: learn.lr_find(num_it=5),
    }
    with pytest.raises(ValueError, match=message):
        calls[entry]()
    assert_unchanged(learn, before)  # no optimizer built, no lr set, no step
    assert len(learn.cbs) == n_cbs and len(learn.recorder.losses) == 0


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("befor_batch", "before_batch"),
        ("after_epoc", "after_epoch"),
        ("on_epoch_end", "after_epoch"),
        ("on_batch_begin", "before_batch"),
        ("on_train_begin", "before_fit"),
        ("on_backward_end", "before_step"),
    ],
)
def test_a_misspelt_or_keras_style_hook_is_an_error_naming_the_event(name, meant):
    typo = type("Typo", (Callback,), {name: lambda self, learn: None})()
    with pytest.raises(ValueError, match=f"{name} is not an event: did you mean {meant}\\?"):
        Learner(make_dls(), make_mlp(), cbs=[typo], progress=False)
    learn = learner(False)
    with pytest.raises(ValueError, match=f"did you mean {meant}"):
        learn.fit(0.1, 1, cbs=[typo])
    assert learn.opt is None and typo not in learn.cbs


def test_methods_that_do_not_look_like_hooks_are_fine():
    class Helpers(Callback):
        def on_gpu(self):
            return False

        def state_dict(self):
            return {}

        def check(self, learn):
            pass

        def beforehand(self):
            pass

    learn = learner(False, cbs=[Helpers()])
    learn.fit(0.1, 1)
    assert learn.train_iter == 6


def test_a_metric_name_is_a_type_error_saying_to_pass_the_function():
    with pytest.raises(TypeError, match=r"metrics: 'accuracy' is a name.*metrics=\[accuracy\]"):
        Learner(make_dls(), make_mlp(), metrics=["accuracy"], progress=False)
    with pytest.raises(TypeError, match=r"metrics=\[accuracy\]"):
        Learner(make_dls(), make_mlp(), metrics="accuracy", progress=False)
    with pytest.raises(TypeError, match="metrics"):
        Learner(make_dls(), make_mlp(), metrics=[3], progress=False)


def test_a_bad_metric_set_after_construction_fails_each_fit_before_training():
    learn = learner(False)
    learn.metrics = ["accuracy"]
    before = state_of(learn)
    with pytest.raises(TypeError, match="metrics"):
        learn.fit_one_cycle(1)
    assert_unchanged(learn, before)
    assert len(learn.recorder.losses) == 0


def test_a_single_metric_function_counts_as_a_list_of_one():
    learn = learner(False, metrics=accuracy)
    assert learn.metrics == [accuracy]
    learn.fit(0.1, 1)
    assert "accuracy" in learn.recorder.epochs[-1]


def test_a_single_callback_must_be_wrapped_in_a_list():
    with pytest.raises(TypeError, match=r"wrap it in a list: cbs=\[GradientAccumulation\(\.\.\.\)\]"):
        Learner(make_dls(), make_mlp(), cbs=GradientAccumulation(2), progress=False)
    learn = learner(False)
    for call in (
        lambda: learn.fit(0.1, 1, cbs=GradientAccumulation(2)),
        lambda: learn.fit_epochs(1, GradientAccumulation(2)),
    ):
        with pytest.raises(TypeError, match="got one GradientAccumulation; wrap it in a list"):
            call()
    assert learn.opt is None


def test_a_splitter_must_be_a_function():
    with pytest.raises(TypeError, match="splitter: expected a function model -> list of parameter groups.*int"):
        Learner(make_dls(), make_mlp(), splitter=3, progress=False)
