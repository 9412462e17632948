"""Every code block of every docs page runs, in page order, in a fresh namespace (issue 20), as
tests/test_readme.py runs the README's: a page a reader copies from must work as shown.

A ``{literalinclude}`` of an example's object counts as code of the page: the example file is run
first (without its ``__main__`` part), as a reader who opens it would, so the object exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SKIP_DIRS = {"_build", "_ext", "api", "auto_examples", "tested_by"}
FENCE = re.compile(r"```(python|\{literalinclude\}[^\n]*)\n(.*?)```", re.S)


def _pages():
    return sorted(p for p in DOCS.rglob("*.md") if not SKIP_DIRS & set(p.relative_to(DOCS).parts))


def _without_main(source):
    tree = ast.parse(source)
    tree.body = [n for n in tree.body if not (isinstance(n, ast.If) and "__main__" in ast.unparse(n.test))]
    return ast.unparse(tree)


def _blocks(page):
    """``[(line, code)]`` to run, in page order."""
    text = page.read_text()
    out = []
    for m in FENCE.finditer(text):
        line = text[:m.start()].count("\n") + 1
        if m.group(1) == "python":
            out.append((line, m.group(2)))
        else:  # ```{literalinclude} ../examples/x.py  -> run that file, main part aside
            target = (page.parent / m.group(1).split(None, 1)[1].strip()).resolve()
            if target.suffix == ".py":
                out.append((line, _without_main(target.read_text())))
    return out


SLOW = {"models.md"}  # trains digits_best for 30 epochs, as the page shows
PAGES = [pytest.param(p, id=p.relative_to(DOCS).as_posix(),
                      marks=[pytest.mark.slow] if p.relative_to(DOCS).as_posix() in SLOW else [])
         for p in _pages() if _blocks(p)]


@pytest.mark.parametrize("page", PAGES)
def test_every_code_block_of_the_page_runs_in_order(page, tmp_path, monkeypatch):
    code = "\n".join(block for _, block in _blocks(page))
    for needed, uses in (("torch", ("interop.to_torch(", "import torch")),
                         ("onnx", ("export.to_onnx(", "import onnx"))):
        if any(use in code for use in uses):
            pytest.importorskip(needed, reason=f"{page.name} uses {needed}: pip install -e \".[{needed}]\"")
    monkeypatch.chdir(tmp_path)  # blocks write files (model.onnx, checkpoints)
    namespace = {"__name__": f"docs_{page.stem}"}
    for line, code in _blocks(page):
        try:
            exec(compile(code, f"{page.relative_to(ROOT)}:{line}", "exec"), namespace)
        except Exception as exc:
            pytest.fail(f"{page.relative_to(ROOT)}, the code block at line {line}: {type(exc).__name__}: {exc}")
