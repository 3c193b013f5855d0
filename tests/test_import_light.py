"""`import lrcycle` stays light: matplotlib's pyplot, pandas and torchvision load where they are used, not at import."""

import subprocess
import sys

import pytest

HEAVY = ("matplotlib.pyplot", "matplotlib", "pandas", "torchvision")


def modules_after_import(code: str) -> set[str]:
    """The names in `sys.modules` after running `code` in a fresh interpreter."""
    out = subprocess.run(
        [sys.executable, "-c", f"{code}\nimport sys\nprint('\\n'.join(sys.modules))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


@pytest.mark.parametrize("heavy", HEAVY)
def test_import_lrcycle_leaves_heavy_modules_unloaded(heavy):
    assert heavy not in modules_after_import("import lrcycle")


def test_the_check_sees_a_module_that_is_imported():
    # the same check, on an import that does load pandas: the test above could not pass by reading nothing
    assert "pandas" in modules_after_import("import lrcycle\nlrcycle.Recorder().epoch_df()")
