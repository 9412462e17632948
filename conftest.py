"""pytest configuration at the repository root (the doctests of the minidl package)."""

import importlib

import numpy as np
import pytest


def _importable(name: str) -> bool:
    """True when ``import name`` works: a package that is found but fails to import (a broken or
    partial install, a stray ``torch/`` folder on the path) counts as missing, as importorskip does."""
    try:
        importlib.import_module(name)
    except Exception:
        return False
    return True


# Modules whose import needs an optional package: without it their doctests are not
# collected (the tests using them skip on their own, with the reason).
#   minidl.plot draws with matplotlib (the `plot` extra);
#   minidl.interop._torch builds torch modules (torch, the test oracle).
collect_ignore_glob = []
if not _importable("matplotlib"):
    collect_ignore_glob.append("minidl/plot/*.py")
if not _importable("torch.nn"):
    collect_ignore_glob.append("minidl/interop/_torch.py")


@pytest.fixture(autouse=True, scope="session")
def _doctest_names(doctest_namespace):
    """The names every docstring example may use without importing them: only ``np`` (numpy), as in
    numpy's own documentation. Anything from minidl is imported in the example itself, so an example
    shows where its names come from, and no module imports a name only for its examples."""
    doctest_namespace["np"] = np
