"""The documentation site as a reader meets it: every page the navigation names exists, no page (nor the README)
reads like a development log, every file a page names is in the repository, and every ```python block of a page
runs as written, in order, as one script per page.

Which blocks run: exactly the fences opened by a bare ```python line. A block that cannot run on its own (it
needs torchrun, a GPU, a download, or objects the reader supplies) is fenced ```py instead (or given attributes,
```python title="..."), and is shown but not run. Blocks of one page share one script, so a later block may use
what an earlier one built; pages do not share anything.
"""

import re
from pathlib import Path

import pytest
from test_readme import named_files, python_blocks, run_blocks_as_one_script

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"


def nav_pages() -> list[str]:
    """The pages mkdocs.yml's `nav` names, in order (read as text: every `- Title: page.md` line)."""
    text = (ROOT / "mkdocs.yml").read_text()
    nav = text[text.index("\nnav:") :]
    return re.findall(r"^\s*-\s*[^:\n]+:\s*(\S+\.md)\s*$", nav, flags=re.M)


PAGES = nav_pages()

# Wording that belongs in a changelog, not in a product's documentation.
DEVELOPMENT_LOG = [
    r"\b(?:this|last|previous|next|earlier|later|that) (?:round|stop)\b",
    r"\bround \d",
    r"\bstop \d",
    r"\bissue\s*#?\s*\d+",
    r"\bcolleague",
    r"\bfixes this\b",
]


def test_the_navigation_names_pages_that_exist():
    assert len(PAGES) >= 10 and "index.md" in PAGES
    missing = [page for page in PAGES if not (DOCS / page).is_file()]
    assert not missing, f"mkdocs.yml's nav names pages docs/ lacks: {missing}"


def test_every_docs_page_is_in_the_navigation():
    """A page outside the nav is built but hard to find."""
    pages = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")}
    assert pages - set(PAGES) == set()


@pytest.mark.parametrize("path", [README, *(DOCS / page for page in PAGES)], ids=lambda p: p.name)
def test_no_page_reads_like_a_development_log(path):
    text = path.read_text()
    found = [m.group(0) for pattern in DEVELOPMENT_LOG for m in re.finditer(pattern, text, flags=re.I)]
    assert not found, f"{path.relative_to(ROOT)} reads like a development log: {found}"


def test_the_readme_is_a_front_door():
    """At most 200 lines, and no table row so long it cannot be read on a screen."""
    lines = README.read_text().splitlines()
    assert len(lines) <= 200
    long_rows = [line[:60] for line in lines if line.startswith("|") and len(line) > 300]
    assert not long_rows, f"README table rows over 300 characters: {long_rows}"


@pytest.mark.parametrize("page", PAGES)
def test_a_docs_page_names_only_files_the_repository_has(page):
    """Code spans such as `examples/own_loop.py` point into the repository; links between pages are checked by
    `mkdocs build --strict`. The outside measures kept beside the repository (`../shared/anchors/...`, which the
    benchmarks page names as such) are the one exception."""
    path = DOCS / page
    repo_files = {p.relative_to(ROOT).as_posix() for p in ROOT.rglob("*") if ".venv" not in p.parts}
    names = {Path(p).name for p in repo_files}
    missing = []
    for name in named_files(path.read_text()):
        if (path.parent / name).resolve().is_file() or name.startswith("../shared/anchors/"):
            continue  # a link to another page, or an outside measure beside the repository
        name = name.lstrip("./")
        if name not in repo_files and ("/" in name or name not in names):
            missing.append(name)
    assert not missing, f"docs/{page} names files the repository lacks: {missing}"


RUNNABLE = [page for page in PAGES if python_blocks((DOCS / page).read_text())]


def test_the_guide_pages_have_blocks_that_run():
    assert {"getting-started.md", "range-test.md", "schedules.md", "resume.md"} <= set(RUNNABLE)


@pytest.mark.slow
@pytest.mark.parametrize("page", RUNNABLE)
def test_every_python_block_of_a_docs_page_runs_in_order_as_one_script(page, tmp_path):
    """As the README's test: one script per page, in a temporary folder, with the Agg backend, one torch thread,
    nothing downloaded; the plots a page saves must appear there."""
    run_blocks_as_one_script((DOCS / page).read_text(), tmp_path)
