"""`lrcycle.scheduler`: every fit form as a torch LR scheduler, stepped in a raw PyTorch loop, sets bit for bit
what `learn.preview` (the same plan, evaluated by the Learner) says the fit would set; it resumes from its
`state_dict` exactly, warns once past its plan, and checks its arguments."""

import random
import warnings

import pytest
import torch
from conftest import make_dls, make_mlp

import lrcycle
from lrcycle import Learner, plans, sequential_splitter
from lrcycle.optim import get_mom

# One call per fit form (and the 0.7 variants of `fit`); a form without a case here (one added later to
# plans.PLANS) runs with `(2,)`, its defaults: the scheduler reaches it through plans.PLANS all the same.
CASES = {
    "fit_constant": ("fit", (0.05, 2), {}),
    "fit_sgdr": ("fit", (0.05, 2), {"cycle_len": 1, "cycle_mult": 2}),
    "fit_clr": ("fit", (0.05, 2), {"cycle_len": 1, "use_clr": (20, 4, 0.95, 0.85)}),
    "fit_clr_beta": ("fit", (slice(0.05), 1), {"cycle_len": 2, "use_clr_beta": (10, 10, 0.95, 0.85)}),
    "fit_one_cycle": ("fit_one_cycle", (2, slice(1e-3, 0.05)), {"pct_start": 0.3}),
    "fit_one_cycle_default_lr": ("fit_one_cycle", (2,), {}),
    "fit_cyclic": ("fit_cyclic", (3, 0.05), {"n_cycle": 1.5, "mode": "triangular2", "moms": (0.95, 0.85)}),
    "fit_flat_cos": ("fit_flat_cos", (2,), {"lr": 0.02}),
}
for _method in plans.PLANS:
    if not any(method == _method for method, _, _ in CASES.values()):
        CASES[_method] = (_method, (2,), {})

N_BATCHES = 6  # the loaders of make_dls(n_train=96, bs=16)
OPTS = {"sgd": lambda groups: torch.optim.SGD(groups, lr=0.01, momentum=0.9), "adam": torch.optim.AdamW}


def make_opt(kind, n_groups, model=None):
    model = make_mlp() if model is None else model
    groups = sequential_splitter(n_groups)(model) if n_groups > 1 else [list(model.parameters())]
    return model, OPTS[kind]([{"params": g} for g in groups])


def learner_for(opt_kind, n_groups):
    """A Learner whose plan sees what the scheduler sees: the same groups, lrs and momentum."""
    model, opt = make_opt(opt_kind, n_groups)
    splitter = sequential_splitter(n_groups) if n_groups > 1 else None
    lrs = [g["lr"] for g in opt.param_groups]
    return Learner(make_dls(n_train=96, bs=16), model, opt=opt, splitter=splitter, lr=lrs, progress=False)


def raw_loop_trace(opt, sched, n_steps, model=None, batches=None):
    """Each step's lrs (per group) and last-group momentum, as a plain loop would run them."""
    rows = []
    for i in range(n_steps):
        rows.append(([g["lr"] for g in opt.param_groups], get_mom(opt.param_groups[-1])))
        if model is not None:
            x, y = batches[i % len(batches)]
            torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
        sched.step()
    return rows


@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("opt_kind", ["sgd", "adam"])
@pytest.mark.parametrize("case", list(CASES))
def test_scheduler_in_a_raw_loop_sets_what_preview_says(case, opt_kind, n_groups):
    method, args, kwargs = CASES[case]
    learn = learner_for(opt_kind, n_groups)
    expected = learn.preview(method, *args, **kwargs)
    _, opt = make_opt(opt_kind, n_groups)
    sched = lrcycle.scheduler(opt, method, *args, steps_per_epoch=N_BATCHES, **kwargs)
    assert len(expected) == sched.schedule.n_steps
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # within its plan it never warns
        rows = raw_loop_trace(opt, sched, len(expected))
    lr_cols = [f"lr_{g}" for g in range(n_groups)] if n_groups > 1 else ["lr"]
    assert [lrs for lrs, _ in rows] == expected[lr_cols].values.tolist()  # bitwise: == on floats
    assert [mom for _, mom in rows] == expected["mom"].tolist()
    assert sched.get_last_lr() == [g["lr"] for g in opt.param_groups]


