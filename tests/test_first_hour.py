"""A new user's first hour: their own numpy data (wine, a binary task, a regression), no loss given where one can
be inferred, metrics checked against a hand computation, and every common slip met by an error that names it."""

import math
import re
import warnings
from functools import partial

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.datasets import load_wine, make_classification, make_regression
from torch import nn
from torch.utils.data import DataLoader, Dataset

import lrcycle
from lrcycle import (
    DataLoaders,
    Learner,
    MSELossFlat,
    NonFiniteLossWarning,
    TerminateOnNaNCallback,
    accuracy,
    accuracy_multi,
    error_rate,
)


def wine_arrays(seed=0):
    """Wine as a new user has it: float64 features standardized by hand, int64 labels, a fixed split."""
    x, y = load_wine(return_X_y=True)
    x = (x - x.mean(0)) / x.std(0)
    order = np.random.RandomState(seed).permutation(len(x))
    train, valid = order[:140], order[140:]
    return x[train], y[train], x[valid], y[valid]


def mlp(n_in, n_out, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, n_out))


def params(model):
    return [t.detach().clone() for t in model.state_dict().values()]


def assert_unchanged(model, before):
    assert all(torch.equal(a, b) for a, b in zip(params(model), before))


# ---- arrays in -------------------------------------------------------------------------------------------
def test_wine_from_numpy_arrays_trains_with_cross_entropy_chosen_and_accuracy_right():
    x_train, y_train, x_valid, y_valid = wine_arrays()
    assert x_train.dtype == np.float64 and y_train.dtype == np.int64  # numpy's defaults, as the user has them
    learn = Learner(DataLoaders.from_tensors(x_train, y_train, x_valid, y_valid, bs=32), mlp(13, 3),
                    metrics=[accuracy, error_rate], progress=False)  # fmt: skip
    learn.fit_one_cycle(3, 0.1)
    assert isinstance(learn.loss_func, nn.CrossEntropyLoss)
    with torch.no_grad():
        logits = learn.model(torch.tensor(x_valid, dtype=torch.float32))
    hand_accuracy = float(np.mean(logits.argmax(1).numpy() == y_valid))
    hand_loss = float(nn.functional.cross_entropy(logits, torch.tensor(y_valid)))
    last = learn.recorder.epochs[-1]
    assert last["accuracy"] == pytest.approx(hand_accuracy, abs=1e-6)
    assert last["error_rate"] == pytest.approx(1 - hand_accuracy, abs=1e-6)
    assert last["valid_loss"] == pytest.approx(hand_loss, rel=1e-5)
    assert hand_accuracy > 0.8  # it learned (wine is easy)


@pytest.mark.parametrize("kind", ["list", "pandas", "int32"])
def test_from_tensors_takes_lists_pandas_and_int32_labels_as_float32_and_int64(kind):
    x_train, y_train, x_valid, y_valid = wine_arrays()
    convert = {
        "list": lambda x, y: (x.tolist(), y.tolist()),
        "pandas": lambda x, y: (pd.DataFrame(x), pd.Series(y)),
        "int32": lambda x, y: (x, y.astype(np.int32)),
    }[kind]
    dls = DataLoaders.from_tensors(*convert(x_train, y_train), *convert(x_valid, y_valid), bs=16)
    for loader, x, y in ((dls.train.dataset, x_train, y_train), (dls.valid.dataset, x_valid, y_valid)):
        xs, ys = loader.tensors
        assert xs.dtype == torch.float32 and ys.dtype == torch.int64
        assert torch.equal(xs, torch.tensor(x, dtype=torch.float32)) and torch.equal(ys, torch.tensor(y))


def test_from_tensors_copies_the_users_array():
    x_train, y_train, _, _ = wine_arrays()
    x32 = x_train.astype(np.float32)
    dls = DataLoaders.from_tensors(x32, y_train)
    x32[0, 0] = 1e6
    assert dls.train.dataset.tensors[0][0, 0] != 1e6


def test_from_tensors_bad_arrays_are_errors_naming_the_argument():
    x_train, y_train, _, _ = wine_arrays()
    with pytest.raises(TypeError, match=r"y_train: .*dtype <U.*encode the labels as integers"):
        DataLoaders.from_tensors(x_train, np.array(["a"] * len(x_train)))
    with pytest.raises(ValueError, match=r"x_train/y_train: need one target per input row.*\(140, 13\).*\(10,\)"):
        DataLoaders.from_tensors(x_train, y_train[:10])
    with pytest.raises(ValueError, match="x_valid/y_valid: give both"):
        DataLoaders.from_tensors(x_train, y_train, x_train)


