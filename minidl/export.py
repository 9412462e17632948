"""ONNX export and import, :func:`to_onnx` and :func:`from_onnx`: the code lives in :mod:`minidl.interop.onnx`."""

from .interop.onnx import OPSET, from_onnx, to_onnx

__all__ = ["to_onnx", "from_onnx", "OPSET"]