@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("case", ["fit_sgdr", "fit_one_cycle", "fit_cyclic", "fit_clr_beta"])
def test_the_scheduler_runs_the_trace_the_learner_records(case, n_groups):
    """Not only the preview: the lrs a Learner records over a real fit are the ones the scheduler sets."""
    method, args, kwargs = CASES[case]
    learn = learner_for("sgd", n_groups)
    getattr(learn, method)(*args, **kwargs)
    _, opt = make_opt("sgd", n_groups)
    sched = lrcycle.scheduler(opt, method, *args, steps_per_epoch=N_BATCHES, **kwargs)
    rows = raw_loop_trace(opt, sched, len(learn.recorder.lrs))
    assert [lrs for lrs, _ in rows] == [list(t) for t in zip(*learn.recorder.group_lrs)]
    assert [mom for _, mom in rows] == learn.recorder.moms


@pytest.mark.parametrize("n_groups", [1, 3])
@pytest.mark.parametrize("case", list(CASES))
def test_resume_from_state_dict_at_a_random_step_continues_identically(case, n_groups, tmp_path):
    method, args, kwargs = CASES[case]
    torch.manual_seed(0)
    x, y = torch.randn(N_BATCHES, 16, 8), torch.randint(0, 3, (N_BATCHES, 16))
    batches = list(zip(x, y))
    model, opt = make_opt("adam", n_groups)
    sched = lrcycle.scheduler(opt, method, *args, steps_per_epoch=N_BATCHES, **kwargs)
    n = sched.schedule.n_steps
    full = raw_loop_trace(opt, sched, n, model, batches)
    final_weights = [p.detach().clone() for p in model.parameters()]

    k = random.Random(f"{case}-{n_groups}").randrange(1, n)
    model, opt = make_opt("adam", n_groups)
    sched = lrcycle.scheduler(opt, method, *args, steps_per_epoch=N_BATCHES, **kwargs)
    head = raw_loop_trace(opt, sched, k, model, batches)
    torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict()}, tmp_path / "c")
    saved = torch.load(tmp_path / "c", weights_only=True)  # plain data

    model, opt = make_opt("adam", n_groups, make_mlp(seed=1))  # other weights, fresh optimizer at other lrs
    sched = lrcycle.scheduler(opt, method, *args, steps_per_epoch=N_BATCHES, **kwargs)
    model.load_state_dict(saved["model"])
    opt.load_state_dict(saved["opt"])
    sched.load_state_dict(saved["sched"])
    tail = raw_loop_trace(opt, sched, n - k, model, [batches[(k + i) % N_BATCHES] for i in range(N_BATCHES)])
    assert head + tail == full
    for p, q in zip(model.parameters(), final_weights):
        assert torch.equal(p, q)


def test_state_dict_loaded_before_the_optimizer_state_sets_the_same_values():
    _, opt = make_opt("sgd", 1)
    sched = lrcycle.scheduler(opt, "fit_one_cycle", 2, 0.1, steps_per_epoch=5)
    for _ in range(4):
        opt.step()
        sched.step()
    state = sched.state_dict()
    _, fresh = make_opt("sgd", 1)
    again = lrcycle.scheduler(fresh, "fit_one_cycle", 2, 0.1, steps_per_epoch=5)
    again.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
    assert fresh.param_groups[0]["momentum"] == opt.param_groups[0]["momentum"]
    assert again.get_last_lr() == sched.get_last_lr()


