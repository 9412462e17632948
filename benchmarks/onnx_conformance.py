"""onnx's own backend node tests, run through ``minidl.export.from_onnx`` for every op minidl reads.

``onnx.backend.test.case.node.collect_testcases()`` builds the cases from the installed onnx package
(a one-node model and its expected outputs each). The cases give weights (Conv's W, Gemm's B) as graph
inputs; minidl reads weights from initializers, so each data set's second and further inputs are made
initializers of the model (the first stays the run-time input). A case passes when from_onnx imports it and the
model's outputs match onnx's (rtol 1e-4, or the case's own rtol where it is looser: some cases store
their expected values rounded to 4 digits; atol the case's); it is refused when from_onnx raises a
ValueError (an input minidl cannot read: several graph inputs, a weight given at run time, an option
minidl has no form for); anything else -- another exception, a wrong number -- is a failure.
tests/test_onnx_conformance.py asserts there is none.

Usage:  python benchmarks/onnx_conformance.py   (prints the per-op table pass / refused / failed)
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections import Counter

import numpy as np

import minidl as mdl
from minidl.interop.onnx_import import supported_ops

RTOL = 1e-4


def collect():
    """The node test cases (one node each) of the ops minidl reads (about 8 s: onnx builds every case)."""
    import warnings

    from onnx.backend.test.case.node import collect_testcases
    ops = set(supported_ops())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # onnx's own casts of nan and inf while it builds the cases
        cases = collect_testcases()
    return [case for case in cases if case.model is not None and len(case.model.graph.node) == 1
            and case.model.graph.node[0].op_type in ops]


def with_initializers(model, inputs):
    """A copy of ``model`` whose graph inputs after the first are initializers holding ``inputs[1:]``."""
    from onnx import numpy_helper
    model = type(model).FromString(model.SerializeToString())
    graph = model.graph
    for info, value in list(zip(graph.input, inputs))[1:]:
        if isinstance(value, np.ndarray) and value.dtype != object:  # not sequences or optionals
            graph.initializer.append(numpy_helper.from_array(value, info.name))
    return model


def check(case, folder):
    """``("pass" | "refused" | "failed", detail)`` for one case (every data set)."""
    for i, (inputs, outputs) in enumerate(case.data_sets or ()):
        x = inputs[0] if len(inputs) else None  # a Constant case has no input: from_onnx refuses it
        status, detail = _check_one(case, with_initializers(case.model, inputs), x, outputs[0],
                                    os.path.join(folder, f"{case.name}_{i}.onnx"))
        if status != "pass":
            return status, detail
    return "pass", ""


def _check_one(case, proto, x, want, path):
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    try:
        model = mdl.export.from_onnx(path)
    except ValueError as exc:
        return "refused", str(exc).split(": ", 2)[-1][:160]
    except Exception as exc:  # noqa: BLE001 - any other type is what this check is for
        return "failed", f"import raised {type(exc).__name__}: {exc}"
    try:
        got = model(x)
    except Exception as exc:  # noqa: BLE001
        return "failed", f"the imported model raised {type(exc).__name__}: {exc}"
    if got.shape != want.shape or not np.allclose(got, want, rtol=max(RTOL, case.rtol), atol=case.atol):
        err = np.abs(np.asarray(got, np.float64) - want).max() if got.shape == want.shape else "shape"
        return "failed", f"outputs differ from onnx's (shape {got.shape} vs {want.shape}, max error {err})"
    return "pass", ""


def run(cases):
    """``{op: Counter(status)}`` and the list of failures ``(case name, detail)``."""
    table, failures = {}, []
    with tempfile.TemporaryDirectory() as folder:
        for case in cases:
            op = case.model.graph.node[0].op_type
            status, detail = check(case, folder)
            table.setdefault(op, Counter())[status] += 1
            if status == "failed":
                failures.append((case.name, detail))
    return table, failures


def main():
    table, failures = run(collect())
    print(f"{'op':<22}{'pass':>6}{'refused':>9}{'failed':>8}")
    for op in sorted(table):
        c = table[op]
        print(f"{op:<22}{c['pass']:>6}{c['refused']:>9}{c['failed']:>8}")
    total = sum(table.values(), Counter())
    print(f"{'total':<22}{total['pass']:>6}{total['refused']:>9}{total['failed']:>8}")
    for name, detail in failures:
        print(f"FAILED {name}: {detail}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
