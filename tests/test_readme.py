"""The README's set-up commands and Python snippets are the ones users copy: keep them working."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_exactly_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first_block == ['pip install -e . && minidl train', 'pip install -e ".[test]" && pytest']


# a snippet needing an optional package runs where it is installed and is skipped (with the
# reason) where it is not; the other snippets always run
OPTIONAL = {"mdl.interop": "torch", "to_torch": "torch", "to_onnx": "onnx", "from_onnx": "onnx"}


def optional_packages(block: str) -> set:
    """The optional packages a README snippet imports, by the API it calls."""
    return {package for marker, package in OPTIONAL.items() if marker in block}


def run_snippets(tmp_path, monkeypatch, blocks):
    monkeypatch.chdir(tmp_path)  # the snippets save files
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace: dict = {}
    for block in blocks:  # they build on one another, as a reader runs them
        block = block.replace("epochs=20", "epochs=2")
        exec(compile(block, str(README), "exec"), namespace)
    return namespace


def readme_blocks():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    return blocks


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    """Every snippet needing only the runtime dependencies runs (a bare install has nothing more)."""
    namespace = run_snippets(tmp_path, monkeypatch, [b for b in readme_blocks() if not optional_packages(b)])
    assert namespace["report"].passed
    assert isinstance(namespace["same"], type(namespace["model"]))
    np.testing.assert_array_equal(namespace["same"](namespace["X_test"]), namespace["model"](namespace["X_test"]))


def test_readme_snippets_with_optional_packages_run(tmp_path, monkeypatch):
    """The snippets that use torch or onnx, in the README's order, where those are installed."""
    blocks = readme_blocks()
    needed = set().union(*map(optional_packages, blocks))
    assert needed == {"torch", "onnx"}, "OPTIONAL no longer matches the README's snippets"
    for package in sorted(needed):
        pytest.importorskip(package, reason=f"the README's snippets using {package} need it "
                                            f"(pip install -e '.[test,torch,plot,onnx]')")
    namespace = run_snippets(tmp_path, monkeypatch, blocks)
    assert type(namespace["same_again"]) is type(namespace["model"])


def test_collection_survives_a_torch_that_is_found_but_cannot_be_imported(tmp_path):
    """A torch installed without its dependencies is found on the path but fails to import (here with
    ModuleNotFoundError, as a missing sympy does): the doctests of minidl/interop/_torch.py must then be
    left out, as without torch, instead of stopping collection (the README's test command failed so)."""
    import os
    import subprocess
    import sys

    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("import a_dependency_that_is_not_installed\n")
    root = README.parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(root)])}
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "minidl/interop"], cwd=root, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "_torch.py" not in proc.stdout