def test_float64_batches_into_a_float32_model_are_an_error_naming_the_dtype_and_the_fix():
    x_train, y_train, _, _ = wine_arrays()
    loader = DataLoader(list(zip(torch.tensor(x_train), torch.tensor(y_train))), batch_size=16)  # float64 tensors
    learn = Learner(DataLoaders(loader), mlp(13, 3), progress=False)
    before = params(learn.model)
    with pytest.raises(TypeError, match=r"float64.*float32.*astype\('float32'\).*DataLoaders.from_tensors"):
        learn.fit(1e-2, 1)
    assert_unchanged(learn.model, before)
    assert learn.recorder.losses == []


# ---- binary and multi-label models -----------------------------------------------------------------------
def binary_arrays(seed=0):
    x, y = make_classification(n_samples=400, n_features=10, n_informative=5, random_state=seed)
    return x[:300], y[:300].astype(np.float64), x[300:], y[300:].astype(np.float64)


@pytest.mark.parametrize("output", ["[B]", "[B, 1]"])
def test_a_one_logit_bce_model_reads_accuracy_at_logit_zero(output):
    x_train, y_train, x_valid, y_valid = binary_arrays()
    if output == "[B]":  # the model squeezes its one logit; the targets stay [B]
        model, shape = nn.Sequential(mlp(10, 1), nn.Flatten(0)), lambda y: y
    else:  # the model keeps [B, 1]; the targets are shaped to match, as BCEWithLogitsLoss needs
        model, shape = mlp(10, 1), lambda y: y.reshape(-1, 1)
    dls = DataLoaders.from_tensors(x_train, shape(y_train), x_valid, shape(y_valid), bs=32)
    learn = Learner(dls, model, loss_func=nn.BCEWithLogitsLoss(), metrics=[accuracy, error_rate], progress=False)
    learn.fit_one_cycle(2, 3e-2)
    with torch.no_grad():
        logits = learn.model(torch.tensor(x_valid, dtype=torch.float32)).reshape(-1).numpy()
    hand = float(np.mean((logits > 0) == (y_valid == 1)))
    assert learn.recorder.epochs[-1]["accuracy"] == pytest.approx(hand, abs=1e-6)
    assert learn.recorder.epochs[-1]["error_rate"] == pytest.approx(1 - hand, abs=1e-6)
    assert hand > 0.75  # the argmax of a single column would have read every row as class 0


def test_accuracy_thresh_and_two_class_outputs_match_a_hand_count():
    g = torch.Generator().manual_seed(0)
    logits, target = torch.randn(50, generator=g), torch.randint(0, 2, (50,), generator=g)
    for thresh in (0.0, 0.7, -0.3):
        hand = sum(int((z > thresh) == (t == 1)) for z, t in zip(logits.tolist(), target.tolist())) / 50
        assert float(accuracy(logits, target, thresh=thresh)) == pytest.approx(hand)
        assert float(accuracy(logits[:, None], target.float()[:, None], thresh=thresh)) == pytest.approx(hand)
        assert float(error_rate(logits, target, thresh=thresh)) == pytest.approx(1 - hand)
    two = torch.randn(50, 2, generator=g)
    hand = sum(int(max(range(2), key=row.__getitem__) == t) for row, t in zip(two.tolist(), target.tolist())) / 50
    assert float(accuracy(two, target)) == pytest.approx(hand)


@pytest.mark.parametrize("thresh, sigmoid", [(0.5, True), (0.2, True), (0.0, False), (0.8, False)])
def test_accuracy_multi_is_fastais_formula(thresh, sigmoid):
    g = torch.Generator().manual_seed(1)
    pred, target = torch.randn(20, 4, generator=g), torch.randint(0, 2, (20, 4), generator=g).float()
    hand = 0
    for p, t in zip(pred.flatten().tolist(), target.flatten().tolist()):
        p = 1 / (1 + math.exp(-p)) if sigmoid else p
        hand += int((p > thresh) == (t == 1))
    assert float(accuracy_multi(pred, target, thresh=thresh, sigmoid=sigmoid)) == pytest.approx(hand / 80)
    assert lrcycle.accuracy_multi is accuracy_multi and "accuracy_multi" in lrcycle.__all__
    with pytest.raises(ValueError, match=r"accuracy_multi: .*\(20, 4\).*\(20,\)"):
        accuracy_multi(pred, target[:, 0])


