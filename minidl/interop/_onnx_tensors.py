"""The untrusted parts of a foreign ONNX file as arrays: initializers, Constant tensors and the input's
type, each checked (type, declared and stored size, no external data) before any array is made."""

from __future__ import annotations

import numpy as np

__all__ = ["ImportRefused", "tensor_array", "check_budget", "input_probe"]

# ONNX TensorProto data types read, and the field holding them when not stored as raw bytes
_TYPES = {1: (np.float32, "float_data"), 11: (np.float64, "double_data"), 7: (np.int64, "int64_data"),
          6: (np.int32, "int32_data"), 9: (np.bool_, "int32_data")}
_FLOATS = {1: np.float32, 11: np.float64}


class ImportRefused(ValueError):
    """An ONNX model, or one of its nodes, that minidl cannot import.

    Parameters
    ----------
    where : str
        What is refused: ``"node 'lstm' (op LSTM, opset 17)"`` or ``"the model"``.
    why : str
        Why, and what to do.

    Examples
    --------
    >>> str(ImportRefused("node 'x' (op LSTM, opset 17)", "LSTM is not supported"))
    "node 'x' (op LSTM, opset 17): LSTM is not supported"
    """

    def __init__(self, where, why):
        super().__init__(f"{where}: {why}")
        self.where, self.why = where, why


def _refuse(why):
    return ImportRefused("the model", why)


def _count(dims, what):
    if any(d < 0 for d in dims):
        raise _refuse(f"{what} declares the shape {tuple(dims)}, with a negative size")
    return int(np.prod([int(d) for d in dims], dtype=object)) if dims else 1


def tensor_array(onnx, tensor, what):
    """A TensorProto as a writable array, after checking its type, declared shape and stored length.

    Parameters
    ----------
    onnx : module
    tensor : onnx.TensorProto
    what : str
        How the message names it (``"the initializer 'w'"``).

    Returns
    -------
    ndarray

    Raises
    ------
    ImportRefused
        External data (never followed), a data type minidl does not read, a stored length
        that is not the declared shape's.

    Examples
    --------
    >>> tensor_array(onnx, onnx.numpy_helper.from_array(np.ones(2, np.float32)), "x")  # doctest: +SKIP
    array([1., 1.], dtype=float32)
    """
    if tensor.data_location == onnx.TensorProto.EXTERNAL or tensor.external_data:
        raise _refuse(f"{what} is stored outside the file (external data), which minidl does not follow")
    if tensor.data_type not in _TYPES:
        raise _refuse(f"{what} has ONNX data type {tensor.data_type}; minidl reads float32, float64, int64, int32 "
                      "and bool tensors")
    dtype, field = _TYPES[tensor.data_type]
    count, size = _count(tensor.dims, what), np.dtype(dtype).itemsize
    if tensor.raw_data:
        stored, needed = len(tensor.raw_data), count * size
    else:
        stored, needed = len(getattr(tensor, field)), count
    if stored != needed:
        raise _refuse(f"{what} stores {stored:,} {'bytes' if tensor.raw_data else 'values'}; its shape "
                      f"{tuple(tensor.dims)} needs {needed:,}")
    return np.array(onnx.numpy_helper.to_array(tensor), dtype=dtype)


def check_budget(graph, max_bytes):
    """Refuse initializers declaring more than ``max_bytes`` in all, before reading any.

    Parameters
    ----------
    graph : onnx.GraphProto
    max_bytes : int or None

    Raises
    ------
    ImportRefused
        Over the budget.
    """
    if max_bytes is None:
        return
    total = sum(_count(t.dims, f"the initializer {t.name!r}") * np.dtype(_TYPES.get(t.data_type, (np.int8,))[0]
                                                                          ).itemsize for t in graph.initializer)
    if total > max_bytes:
        raise _refuse(f"its initializers declare {total:,} bytes, more than max_bytes={max_bytes:,}; pass a larger "
                      "max_bytes to from_onnx if you trust this file")


def input_probe(value_info, max_bytes):
    """A batch of one zeros shaped and typed as the model's input (float32 or float64, sizes known but the batch).

    Parameters
    ----------
    value_info : onnx.ValueInfoProto
    max_bytes : int or None
        Refuse an input sample taking more bytes.

    Returns
    -------
    ndarray
        ``(1, *sample_shape)``.

    Raises
    ------
    ImportRefused
        Another type, an unknown rank or size (the batch aside), over ``max_bytes``.
    """
    kind = value_info.type.tensor_type
    name = value_info.name
    if kind.elem_type not in _FLOATS:
        raise _refuse(f"its input {name!r} has ONNX element type {kind.elem_type}; minidl reads float32 (1) and "
                      "float64 (11) models")
    dims = list(kind.shape.dim) if kind.HasField("shape") else None
    if not dims or any(d.dim_value <= 0 for d in dims[1:]):
        shape = None if dims is None else [d.dim_value or d.dim_param or "?" for d in dims]
        raise _refuse(f"its input {name!r} has the shape {shape}; minidl needs every size but the batch's (axis 0) "
                      "known. Export with fixed sizes (dynamic_axes only on the batch)")
    sample = [int(d.dim_value) for d in dims[1:]]
    dtype = np.dtype(_FLOATS[kind.elem_type])
    if max_bytes is not None and _count(sample, "the input") * dtype.itemsize > max_bytes:
        raise _refuse(f"one sample of its input {name!r} (shape {tuple(sample)}) takes more than "
                      f"max_bytes={max_bytes:,}")
    return np.zeros([1, *sample], dtype)
