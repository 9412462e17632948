"""onnx's own backend node tests through ``from_onnx`` (issue 19): for every op minidl reads, each case
either matches onnx's expected outputs or is refused with a ValueError -- no other exception, no wrong
number. The per-op table: ``python benchmarks/onnx_conformance.py``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("onnx", reason="the conformance cases come from the onnx package")

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def conformance():
    spec = importlib.util.spec_from_file_location("onnx_conformance", ROOT / "benchmarks" / "onnx_conformance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module, module.collect()  # about 8 s: once per session


def test_every_case_passes_or_is_refused_cleanly(conformance):
    module, cases = conformance
    table, failures = module.run(cases)
    assert not failures, failures
    passed = {op for op, counts in table.items() if counts["pass"]}
    # the layer ops of a CNN each pass some of onnx's own cases (not only refusals)
    assert {"Conv", "Gemm", "BatchNormalization", "MaxPool", "AveragePool", "GlobalAveragePool", "Relu",
            "Softmax", "LogSoftmax", "Flatten", "Reshape", "Dropout", "ConvTranspose", "GlobalMaxPool",
            "Resize"} <= passed, table
    assert sum(c["pass"] for c in table.values()) >= 90, table