def test_a_multi_label_model_reports_accuracy_multi():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(200, 6, generator=g)
    y = (x[:, :3] > 0).float()
    dls = DataLoaders.from_tensors(x[:150], y[:150], x[150:], y[150:], bs=25)
    learn = Learner(dls, mlp(6, 3), loss_func=nn.BCEWithLogitsLoss(), metrics=[accuracy_multi], progress=False)
    learn.fit_one_cycle(2, 3e-2)
    with torch.no_grad():
        hand = float(((torch.sigmoid(learn.model(x[150:])) > 0.5) == y[150:].bool()).float().mean())
    assert learn.recorder.epochs[-1]["accuracy_multi"] == pytest.approx(hand, abs=1e-6)


# ---- a default loss -------------------------------------------------------------------------------------
def test_an_mse_regressor_with_b1_outputs_gets_a_flattening_mse_without_a_loss_given():
    x, y = make_regression(n_samples=300, n_features=8, noise=5.0, random_state=0)
    y = (y - y.mean()) / y.std()
    dls = DataLoaders.from_tensors(x[:240], y[:240], x[240:], y[240:], bs=32)  # targets [B], outputs [B, 1]
    learn = Learner(dls, mlp(8, 1), progress=False)
    learn.fit_one_cycle(4, 1e-2)
    assert isinstance(learn.loss_func, MSELossFlat)
    with torch.no_grad():
        pred = learn.model(torch.tensor(x[240:], dtype=torch.float32)).reshape(-1).double().numpy()
    hand = float(np.mean((pred - y[240:]) ** 2))  # row by row, not the [B, B] broadcast
    assert learn.recorder.epochs[-1]["valid_loss"] == pytest.approx(hand, rel=1e-4)
    assert hand < 0.5  # it learned: the targets have variance 1


def test_the_loss_is_chosen_once_a_fit_at_its_first_batch(monkeypatch):
    import lrcycle.learner as learner_module

    calls = []
    real = learner_module.resolve_loss_func
    monkeypatch.setattr(learner_module, "resolve_loss_func", lambda *a: calls.append(1) or real(*a))
    x_train, y_train, x_valid, y_valid = wine_arrays()
    learn = Learner(DataLoaders.from_tensors(x_train, y_train, x_valid, y_valid, bs=16), mlp(13, 3), progress=False)
    learn.fit(1e-2, 3)  # 3 epochs of 9 batches, with validation
    assert len(calls) == 1
    chosen = learn.loss_func
    learn.fit(1e-2, 1)
    assert len(calls) == 2 and learn.loss_func is chosen  # checked again, kept


def test_validate_without_a_fit_chooses_the_loss_too():
    x_train, y_train, x_valid, y_valid = wine_arrays()
    learn = Learner(DataLoaders.from_tensors(x_train, y_train, x_valid, y_valid), mlp(13, 3), progress=False)
    (valid_loss,) = learn.validate()
    with torch.no_grad():
        logits = learn.model(torch.tensor(x_valid, dtype=torch.float32))
    assert valid_loss == pytest.approx(float(nn.functional.cross_entropy(logits, torch.tensor(y_valid))), rel=1e-5)


def test_no_loss_that_can_be_inferred_is_an_error_naming_loss_func():
    x_train, y_train, _, _ = wine_arrays()
    learn = Learner(DataLoaders.from_tensors(x_train, y_train.astype(np.float64)), mlp(13, 3), progress=False)
    before = params(learn.model)
    with pytest.raises(ValueError, match=r"loss_func: none given.*Tensor\[64, 3\].*Tensor\[64\].*loss_func="):
        learn.fit(1e-2, 1)
    assert_unchanged(learn.model, before)
    binary = Learner(DataLoaders.from_tensors(x_train, (y_train > 0).astype(int)), mlp(13, 1), progress=False)
    with pytest.raises(ValueError, match=r"binary model: pass loss_func=nn.BCEWithLogitsLoss\(\)"):
        binary.fit(1e-2, 1)


