"""The README as a new user meets it: every python block runs as written, in order, pasted into one script,
and every file it names is in the repository."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"


def python_blocks(text: str) -> list[str]:
    """The README's ```python blocks, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_the_readme_has_python_blocks_to_run():
    """The quick start at least; the depth lives in docs/, whose blocks tests/test_docs.py runs."""
    blocks = python_blocks(README.read_text())
    assert len(blocks) >= 1 and "lr_find" in blocks[0]


@pytest.mark.slow
def test_every_python_block_of_the_readme_runs_in_order_as_one_script(tmp_path):
    """Pasted into one file and run in a temporary folder with the Agg backend (a script, no display), one
    torch thread, nothing downloaded; the plots the README saves must appear there."""
    run_blocks_as_one_script(README.read_text(), tmp_path)


def run_blocks_as_one_script(text: str, folder) -> None:
    """Every ```python block of `text`, in order, as one script run in `folder` with the Agg backend and one torch
    thread; it must succeed, and every plot it saves must appear there."""
    blocks = python_blocks(text)
    preamble = "import matplotlib\nmatplotlib.use('Agg')\nimport torch\ntorch.set_num_threads(1)\n"
    script = folder / "blocks.py"
    script.write_text(preamble + "\n".join(blocks))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=folder, env=env, capture_output=True, text=True, timeout=900
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    for name in re.findall(r"savefig\(\"([^\"]+)\"\)", "\n".join(blocks)):
        assert (folder / name).stat().st_size > 1000, name


def named_files(text: str) -> set[str]:
    """Files the README points to: relative link targets, and code spans that look like repository files
    (`examples/x.py`, `CONTRIBUTING.md`, `nbs/01.ipynb`)."""
    links = {t for t in re.findall(r"\]\(([^)#\s]+)\)", text) if not re.match(r"[a-z]+:", t)}
    fences = re.findall(r"^```\w*\n(.*?)^```", text, flags=re.S | re.M)
    prose = re.sub(r"^```\w*\n.*?^```", "", text, flags=re.S | re.M)
    words = [word for part in re.findall(r"`([^`]+)`", prose) + fences for word in part.split()]
    files = {w for w in words if re.fullmatch(r"[\w./-]+\.(py|md|ipynb|toml|cfg|json)", w)}
    return links | files


def test_the_readme_names_only_files_the_repository_has():
    repo_files = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if ".venv" not in p.parts}
    names = {Path(p).name for p in repo_files}
    missing = []
    for name in named_files(README.read_text()):
        path = name.lstrip("./")
        if path not in repo_files and (("/" in path) or path not in names):
            missing.append(name)
    assert not missing, f"the README names files the repository lacks: {missing}"
