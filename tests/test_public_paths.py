"""The public import paths of the edges survive the restructuring's moves (issue 18).

Each public module keeps its ``__all__``, every name is reachable as ``mdl.<module>.<name>``
right after ``import minidl as mdl`` (the way README, docs and examples write them), and a
module that re-exports (``minidl.export``, ``minidl.datasets``, ``minidl.transforms``) hands
out the very objects of the module where the code now lives.
"""

import importlib
import json
import os
import subprocess
import sys

import pytest

PUBLIC = {
    "minidl.io": ["save", "load", "write", "read", "ModelFile", "register_layer", "FORMAT_VERSION",
                  "MAX_LOAD_BYTES"],
    "minidl.interop": ["to_torch", "from_torch"],
    "minidl.export": ["to_onnx", "from_onnx", "OPSET"],
    "minidl.data": ["load_digits", "load_mnist", "load_idx", "load_npz", "from_arrays", "iterate_batches",
                    "num_batches", "Compose", "RandomRotation", "RandomShift", "rotate_images", "shift_images"],
    "minidl.datasets": ["load_idx", "load_mnist", "load_npz", "from_arrays", "MNIST_FILES"],
    "minidl.transforms": ["Compose", "RandomShift", "RandomRotation", "shift_images", "rotate_images", "apply",
                          "STREAM"],
    "minidl.callbacks": ["Callback", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "NormHistory"],
    "minidl.metrics": ["accuracy", "confusion_matrix", "resolve_metrics", "METRICS"],
}
TOP_LEVEL = ["Trainer", "History", "EarlyStopping", "ModelCheckpoint", "LearningRateScheduler", "NormHistory",
             "load", "save", "register_layer"]
#: re-exporting module -> where its code lives
MOVED = {"minidl.export": "minidl.interop.onnx", "minidl.datasets": "minidl.data.datasets",
         "minidl.transforms": "minidl.data.transforms"}


@pytest.mark.parametrize("module", sorted(PUBLIC))
def test_public_module_keeps_its_names(module):
    assert importlib.import_module(module).__all__ == PUBLIC[module]


@pytest.mark.parametrize("shim", sorted(MOVED))
def test_a_re_exporting_module_hands_out_the_same_objects(shim):
    old, new = importlib.import_module(shim), importlib.import_module(MOVED[shim])
    for name in PUBLIC[shim]:
        assert getattr(old, name) is getattr(new, name), name


def test_every_public_name_is_an_attribute_right_after_import_minidl():
    # a fresh interpreter: in this one, other tests have imported the submodules already
    script = ("import json, sys, minidl as mdl\n"
              "missing = []\n"
              "for dotted in json.loads(sys.argv[1]):\n"
              "    obj = mdl\n"
              "    for part in dotted.split('.')[1:]:\n"
              "        if not hasattr(obj, part):\n"
              "            missing.append(dotted)\n"
              "            break\n"
              "        obj = getattr(obj, part)\n"
              "print(json.dumps(missing))\n")
    wanted = [f"{m}.{n}" for m, names in PUBLIC.items() for n in names] + [f"minidl.{n}" for n in TOP_LEVEL]
    proc = subprocess.run([sys.executable, "-c", script, json.dumps(wanted)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
