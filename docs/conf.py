"""Sphinx configuration of minidl's site: ``sphinx-build -W -b html docs docs/_build/html``."""

import os
import sys
import warnings
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # the checkout's minidl, not an installed copy
sys.path.insert(0, str(DOCS / "_ext"))
os.environ.setdefault("MPLBACKEND", "Agg")

import apigen  # noqa: E402  (docs/_ext, after the path is set)

import minidl  # noqa: E402

project = "minidl"
author = "the minidl developers"
copyright = "the minidl developers"
release = version = minidl.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "myst_parser",
    "sphinx_gallery.gen_gallery",
    "shape_section",  # docs/_ext: the docstrings' Shape section, which numpydoc does not know
    "testlinks",  # docs/_ext: `tests/test_x.py::test_y` becomes a link to that test's source
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_ext", "Thumbs.db", ".DS_Store", "auto_examples/*.ipynb",
                    "auto_examples/*.py", "auto_examples/*.zip", "auto_examples/*.md5"]

# MyST: dollar math ($...$, $$...$$) and amsmath environments; anchors for ## and ### headings
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence"]
myst_heading_anchors = 3
myst_dmath_double_inline = True

# API reference: pages written from the modules' __all__ before the build reads its sources
apigen.write_pages(DOCS / "api")
autosummary_generate = False  # the pages above are the stubs; tables only link to them
autodoc_member_order = "bysource"
autodoc_typehints = "none"  # the numpydoc Parameters sections carry the types
autodoc_inherit_docstrings = False
numpydoc_show_class_members = False  # autodoc's :members: documents them; no second table
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks = set()
# numpydoc parses raw docstrings for signatures too and warns (a Python warning) about the Shape
# section each time; shape_section renders it, so that warning is noise here
warnings.filterwarnings("ignore", message="Unknown section Shape", category=UserWarning)
# docs/reliability.md shows the model file's JSON with "..." elisions, which Pygments cannot lex
# as JSON; it falls back to plain highlighting, which is what that block wants
suppress_warnings = ["misc.highlighting_failure"]

sphinx_gallery_conf = {
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": r"\.py$",  # run every example, not only plot_*.py
    "within_subsection_order": "gallery_conf.ExampleOrder",
    "reset_argv": "gallery_conf.reset_argv",
    "image_scrapers": ("matplotlib",),
    "capture_repr": (),
    "download_all_examples": False,
    "remove_config_comments": True,
    "show_memory": False,
    "abort_on_example_error": True,
}

html_theme = "pydata_sphinx_theme"
html_title = f"minidl {release}"
html_theme_options = {
    "navigation_with_keys": False,
    "show_toc_level": 2,
    "secondary_sidebar_items": ["page-toc"],
}
html_sidebars = {"changelog": []}
html_static_path = []
