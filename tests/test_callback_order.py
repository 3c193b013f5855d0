"""The order table in `lrcycle.callback`: one place says where each shipped callback runs."""

import ast
from pathlib import Path

import pytest

from lrcycle.callback import EVENTS, ORDER, Callback, check_callback, hook_table
from lrcycle.callbacks.accumulate import GradientAccumulation
from lrcycle.callbacks.averaging import CycleAverage
from lrcycle.callbacks.early_stopping import EarlyStoppingCallback, TerminateOnNaNCallback
from lrcycle.callbacks.first_step_guard import FirstStepGuard
from lrcycle.callbacks.gradient_clip import GradientClip
from lrcycle.callbacks.loggers import CSVLogger, TensorBoardCallback
from lrcycle.callbacks.loss_check import NonFiniteLossCheck
from lrcycle.callbacks.mixed_precision import MixedPrecision
from lrcycle.callbacks.progress import ProgressCallback, SweepProgress
from lrcycle.callbacks.schedule_free import ScheduleFreeSwitch
from lrcycle.callbacks.tracking import CycleSnapshotCallback, SaveModelCallback
from lrcycle.distributed import DistributedCallback
from lrcycle.recorder import Recorder

PACKAGE = Path(__file__).resolve().parent.parent / "lrcycle"

# The sequence the loop needs: steps counted and lrs set before anything reads them, the loss averaged across
# processes before it is recorded, the recorder before everything that reads its rows, and the callbacks that
# end the fit last.
SEQUENCE = [
    "mixed_precision",
    "loss_check",
    "accumulation",
    "schedule_free",
    "guard",
    "clip",
    "finder",
    "scheduler",
    "distributed",
    "recorder",
    "progress",
    "logger",
    "averaging",
    "tracker",
    "early_stopping",
    "nan",
    "checkpoint",
    "resume",
]


def test_the_table_lists_the_slots_in_the_order_they_run():
    assert list(ORDER) == SEQUENCE
    values = [ORDER[slot] for slot in SEQUENCE]
    assert values == sorted(values) and len(set(values)) == len(values)
    assert all(isinstance(v, int) for v in values)


@pytest.mark.parametrize(
    "cls, slot",
    [
        (MixedPrecision, "mixed_precision"),
        (NonFiniteLossCheck, "loss_check"),
        (GradientAccumulation, "accumulation"),
        (ScheduleFreeSwitch, "schedule_free"),
        (FirstStepGuard, "guard"),
        (GradientClip, "clip"),
        (DistributedCallback, "distributed"),
        (Recorder, "recorder"),
        (ProgressCallback, "progress"),
        (SweepProgress, "progress"),
        (CSVLogger, "logger"),
        (TensorBoardCallback, "logger"),
        (CycleAverage, "averaging"),
        (SaveModelCallback, "tracker"),
        (CycleSnapshotCallback, "tracker"),
        (EarlyStoppingCallback, "early_stopping"),
        (TerminateOnNaNCallback, "nan"),
    ],
)
def test_each_callback_takes_its_order_from_the_table(cls, slot):
    assert cls.order == ORDER[slot]


def class_orders(path: Path) -> list[str]:
    """`Class: code` for every `order = ...` in a class body of the file that is not `ORDER["..."]`."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ClassDef) or node.name == "Callback":
            continue
        for stmt in node.body:
            if isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                names = [t.id for t in (stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target])]
                value = stmt.value
                from_table = (
                    isinstance(value, ast.Subscript)
                    and isinstance(value.value, ast.Name)
                    and value.value.id == "ORDER"
                    and isinstance(value.slice, ast.Constant)
                    and value.slice.value in ORDER
                )
                if "order" in names and not from_table:
                    found.append(f"{node.name}: {ast.unparse(stmt)}")
    return found


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_shipped_callback_writes_its_own_order_number(path):
    assert class_orders(path) == []


def hooks_by_asking_each_instance(cbs) -> dict:
    """The table's meaning written out plainly: every event, every callback in `order`, `hasattr` on each."""
    ordered = sorted(cbs, key=lambda cb: cb.order)
    return {event: [getattr(cb, event) for cb in ordered if hasattr(cb, event)] for event in EVENTS}


class _Base(Callback):
    def before_batch(self, learn):
        pass


class _Child(_Base):
    order = -3

    def after_step(self, learn):
        pass


class _Delegate(Callback):
    """Answers every hook name through `__getattr__` (a wrapper around another callback)."""

    def __init__(self, inner):
        self.inner = inner

    def __getattr__(self, name):
        return getattr(self.__dict__["inner"], name)


def test_the_hook_table_is_what_asking_each_instance_gives():
    instance_hook = _Base()
    instance_hook.after_loss = lambda learn: None  # a hook set on one instance, not its class
    instance_hook.before_batch = lambda learn: None  # shadows the class's hook: listed once, this one
    cbs = [_Child(), instance_hook, _Base(), _Delegate(_Child()), Callback(), _Child()]
    table = hook_table(cbs)
    assert table == hooks_by_asking_each_instance(cbs)
    assert table["before_batch"].count(instance_hook.before_batch) == 1


def test_a_misspelt_hook_set_on_an_instance_is_caught_too():
    cb = Callback()
    cb.befor_batch = lambda learn: None
    with pytest.raises(ValueError, match="befor_batch is not an event: did you mean before_batch"):
        check_callback(cb)
    check_callback(_Child())  # and a class checked before stays fine
