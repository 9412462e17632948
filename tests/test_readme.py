"""The README's set-up commands and Python snippets are the ones users copy: keep them working."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_exactly_the_two_setup_commands():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert first_block == ['pip install -e . && minidl train', 'pip install -e ".[test]" && pytest']


def test_readme_python_snippets_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the snippets save files
    monkeypatch.setenv("MPLBACKEND", "Agg")
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert len(blocks) >= 3
    namespace: dict = {}
    for block in blocks:  # they build on one another, as a reader runs them
        block = block.replace("epochs=20", "epochs=2")
        exec(compile(block, str(README), "exec"), namespace)
    assert namespace["report"].passed
    assert isinstance(namespace["same"], type(namespace["model"]))
    np.testing.assert_array_equal(namespace["same"](namespace["X_test"]), namespace["model"](namespace["X_test"]))
