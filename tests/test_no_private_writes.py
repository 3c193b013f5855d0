"""No module writes another object's `_private` attribute: where two parts cooperate, one offers a public method
or attribute the other uses. Checked by parsing every file of the package: an assignment, augmented assignment,
annotated assignment, loop target or `del` of `obj._name` (or `setattr(obj, "_name", ...)`, `delattr`) is
allowed only on `self`. Dunder names (`fn.__doc__ = ...`) are not private."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "lrcycle"
FILES = sorted(PACKAGE.rglob("*.py"))


def is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def on_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "self"


def targets(node: ast.AST) -> list[ast.expr]:
    """The expressions a statement writes to or deletes, with tuple/list/starred unpacking opened up."""
    if isinstance(node, ast.Assign):
        found = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign)):
        found = [node.target]
    elif isinstance(node, ast.Delete):
        found = list(node.targets)
    elif isinstance(node, (ast.For, ast.AsyncFor, ast.comprehension)):
        found = [node.target]
    elif isinstance(node, ast.withitem) and node.optional_vars is not None:
        found = [node.optional_vars]
    elif isinstance(node, ast.NamedExpr):
        found = [node.target]
    else:
        return []
    flat = []
    while found:
        target = found.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            found.extend(target.elts)
        elif isinstance(target, ast.Starred):
            found.append(target.value)
        else:
            flat.append(target)
    return flat


def private_writes(source: str) -> list[str]:
    """`line: code` for every write to a private attribute of an object other than `self`."""
    found = []
    for node in ast.walk(ast.parse(source)):
        for target in targets(node):
            if isinstance(target, ast.Attribute) and is_private(target.attr) and not on_self(target.value):
                found.append(f"{target.lineno}: {ast.unparse(target)}")
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in ("setattr", "delattr")
            and len(node.args) >= 2
            and not on_self(node.args[0])
        ):
            name = node.args[1]  # a name computed at run time (a module's child by name) cannot be judged here
            if isinstance(name, ast.Constant) and isinstance(name.value, str) and is_private(name.value):
                found.append(f"{node.lineno}: {ast.unparse(node)}")
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_writes_another_objects_private_attribute(path):
    assert private_writes(path.read_text()) == []


@pytest.mark.parametrize(
    "code",
    [
        "rec._x = 1",
        "learn._in_step = False",
        "a, learn._y = 1, 2",
        "rec._n += 1",
        "del rec._cache",
        "self.rec._x = 1",
        "for obj._i in range(3): pass",
        "setattr(obj, '_x', 1)",
        "delattr(obj, '_x')",
        "learn._z: int = 0",
    ],
)
def test_the_check_finds_each_kind_of_write(code):
    assert len(private_writes(code)) == 1


@pytest.mark.parametrize(
    "code",
    [
        "self._x = 1",
        "self._n += 1",
        "del self._cache",
        "rec.x = 1",
        "fn.__doc__ = 'd'",
        "setattr(obj, 'x', 1)",
        "setattr(obj, name, 1)",
        "y = rec._x",
    ],
)
def test_the_check_allows_own_and_public_writes_and_private_reads(code):
    assert private_writes(code) == []