def test_default_lr_is_the_optimizers_own_per_group_and_lr_forms_spread():
    model = make_mlp()
    groups = sequential_splitter(3)(model)
    opt = torch.optim.SGD([{"params": g, "lr": lr} for g, lr in zip(groups, (1e-3, 1e-2, 1e-1))], momentum=0.9)
    sched = lrcycle.scheduler(opt, "fit_flat_cos", 1, steps_per_epoch=4)
    assert sched.schedule.lrs == [1e-3, 1e-2, 1e-1]
    assert [g["lr"] for g in opt.param_groups] == [1e-3, 1e-2, 1e-1]  # flat part: the base lrs themselves
    sched = lrcycle.scheduler(opt, "fit_flat_cos", 1, lr=slice(0.1), steps_per_epoch=4)
    assert sched.schedule.lrs == [0.01, 0.01, 0.1]  # slice(hi): hi/10 on all but the last group


def test_one_cycle_formula_written_out():
    """Independent of preview: the fastai v2 one-cycle formula of DESIGN.md, step by step."""
    import math

    _, opt = make_opt("sgd", 1)
    n, lr_max, div, div_final, pct = 20, 0.1, 25.0, 1e5, 0.25
    sched = lrcycle.scheduler(opt, "fit_one_cycle", 4, lr_max, steps_per_epoch=5)
    cos = lambda a, b, t: b + (a - b) / 2 * (1 + math.cos(math.pi * t))
    for i in range(n):
        pos = i / n
        lr = cos(lr_max / div, lr_max, pos / pct) if pos < pct else cos(lr_max, lr_max / div_final, (pos - pct) / 0.75)
        mom = cos(0.95, 0.85, pos / pct) if pos < pct else cos(0.85, 0.95, (pos - pct) / 0.75)
        assert opt.param_groups[0]["lr"] == pytest.approx(lr, rel=1e-12)
        assert opt.param_groups[0]["momentum"] == pytest.approx(mom, rel=1e-12)
        opt.step()
        sched.step()


def test_warns_once_when_stepped_past_its_plan_and_keeps_the_last_values():
    _, opt = make_opt("adam", 1)
    sched = lrcycle.scheduler(opt, "fit_one_cycle", 1, 0.01, steps_per_epoch=3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for _ in range(3):
            opt.step()
            sched.step()  # the third call sets up a 4th step, which the plan does not have: no warning yet
        last = (opt.param_groups[0]["lr"], opt.param_groups[0]["betas"])
        assert not caught
        for _ in range(5):
            opt.step()
            sched.step()
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "3 optimizer steps" in message and "per batch" in message and "steps_per_epoch=1" in message
    assert (opt.param_groups[0]["lr"], opt.param_groups[0]["betas"]) == last


def test_works_as_a_torch_scheduler_and_sets_weight_decay():
    _, opt = make_opt("sgd", 1)
    sched = lrcycle.scheduler(opt, "fit_cyclic", 1, 0.1, steps_per_epoch=4, wd=0.01)
    assert isinstance(sched, torch.optim.lr_scheduler.LRScheduler)
    assert opt.param_groups[0]["weight_decay"] == 0.01


@pytest.mark.parametrize(
    "call, error, words",
    [
        (lambda o: lrcycle.scheduler(o, "fit_nope", 1, steps_per_epoch=3), ValueError, "method"),
        (lambda o: lrcycle.scheduler(o, "fit_one_cycle", 1, steps_per_epoch=0), ValueError, "steps_per_epoch"),
        (lambda o: lrcycle.scheduler(o, "fit_one_cycle", 1, lr_max=-1, steps_per_epoch=3), ValueError, "lr_max"),
        (lambda o: lrcycle.scheduler(o, "fit_one_cycle", 1, steps_per_epoch=3, cbs=[]), ValueError, "cbs"),
        (lambda o: lrcycle.scheduler(o, "fit", [0.1, 0.2], steps_per_epoch=3), ValueError, "lr"),
        (lambda o: lrcycle.scheduler(None, "fit", 0.1, steps_per_epoch=3), TypeError, "optimizer"),
    ],
)
def test_bad_arguments_are_errors_that_change_nothing(call, error, words):
    _, opt = make_opt("sgd", 1)
    before = [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups]
    with pytest.raises(error, match=words):
        call(opt)
    assert [dict((k, v) for k, v in g.items() if k != "params") for g in opt.param_groups] == before
