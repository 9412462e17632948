"""Link every ``tests/test_x.py::test_name`` written as inline code to that test's source.

At ``builder-inited`` the Markdown sources (and the changelog they include) are scanned for
such names; for each test file named, a page ``tested_by/<file>.md`` (generated, not tracked)
shows each named test function (``literalinclude`` with ``:pyobject:``) under a label. A
transform then turns every matching inline literal into a link to that label. A name that
does not exist in ``tests/`` is a warning, so ``sphinx-build -W`` fails on a renamed test
instead of leaving a stale name in the derivations (``tests/test_docs.py`` checks the same
without a build).
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

from docutils import nodes
from sphinx import addnodes
from sphinx.transforms import SphinxTransform
from sphinx.util import logging

logger = logging.getLogger(__name__)

TEST_NAME = re.compile(r"tests/(test_\w+)\.py::(test_\w+)(\[[^\]`]*\])?")
GENERATED = "tested_by"
HISTORY = {"changelog"}  # pages where an unknown test name is left as it is, unlinked


def label(stem: str, name: str) -> str:
    return f"tested-{stem}-{name}".lower().replace("_", "-")


@functools.lru_cache(maxsize=None)
def test_functions(path: Path) -> frozenset:
    """The names of the module-level functions of a test file (empty if it does not exist)."""
    if not path.is_file():
        return frozenset()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return frozenset(n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)))


def scanned_sources(srcdir: Path):
    """The Markdown pages of the site (generated folders excluded) and the files they include."""
    skip = {"_build", "auto_examples", "api", GENERATED, "_ext"}
    for path in sorted(srcdir.rglob("*.md")):
        if not skip.intersection(path.relative_to(srcdir).parts):
            yield path
    yield srcdir.parent / "CHANGELOG.md"


def _write_if_changed(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def generate_pages(app) -> None:
    srcdir = Path(app.srcdir)
    tests_dir = srcdir.parent / "tests"
    named: dict[str, set] = {}
    for source in scanned_sources(srcdir):
        for stem, name, _ in TEST_NAME.findall(source.read_text(encoding="utf-8")):
            if name in test_functions(tests_dir / f"{stem}.py"):
                named.setdefault(stem, set()).add(name)
    for stem, names in sorted(named.items()):
        parts = ["---", "orphan: true", "---", "", f"# `tests/{stem}.py`", "",
                 "The tests the pages name, as they are in the repository.", ""]
        for name in sorted(names):
            parts += [f"({label(stem, name)})=", f"## `{name}`", "",
                      f"```{{literalinclude}} ../../tests/{stem}.py", f":pyobject: {name}", ":language: python",
                      "```", ""]
        _write_if_changed(srcdir / GENERATED / f"{stem}.md", "\n".join(parts))


class LinkTestNames(SphinxTransform):
    """Inline literals naming a test become links to its source; unknown tests are warnings."""

    default_priority = 500

    def apply(self, **kwargs) -> None:
        tests_dir = Path(self.app.srcdir).parent / "tests"
        for node in list(self.document.findall(nodes.literal)):
            match = TEST_NAME.fullmatch(node.astext())
            if match is None or isinstance(node.parent, (nodes.reference, addnodes.pending_xref)):
                continue
            stem, name = match.group(1), match.group(2)
            if name not in test_functions(tests_dir / f"{stem}.py"):
                if self.env.docname in HISTORY:  # a record of the past may name a test since renamed
                    continue
                logger.warning("%s names a test that does not exist in tests/ (renamed or removed?)",
                               node.astext(), location=node)
                continue
            xref = addnodes.pending_xref("", refdomain="std", reftype="ref", reftarget=label(stem, name),
                                         refexplicit=True, refwarn=True)
            node.replace_self(xref)
            xref += node


def setup(app):
    app.connect("builder-inited", generate_pages)
    app.add_transform(LinkTestNames)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
