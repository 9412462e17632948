"""The site's sources are consistent without building it (the build itself runs in CI:
``sphinx-build -W -b html docs docs/_build/html``, see .ci/run)."""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import pytest

import minidl

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
GENERATED = ("_build", "_ext", "api", "auto_examples", "tested_by")  # written by the build
TEST_NAME = re.compile(r"tests/(test_\w+)\.py::(test_\w+)")


def _load(name):
    spec = importlib.util.spec_from_file_location(name, DOCS / "_ext" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def pages():
    """The tracked Markdown pages of the site, as docnames ('derivations/dense')."""
    return sorted(p.relative_to(DOCS).with_suffix("").as_posix() for p in DOCS.rglob("*.md")
                  if not set(GENERATED) & set(p.relative_to(DOCS).parts))


def toctree_entries(docname):
    """The entries of every ``{toctree}`` block of a page, resolved to docnames."""
    text = (DOCS / f"{docname}.md").read_text()
    entries = []
    for block in re.findall(r"```\{toctree\}\n(.*?)```", text, re.S):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith(":"):
                base = Path(docname).parent
                entries.append(Path(line.lstrip("/")).as_posix() if line.startswith("/")
                               else (base / line).as_posix())
    return [re.sub(r"[^/]+/\.\./", "", e) for e in entries]


def source_exists(docname):
    """A tracked page, or one the build generates from a tracked source."""
    if (DOCS / f"{docname}.md").is_file() or (DOCS / f"{docname}.rst").is_file():
        return True
    if docname == "auto_examples/index":
        return (EXAMPLES / "GALLERY_HEADER.rst").is_file()
    if docname.startswith("auto_examples/"):
        return (EXAMPLES / f"{docname.split('/', 1)[1]}.py").is_file()
    return docname == "api/index"  # docs/_ext/apigen.py


def test_every_toctree_entry_has_a_source():
    for docname in pages():
        for entry in toctree_entries(docname):
            assert source_exists(entry), f"docs/{docname}.md: toctree entry {entry!r} has no source"


def test_every_page_is_in_a_toctree():
    listed = {e for d in pages() for e in toctree_entries(d)}
    orphans = [d for d in pages() if d != "index" and d not in listed]
    assert not orphans, f"pages in no toctree (Sphinx -W fails on them): {orphans}"
    for required in ("conv_backprop", "performance", "reliability", "models", "changelog", "leaving", "graph",
                     "derivations/pooling", "derivations/dense", "derivations/relu", "derivations/cross_entropy",
                     "derivations/batchnorm", "derivations/activations", "derivations/normalization",
                     "getting_started", "custom_layer", "api/index",
                     "auto_examples/index", "auto_examples/plot_digits_tutorial"):
        assert required in listed, required


def _functions(test_file):
    tree = ast.parse(test_file.read_text())
    return {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}


def test_every_test_named_in_the_pages_exists():
    """A renamed test must break this test, not leave a stale name in the derivations."""
    named = 0
    for docname in pages():
        if docname == "changelog":
            continue
        for stem, name in TEST_NAME.findall((DOCS / f"{docname}.md").read_text()):
            path = ROOT / "tests" / f"{stem}.py"
            assert path.is_file() and name in _functions(path), f"docs/{docname}.md names tests/{stem}.py::{name}"
            named += 1
    assert named >= 100  # the derivations name their tests


def test_every_derivation_page_names_its_tests():
    for page in ("conv_backprop", "derivations/pooling", "derivations/dense", "derivations/relu",
                 "derivations/cross_entropy", "derivations/batchnorm", "derivations/activations",
                 "derivations/normalization", "graph"):
        text = (DOCS / f"{page}.md").read_text()
        assert "$$" in text and len(TEST_NAME.findall(text)) >= 4, page


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_example_is_gallery_ready(path):
    """sphinx-gallery needs a title block; a SystemExit (even 0) would stop the docs build."""
    source = path.read_text()
    doc = ast.get_docstring(ast.parse(source))
    assert doc, f"{path.name}: no docstring"
    title, underline = doc.splitlines()[:2]
    assert set(underline) == {"="} and len(underline) >= len(title), f"{path.name}: title block {title!r}"
    assert not re.search(r"(sys\.exit|SystemExit)\(main\(\)\)", source), f"{path.name} exits even on success"


def test_shape_section_becomes_a_rubric():
    shape = _load("shape_section")
    lines = ["Summary.", "", "Parameters", "----------", "x : ndarray", "", "Shape", "-----",
             "    (N, C) -> (N, C)", "", "Examples", "--------", ">>> 1", "1"]
    body = shape.extract_shape(lines)
    assert body == ["(N, C) -> (N, C)"]
    assert "Shape" not in lines and lines[-4:] == ["Examples", "--------", ">>> 1", "1"]
    rendered = [":Parameters:", "", "    **x** : ndarray", "", ".. rubric:: Examples", "", ">>> 1"]
    shape.insert_shape(rendered, body)
    at = rendered.index(".. rubric:: Shape")
    assert rendered[at + 2] == "(N, C) -> (N, C)" and at < rendered.index(".. rubric:: Examples")


def test_api_reference_covers_every_public_module():
    apigen = _load("apigen")
    listed = {name for name, _ in apigen.API_MODULES}
    public = {f"minidl.{n}" for n in minidl.__all__ if type(getattr(minidl, n)).__name__ == "module"}
    assert public <= listed, public - listed
    some = [m for m in apigen.available_modules() if m[0] in ("minidl", "minidl.layers", "minidl.train")]
    pages_ = apigen.build_pages(some)
    assert "index" in pages_ and ".. autoclass:: minidl.Sequential" in pages_["minidl"]
    assert ".. autoclass:: minidl.layers.Conv2D" in pages_["minidl.layers"]
    assert ".. autoclass:: minidl.Trainer" not in pages_["minidl"]  # documented in minidl.train


def test_docs_extra_ci_and_pytest_configuration():
    pyproject = (ROOT / "pyproject.toml").read_text()  # no tomllib: Python 3.10 is supported
    docs = re.search(r"^docs = \[(.*?)\]", pyproject, re.S | re.M).group(1)
    for package in ("sphinx", "pydata-sphinx-theme", "numpydoc", "myst-parser", "sphinx-gallery", "matplotlib"):
        assert re.search(rf'"{re.escape(package)}>=', docs), package
    assert "sphinx-build -W -b html docs docs/_build/html" in (ROOT / ".ci" / "run").read_text()
    testpaths = re.search(r"^testpaths = \[(.*?)\]", pyproject, re.M).group(1)
    assert testpaths.replace(" ", "") == '"tests","minidl"'  # conf.py and the gallery's copies are not collected
