"""The package's layout as CONTRIBUTING's map states it, checked on the source: the imports between lrcycle's
modules form no circle, none is made inside a function to dodge one, the longest chain of imports is at most
8 modules, `callbacks/` holds only callbacks, and every public name lrcycle has offered still imports."""

import ast
import importlib.util
import inspect
from pathlib import Path

import pytest

import lrcycle
from lrcycle import Callback

PACKAGE = Path(lrcycle.__file__).parent


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imported_modules(name: str, tree: ast.Module, nodes) -> set[str]:
    """The lrcycle modules that the `from ... import` statements among `nodes` import."""
    is_package = MODULES[name].name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = here[: len(here) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else [])) if node.level else node.module
            submodules = [f"{target}.{alias.name}" for alias in node.names]
            candidates = submodules if node.module is None else [target, *submodules]  # `from . import x`: x
            found |= {c for c in candidates if c in MODULES and c != name}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
    return found


def import_graph() -> dict[str, set[str]]:
    graph = {}
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        graph[name] = imported_modules(name, tree, tree.body)
    return graph


def chain_lengths(graph) -> dict[str, int]:
    """The longest chain of imports below each module, itself included; a circle is an AssertionError."""
    lengths, visiting = {}, set()

    def length(name: str) -> int:
        assert name not in visiting, f"import circle through {name}"
        if name not in lengths:
            visiting.add(name)
            lengths[name] = 1 + max((length(dep) for dep in graph[name]), default=0)
            visiting.discard(name)
        return lengths[name]

    for name in graph:
        length(name)
    return lengths


def test_no_import_circle_and_at_most_eight_floors():
    lengths = chain_lengths(import_graph())
    assert max(lengths.values()) <= 8, sorted(lengths.items(), key=lambda kv: -kv[1])[:5]


def test_no_lrcycle_module_is_imported_inside_a_function():
    """A lazy import is how a circle hides: every import of an lrcycle module is at the top of its file."""
    lazy = []
    for name, path in MODULES.items():
        tree = ast.parse(path.read_text())
        top = set(map(id, tree.body))
        inner = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom)) and id(n) not in top]
        lazy += [(name, dep) for dep in imported_modules(name, tree, inner)]
    assert lazy == []


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("lrcycle.callbacks.")))
def test_callbacks_folder_holds_only_callbacks(name):
    module = importlib.import_module(name)
    public = [
        obj
        for attr, obj in vars(module).items()
        if not attr.startswith("_") and (inspect.isclass(obj) or inspect.isfunction(obj)) and obj.__module__ == name
    ]
    assert public, name
    assert all(inspect.isclass(obj) and issubclass(obj, Callback) for obj in public), public


def test_the_pure_schedule_modules_import_no_torch():
    for name in ("lrcycle.schedules.shapes", "lrcycle.schedules.schedule"):
        tree = ast.parse(MODULES[name].read_text())
        imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        assert not any(m.split(".")[0] in ("torch", "numpy") for m in imported), (name, imported)


# Every name `lrcycle.__all__` offered before the package was arranged in folders.
PUBLIC_NAMES = """EVENTS Callback CancelBatchException CancelEpochException CancelFitException CancelStepException
CancelTrainException CancelValidException Checkpoint CycleAverage CycleSnapshotCallback DataLoaders
EarlyStoppingCallback GradientAccumulation GradientClip LRFinderCallback Learner MixedPrecision NonFiniteLossWarning
NothingToPlotWarning ParamScheduler ProgressCallback Recorder SaveModelCallback TerminateOnNaNCallback TrackerCallback
accuracy batches digits digits_cnn digits_mlp error_rate is_main_process plot_schedule resnet_splitter plans
range_test scheduler schedules sequential_head_splitter sequential_splitter spread suggest transfer_learner""".split()


@pytest.mark.parametrize("name", PUBLIC_NAMES)
def test_every_public_name_still_imports_from_lrcycle(name):
    assert name in lrcycle.__all__
    assert getattr(lrcycle, name) is not None


@pytest.mark.parametrize("name", ["range_test", "scheduler"])
def test_a_function_does_not_hide_a_submodule_of_its_name(name):
    assert callable(getattr(lrcycle, name))
    assert importlib.util.find_spec(f"lrcycle.{name}") is None


# CONTRIBUTING's map: the floor of each part; a module imports only from its own floor or below.
FLOORS = {"schedules": 2, "callbacks": 3, "state": 4, "finder": 5, "learner": 6}
TOP = {"integrations", "transfer", "demo", "__main__"}


def floor(name: str) -> int:
    part = name.split(".")[1] if name.count(".") else "__init__"
    if part in TOP or part == "__init__":
        return 7
    return FLOORS.get(part, 1)


def test_no_module_imports_from_a_floor_above_its_own():
    upward = [(n, d) for n, deps in import_graph().items() for d in deps if floor(d) > floor(n)]
    assert upward == []


@pytest.mark.parametrize("name", sorted(lrcycle.plans.PLANS))
def test_each_fit_method_offers_its_forms_arguments_with_the_same_defaults(name):
    """The Learner's fit methods spell out their form's signature (what an editor and the API pages show); the
    form in schedules/forms.py is what runs. The two agree, name for name and default for default."""
    method = inspect.signature(getattr(lrcycle.Learner, name)).parameters
    form = inspect.signature(lrcycle.plans.PLANS[name]).parameters
    shown = [(p.name, p.default) for p in method.values() if p.name != "self" and p.kind != p.VAR_KEYWORD]
    runs = [(p.name, p.default) for p in list(form.values())[1:]]  # after the defaults the learner passes
    assert shown == runs