@pytest.mark.parametrize("loss", [nn.MSELoss(), nn.L1Loss(), lambda pred, y: ((pred - y) ** 2).mean()])
def test_a_loss_given_shapes_that_would_broadcast_is_an_error_naming_both(loss):
    x, y = make_regression(n_samples=64, n_features=8, random_state=0)
    learn = Learner(DataLoaders.from_tensors(x, y, bs=16), mlp(8, 1), loss_func=loss, progress=False)
    before = params(learn.model)
    with pytest.raises(ValueError, match=r"\[16, 1\] and the target's \[16\] broadcast to \[16, 16\].*MSELossFlat"):
        learn.fit(1e-2, 1)
    assert_unchanged(learn.model, before)


def test_class_scores_against_class_indices_of_the_same_size_are_not_a_broadcast():
    # [B, C] scores against [B] indices with C == B broadcast to [B, B] == the scores' shape: a plain CE batch
    x = torch.randn(48, 8)
    y = torch.randint(0, 16, (48,))
    learn = Learner(DataLoaders.from_tensors(x, y, bs=16), mlp(8, 16), loss_func=nn.CrossEntropyLoss(), progress=False)
    learn.fit(1e-2, 1)
    assert len(learn.recorder.losses) == 3


# ---- argument slips ----------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "call, fix",
    [
        (lambda learn: learn.fit(3, 1e-2), r"learn.fit\(0.01, 3\).*learn.fit_one_cycle\(3, 0.01\)"),
        (lambda learn: learn.fit_one_cycle(1e-2, 3), r"learn.fit_one_cycle\(3, 0.01\)"),
        (lambda learn: learn.fit_one_cycle(1e-2), r"learn.fit_one_cycle\(n_epoch, lr_max=0.01\)"),
        (lambda learn: learn.fit_cyclic(1e-2, 3), r"learn.fit_cyclic\(3, 0.01\)"),
        (lambda learn: learn.fit_flat_cos(1e-2, 3), r"learn.fit_flat_cos\(3, 0.01\)"),
        (lambda learn: learn.fit_wsd(1e-2, 3), r"learn.fit_wsd\(3, 0.01\)"),
        (lambda learn: learn.preview("fit", 3, 1e-2), r"learn.fit\(0.01, 3\)"),
    ],
)
def test_the_other_argument_order_is_an_error_naming_both_orders(call, fix):
    x_train, y_train, _, _ = wine_arrays()
    learn = Learner(DataLoaders.from_tensors(x_train, y_train), mlp(13, 3), progress=False)
    before = params(learn.model)
    with pytest.raises(ValueError, match=r"other order.*fit\(lr, n_cycle\).*fit_one_cycle\(n_epoch, lr_max\)") as err:
        call(learn)
    assert re.search(fix, str(err.value))
    assert_unchanged(learn.model, before)
    assert learn.opt is None


def test_the_right_orders_still_train():
    x_train, y_train, _, _ = wine_arrays()
    learn = Learner(DataLoaders.from_tensors(x_train, y_train, bs=70), mlp(13, 3), progress=False)
    learn.fit(1e-2, 2)
    learn.fit_one_cycle(1, 1e-2)
    learn.fit(1, 1)  # lr 1 is an lr, not a slip: nothing says otherwise
    assert learn.recorder.lrs[-1] == 1


# ---- batches a plain model cannot take -------------------------------------------------------------------
class DictItems(Dataset):
    def __init__(self, x, y):
        self.x, self.y = torch.tensor(x, dtype=torch.float32), torch.tensor(y)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, i):
        return {"x": self.x[i], "y": self.y[i]}


