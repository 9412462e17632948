"""'Did you mean ...?' for the names PyTorch and Keras users type (a module ``__getattr__`` helper)."""

from __future__ import annotations

import difflib

#: torch.nn / Keras names -> minidl's, where they differ (the same semantics, minidl's spelling)
TORCH_NAMES = {
    "Conv2d": "Conv2D", "BatchNorm2d": "BatchNorm2D", "BatchNorm1d": "BatchNorm1D", "MaxPool2d": "MaxPool2D",
    "AvgPool2d": "AvgPool2D", "AdaptiveAvgPool2d": "AdaptiveAvgPool2D", "Linear": "Dense", "Dropout2d": "Dropout2D",
    "InstanceNorm2d": "InstanceNorm2D", "Sequential": "minidl.Sequential", "GlobalAveragePooling2D": "GlobalAvgPool2D",
    "GlobalMaxPooling2D": "GlobalMaxPool2D", "CrossEntropyLoss": "SoftmaxCrossEntropy", "MSELoss": "MSE",
    "SparseCategoricalCrossentropy": "SoftmaxCrossEntropy", "MeanSquaredError": "MSE",
}


def missing(module: str, name: str, names) -> AttributeError:
    """The AttributeError for ``module.name``, naming minidl's spelling of it when there is one."""
    hint = TORCH_NAMES.get(name)
    if hint is None or (hint not in names and not hint.startswith("minidl.")):
        close = difflib.get_close_matches(name, list(names), n=1, cutoff=0.75)
        hint = close[0] if close else None
    tail = f" Did you mean {hint}? (minidl spells it so)" if hint else ""
    return AttributeError(f"module {module!r} has no attribute {name!r}.{tail}")
