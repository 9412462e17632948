"""Write the API reference pages (``docs/api/``, generated, not tracked) from the modules' ``__all__``.

One page per public module: its docstring, an ``autosummary`` table of every public name, and
the full numpydoc documentation of the names that live there. A name exported by several
modules (``mdl.Trainer`` is ``minidl.train.Trainer``) is documented once, on the page of the
module it comes from, and the other tables link to it. ``minidl.plot`` gets a page when it can
be imported (matplotlib installed and the module present).
"""

from __future__ import annotations

import importlib
import inspect
from pathlib import Path

# (module, one-line description for the index); the order of the index
API_MODULES = [
    ("minidl", "the top-level names: ``mdl.Sequential``, ``mdl.Trainer``, ``mdl.gradcheck``, ..."),
    ("minidl.layers", "stateful layers: Conv2D, BatchNorm, pooling, Dense, activations, Add, Concat"),
    ("minidl.layers.registry", "the one registry of layer classes: register_layer"),
    ("minidl.functional", "the pure numpy kernels the layers call, forward and backward"),
    ("minidl.functional.conv_reference", "the convolution as plain loops: the lesson, and the tests' oracle"),
    ("minidl.losses", "SoftmaxCrossEntropy, NLLLoss, MSE, L1, smooth L1, Huber, binary cross-entropy, KL divergence"),
    ("minidl.optim", "SGD, Adam, AdamW, RMSprop, NAdam, RAdam, Adagrad, Adamax and torch's learning-rate schedulers"),
    ("minidl.callbacks", "EarlyStopping, ModelCheckpoint, LearningRateScheduler, NormHistory"),
    ("minidl.train", "the training loop: Trainer and History"),
    ("minidl.data", "digits, batching, and the dataset and transform helpers"),
    ("minidl.data.datasets", "IDX (MNIST family), .npz and your own arrays (also ``minidl.datasets``)"),
    ("minidl.data.transforms", "data augmentation, vectorised over the batch (also ``minidl.transforms``)"),
    ("minidl.metrics", "training metrics"),
    ("minidl.gradcheck", "numerical gradient checks"),
    ("minidl.modelcheck", "gradient checks of a whole model, layer by layer, at a real batch: check_model"),
    ("minidl.layer_contract", "the contract every built-in layer passes, for your own: check_layer"),
    ("minidl.grad_mode", "gradients of a model in eval mode: enable_grad"),
    ("minidl.threads", "the threads minidl computes on, as PyTorch: set_num_threads, get_num_threads"),
    ("minidl.testing", "helpers for tests of layers, built-in or your own"),
    ("minidl.validation", "the input checks of the built-in layers, for your own layers"),
    ("minidl.io", "save and load models"),
    ("minidl.train.checkpoint", "Trainer checkpoints"),
    ("minidl.models", "ready-made architectures and recipes"),
    ("minidl.interop", "PyTorch in and out"),
    ("minidl.interop.onnx", "ONNX export and import (the code of ``minidl.export``)"),
    ("minidl.export", "ONNX export: ``mdl.export.to_onnx``, ``from_onnx``"),
    ("minidl.plot", "pictures of training (matplotlib)"),
]


def available_modules():
    """``[(name, module, description)]`` for the modules that import (``minidl.plot`` may not)."""
    found = []
    for name, description in API_MODULES:
        try:
            module = importlib.import_module(name)
        except ImportError:
            if name == "minidl.plot":  # written separately; optional
                continue
            raise
        found.append((name, module, description))
    return found


def public_names(module):
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)
                 and getattr(v, "__module__", module.__name__) == module.__name__]
    return [n for n in names if not (n.startswith("__") and n.endswith("__"))]


def _home(obj, candidates):
    """The page that documents ``obj``: the longest candidate module that its ``__module__`` starts
    with, else the first candidate."""
    origin = getattr(obj, "__module__", None) or ""
    matching = [c for c in candidates if origin == c or origin.startswith(c + ".")]
    return max(matching, key=len) if matching else candidates[0]


def _directive(obj) -> str:
    if inspect.isclass(obj):
        return "autoclass"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or callable(obj):
        return "autofunction"
    return "autodata"


def _class_options(cls, exporters) -> str:
    """autoclass options: members, and those of minidl base classes that no page documents (a
    mixin such as ``LayerTree``, which holds part of ``Layer``), as the class's own."""
    options = "   :members:\n   :show-inheritance:\n"
    public = [k for k in cls.__mro__[1:] if id(k) in exporters or not k.__module__.startswith("minidl")]
    skip = {k.__name__ for base in public for k in base.__mro__}
    if all(k.__name__ in skip for k in cls.__mro__[1:]):
        return options
    return options + f"   :inherited-members: {', '.join(sorted(skip))}\n"


def build_pages(modules):
    """``{module name: reST text}`` of every page, and the index page."""
    exporters: dict[int, list[str]] = {}
    for name, module, _ in modules:
        for attr in public_names(module):
            obj = getattr(module, attr)
            if not inspect.ismodule(obj):
                exporters.setdefault(id(obj), []).append(name)
    pages = {}
    for name, module, _ in modules:
        table, bodies = [], []
        for attr in public_names(module):
            obj = getattr(module, attr)
            if inspect.ismodule(obj):
                continue
            home = _home(obj, exporters[id(obj)])
            if home == name:
                table.append(f"   {attr}")
            elif home.startswith(name + "."):  # autosummary wants names relative to the page's module
                table.append(f"   ~{home[len(name) + 1:]}.{attr}")
            else:
                table.append(f"   ~{home}.{attr}")
            if home == name:
                options = _class_options(obj, exporters) if inspect.isclass(obj) else ""
                bodies.append(f".. {_directive(obj)}:: {name}.{attr}\n{options}")
        submodules = [f"* :mod:`{getattr(module, a).__name__}`" for a in public_names(module)
                      if inspect.ismodule(getattr(module, a))]
        parts = [f"``{name}``", "=" * (len(name) + 4), "", f".. automodule:: {name}", ""]
        if submodules:
            parts += ["Modules: ", "", *submodules, ""]
        if table:
            parts += [".. rubric:: Summary", "", ".. autosummary::", "   :nosignatures:", "", *table, ""]
        parts += bodies
        pages[name] = "\n".join(parts) + "\n"
    index = ["API reference", "=============", "",
             "Generated from the docstrings (numpydoc) of every public module, by ``docs/_ext/apigen.py``.",
             "Each name is documented once, in the module it lives in; tables elsewhere link to it.", "",
             ".. toctree::", "   :maxdepth: 1", "   :hidden:", "",
             *[f"   {name}" for name, _, _ in modules], "",
             *[f"* :doc:`{name}` -- {description}" for name, _, description in modules], ""]
    pages["index"] = "\n".join(index)
    return pages


def write_pages(outdir: Path) -> None:
    outdir.mkdir(parents=True, exist_ok=True)
    pages = build_pages(available_modules())
    for stale in outdir.glob("*.rst"):
        if stale.stem not in pages:
            stale.unlink()
    for name, text in pages.items():
        path = outdir / f"{name}.rst"
        if not path.is_file() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