class WithMeta(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = mlp(13, 3)

    def forward(self, x, meta):
        return self.net(x) + meta[:, None]


def test_a_dict_batch_into_a_sequential_names_the_contract_and_the_fixes():
    x_train, y_train, _, _ = wine_arrays()
    loss = lambda pred, batch: nn.functional.cross_entropy(pred, batch["y"])
    dls = DataLoaders(DataLoader(DictItems(x_train, y_train), batch_size=16))
    learn = Learner(dls, mlp(13, 3), loss_func=loss, progress=False)
    before = params(learn.model)
    with pytest.raises(TypeError, match=r"model\(\*\*batch\).*\['x', 'y'\].*collate_fn.*n_inp"):
        learn.fit(1e-2, 1)
    assert_unchanged(learn.model, before)
    # the fix the error names: a collate_fn that makes tuples
    to_tuple = lambda items: (torch.stack([i["x"] for i in items]), torch.stack([i["y"] for i in items]))
    dls = DataLoaders(DataLoader(DictItems(x_train, y_train), batch_size=16, collate_fn=to_tuple))
    Learner(dls, mlp(13, 3), progress=False).fit(1e-2, 1)


def test_nested_inputs_into_a_two_argument_forward_name_n_inp_and_the_flat_batch():
    x_train, y_train, _, _ = wine_arrays()
    x, y, meta = torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train), torch.zeros(len(x_train))
    nested = [((x[i], meta[i]), y[i]) for i in range(len(x))]
    learn = Learner(DataLoaders(DataLoader(nested, batch_size=16)), WithMeta(), progress=False)
    before = params(learn.model)
    with pytest.raises(TypeError, match=r"n_inp=1.*WithMeta.forward\(x, meta\).*\(x, meta, y\).*Learner\(n_inp"):
        learn.fit(1e-2, 1)
    assert_unchanged(learn.model, before)
    flat = [(x[i], meta[i], y[i]) for i in range(len(x))]  # the fix: every item but the last is an input
    learn = Learner(DataLoaders(DataLoader(flat, batch_size=16)), WithMeta(), progress=False)
    learn.fit(1e-2, 1)
    assert isinstance(learn.loss_func, nn.CrossEntropyLoss)


# ---- after a diverged fit ---------------------------------------------------------------------------------
def nan_learner():
    x_train, y_train, x_valid, y_valid = wine_arrays()
    return Learner(DataLoaders.from_tensors(x_train, y_train, x_valid, y_valid, bs=16), mlp(13, 3), progress=False)


def test_a_diverged_fit_says_the_weights_are_broken_and_how_to_get_back_and_the_next_fit_why():
    learn = nan_learner()
    broken = r"weights are now non-finite.*learn.load.*TerminateOnNaNCallback\(restore=True\)"
    with pytest.warns(NonFiniteLossWarning, match=broken):
        learn.fit(1e4, 1)
    assert not all(torch.isfinite(p).all() for p in learn.model.parameters())
    with pytest.warns(NonFiniteLossWarning, match=r"first iteration: the model's weights were already non-finite"):
        learn.fit(1e-3, 1)


def test_a_loss_that_goes_non_finite_with_finite_weights_does_not_blame_the_weights():
    learn = nan_learner()

    class NanData(lrcycle.Callback):
        def after_loss(self, learn):
            if learn.training and learn.iter == 2:
                # a NaN value whose gradient stays finite: a bad batch's loss, not broken weights
                learn.loss = learn.loss + (torch.tensor(math.nan) - learn.loss).detach()

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        learn.fit(1e-3, 1, cbs=[NanData()])
    (warning,) = [w for w in caught if issubclass(w.category, NonFiniteLossWarning)]
    assert "at iteration 2" in str(warning.message) and "weights are now" not in str(warning.message)


def test_terminate_on_nan_with_restore_puts_back_the_epochs_starting_model_and_optimizer():
    learn = nan_learner()
    learn.fit(1e-2, 1)
    model_before, opt_before = params(learn.model), learn.opt.state_dict()
    momenta = [s["momentum_buffer"].clone() for s in opt_before["state"].values()]
    stopper = TerminateOnNaNCallback(restore=True)
    learn.fit(1e4, 2, cbs=[stopper])
    assert stopper.stopped_at is not None and stopper.stopped_at[0] == 0
    assert_unchanged(learn.model, model_before)
    after = [s["momentum_buffer"] for s in learn.opt.state_dict()["state"].values()]
    assert all(torch.equal(a, b) for a, b in zip(after, momenta))
    with pytest.raises(TypeError, match="restore"):
        TerminateOnNaNCallback(restore="yes")


# ---- the README quick start with numpy arrays -------------------------------------------------------------
NUMPY_QUICK_START = (
    "learn = Learner(DataLoaders.from_tensors(X_train, y_train, X_valid, y_valid), digits_cnn(), metrics=[accuracy])"
)
"""The line the README's quick start shows for numpy arrays (lists, pandas), in place of `digits(bs=64)`."""


def digits_as_numpy():
    """The bundled digits as a user would hold them: numpy float64 images [n, 1, 8, 8] and int64 labels."""
    x_train, y_train, x_valid, y_valid = lrcycle.demo.data.digits_arrays()
    as_numpy = lambda t: t.numpy().astype(np.float64) if t.is_floating_point() else t.numpy()
    return tuple(as_numpy(t) for t in (x_train, y_train, x_valid, y_valid))


def test_the_quick_starts_numpy_line_trains_on_numpy_arrays():
    X_train, y_train, X_valid, y_valid = digits_as_numpy()  # noqa: N806 (the README's names)
    namespace = {"X_train": X_train, "y_train": y_train, "X_valid": X_valid, "y_valid": y_valid}
    exec("from lrcycle import DataLoaders, Learner, accuracy, digits_cnn\n" + NUMPY_QUICK_START, namespace)
    learn = namespace["learn"]
    learn.remove_cbs([cb for cb in learn.cbs if isinstance(cb, lrcycle.ProgressCallback)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", lrcycle.finder.suggest.SuggestionWarning)
        lr = learn.lr_find(num_it=30)[0]
    learn.fit_one_cycle(1, lr if math.isfinite(lr) else 1e-2)
    assert isinstance(learn.loss_func, nn.CrossEntropyLoss) and learn.recorder.epochs[-1]["accuracy"] > 0.5


@pytest.mark.slow
def test_the_readme_quick_start_runs_on_numpy_arrays_with_the_one_line(tmp_path):
    """The README's first block with its `digits(bs=64)` Learner line replaced by `NUMPY_QUICK_START`."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    block = re.findall(r"^```python\n(.*?)^```", (root / "README.md").read_text(), flags=re.S | re.M)[0]
    learner_line = next(line for line in block.splitlines() if line.startswith("learn = Learner(digits("))
    data = (
        "import numpy as np\nfrom lrcycle import DataLoaders\nfrom lrcycle.demo.data import digits_arrays\n"
        "X_train, y_train, X_valid, y_valid = (t.numpy() for t in digits_arrays())\n"
        "X_train, X_valid = X_train.astype(np.float64), X_valid.astype(np.float64)\n"
    )
    script = "import matplotlib\nmatplotlib.use('Agg')\nimport torch\ntorch.set_num_threads(1)\n" + data
    script += block.replace(learner_line, NUMPY_QUICK_START)
    (tmp_path / "quick_start.py").write_text(script)
    env = {"PYTHONPATH": str(root), "OMP_NUM_THREADS": "1", "PATH": ""}
    proc = subprocess.run([sys.executable, "quick_start.py"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "accuracy" in proc.stdout and (tmp_path / "lr_find.png").stat().st_size > 1000


def test_accuracy_with_thresh_as_a_metric_thresholds_there():
    x_train, y_train, x_valid, y_valid = binary_arrays()
    dls = DataLoaders.from_tensors(x_train, y_train, x_valid, y_valid, bs=50)
    model = nn.Sequential(mlp(10, 1), nn.Flatten(0))
    learn = Learner(dls, model, loss_func=nn.BCEWithLogitsLoss(), metrics=[partial(accuracy, thresh=1.0)],
                    progress=False)  # fmt: skip
    learn.fit(1e-2, 1)
    with torch.no_grad():
        logits = learn.model(torch.tensor(x_valid, dtype=torch.float32)).numpy()
    hand = float(np.mean((logits > 1.0) == (y_valid == 1)))
    assert learn.recorder.epoch_df().iloc[-1, 3] == pytest.approx(hand, abs=1e-6)


@pytest.mark.parametrize(
    "a, b", [((16, 1), (16,)), ((16,), (16, 1)), ((16, 3), (16,)), ((4, 1, 5), (3, 1)), ((2, 3), (2, 3)), ((), (5,))]
)
def test_the_broadcast_check_agrees_with_torch(a, b):
    try:
        expected = tuple(torch.broadcast_shapes(a, b))
    except RuntimeError:
        expected = None
    assert lrcycle.batches.broadcast_shape(a, b) == expected


def test_int32_class_targets_from_a_loader_of_your_own_are_an_error_naming_int64():
    x_train, y_train, _, _ = wine_arrays()
    items = list(zip(torch.tensor(x_train, dtype=torch.float32), torch.tensor(y_train, dtype=torch.int32)))
    learn = Learner(DataLoaders(DataLoader(items, batch_size=16)), mlp(13, 3), progress=False)
    before = params(learn.model)
    with pytest.raises(TypeError, match=r"targets are torch.int32.*int64.*astype\('int64'\).*y.long\(\)"):
        learn.fit(1e-2, 1)
    assert_unchanged(learn.model, before)
