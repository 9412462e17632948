"""Export a minidl model to ONNX (and read back what minidl exported).

``to_onnx`` writes a standard ONNX model (opset 17, batch dimension dynamic)
that onnxruntime runs with minidl's eval-mode outputs. Each layer says what it
becomes in its own file: ``onnx_op`` for one node (``ReLU`` -> ``Relu``,
``Dropout`` -> ``Identity``, ``Add`` -> ``Sum``), or a ``to_onnx`` recipe
(Conv2D: ``Conv`` with explicit asymmetric pads, reflect/replicate/circular
padding as ``Pad`` or ``Slice`` + ``Concat`` first; the pools with PyTorch's
ceil_mode and divisor rules; Dense: ``Gemm``; BatchNorm: ``BatchNormalization``
with the running statistics; GELU from ``Erf`` or ``Tanh``). This module keeps
no list of layers: it walks the model (Sequential and Graph nodes in order) and
calls each layer's recipe with a :class:`LayerScope`.

:func:`from_onnx` reads back what :func:`to_onnx` wrote (the minidl architecture rides in
the model's metadata, the weights are its initializers), and reads other ONNX CNNs (a
``torch.onnx.export``, opsets 13 and up) into a Graph with :mod:`minidl.interop.onnx_import`.

onnx and onnxruntime are optional: ``pip install -e ".[onnx]"``.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np

from ..graph import INPUT, Graph, layer_state_restored
from ..io import MAX_LOAD_BYTES, archive
from ..io.architecture import REGISTRY, build, check_spec, json_default, spec_of
from ..layers.base import Unsupported, recipe_class
from ..parameter import deferred_init
from .onnx_import import ImportRefused, import_model

__all__ = ["to_onnx", "from_onnx", "OPSET"]

#: The ONNX opset written by :func:`to_onnx`.
OPSET = 17
_ARCH_KEY, _STATE_KEY = "minidl.architecture", "minidl.state"


def _import_onnx(where):
    try:
        import onnx
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(f"{where} needs the onnx package: pip install -e \".[onnx]\" (or pip install onnx "
                          "onnxruntime).") from exc
    return onnx


def to_onnx(model, path, input_shape):
    """Write ``model`` (in its eval form) to ``path`` as an ONNX model.

    Parameters
    ----------
    model : minidl Layer
        A :class:`~minidl.Sequential`, a :class:`~minidl.Graph` (nested ones too) or one
        layer; every layer must have an ONNX recipe (all built-in layers do).
    path : str or os.PathLike
        Where to write, as ``model.save`` writes (:func:`minidl.io.archive.write_atomic`):
        replaced atomically, with the mode a plain ``open`` would give, and no
        temporary file left behind by an error, Ctrl-C or SIGTERM.
    input_shape : tuple of int
        Shape of ONE sample, without the batch axis, e.g. ``(1, 8, 8)``. The batch
        dimension of the ONNX input and output is dynamic (``"N"``).

    Returns
    -------
    onnx.ModelProto
        The model written, with input ``"input"`` and output ``"output"``; its
        initializers are named after ``model.state_dict()``.

    Raises
    ------
    TypeError
        For a layer with no ONNX form here, naming it and its position (``model[3]``).
    ImportError
        When onnx is not installed.

    Notes
    -----
    The model is probed once in eval mode on a zero batch of one sample, to learn
    each layer's input size (it fixes 'same' padding and the circular wrap); the
    layers' modes and caches are restored afterwards.

    Examples
    --------
    >>> import minidl as mdl
    >>> mdl.export.to_onnx(mdl.models.reference_cnn(0), "cnn.onnx", (1, 8, 8))  # doctest: +SKIP
    """
    onnx = _import_onnx("minidl.export.to_onnx")
    from onnx import TensorProto, helper
    shape = _check_shape(input_shape)
    dtype = model_dtype(model)
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}[dtype]
    b = _Builder(helper, onnx.numpy_helper, dtype)
    with layer_state_restored(model):
        model.eval()
        out_name, out_value = b.emit(model, [INPUT], [np.zeros((1, *shape), dtype)], "", "model")
    b.nodes.append(helper.make_node("Identity", [out_name], ["output"], name="output"))
    graph = helper.make_graph(
        b.nodes, "minidl", [helper.make_tensor_value_info(INPUT, elem, ["N", *shape])],
        [helper.make_tensor_value_info("output", elem, ["N", *out_value.shape[1:]])], b.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="minidl",
                              ir_version=8)
    _set_minidl_metadata(helper, proto, model, {t.name for t in b.initializers})
    data = proto.SerializeToString()
    archive.write_atomic(path, lambda f: f.write(data), "minidl.export.to_onnx")
    return proto


def _set_minidl_metadata(helper, proto, model, exported):
    """What :func:`from_onnx` needs beyond the initializers: the architecture and the
    state entries that are no initializer (BatchNorm's ``num_batches_tracked``)."""
    state = {k: {"dtype": np.asarray(v).dtype.str, "value": np.asarray(v).tolist()}
             for k, v in model.state_dict().items() if k not in exported}
    try:
        arch = json.dumps(spec_of(model), default=json_default)
    except (TypeError, ValueError):  # an unregistered Graph subclass: exported, but cannot be read back
        return
    helper.set_model_props(proto, {_ARCH_KEY: arch, _STATE_KEY: json.dumps(state)})


def from_onnx(path, *, max_bytes=MAX_LOAD_BYTES):
    """Read an ONNX model: a minidl export exactly, or another CNN (``torch.onnx.export``) as a Graph.

    A file written by :func:`to_onnx` carries the minidl architecture in its metadata and
    comes back with the same architecture and state, bit for bit. Any other ONNX model
    (default domain, opsets 13 to the installed onnx's newest, one input with every size
    but the batch's known, one output) is read node by node into a :class:`~minidl.Graph`
    (:mod:`minidl.interop.onnx_import`): Conv, Gemm, MatMul + Add, BatchNormalization,
    MaxPool, AveragePool, GlobalAveragePool, the activations minidl has, Softmax,
    LogSoftmax, Add/Sum, Concat, Dropout, Identity, Pad (zeros, before a Conv),
    Flatten/Reshape that keep the batch axis; its initializers become trainable Parameters.

    The file is treated as untrusted, as :func:`minidl.load` treats a model file: it
    must be a regular file of at most ``max_bytes``; a minidl architecture is rebuilt
    without allocating any weight; every initializer's declared type, shape and stored
    length are checked (against the architecture, for a minidl export), and their total
    against ``max_bytes``, before any array is made. External data is never followed:
    an initializer stored outside the file is refused.

    Parameters
    ----------
    path : str or os.PathLike
        An ONNX file.
    max_bytes : int or None, default ``minidl.io.MAX_LOAD_BYTES`` (2 GiB)
        Refuse files, and architectures whose arrays, taking more bytes; checked
        before reading them. None lifts the limit.

    Returns
    -------
    minidl Layer
        The model in eval mode (the form that was exported). A minidl export's
        ``state_dict()`` equals the exported model's exactly; another model is a Graph
        whose nodes are named after the ONNX nodes (``/layer1/conv/Conv`` ->
        ``layer1_conv_Conv``). Call ``model.train()`` to train it.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming ``path``: not a regular file, larger than ``max_bytes``, not ONNX, metadata
        that does not describe a model, initializers that do not match its architecture
        or are stored externally; for another model, ``"from_onnx: node 'name' (op LSTM,
        opset 17) in 'path': ..."`` for each op, domain or form minidl does not read.

    Examples
    --------
    >>> model = mdl.export.from_onnx("cnn.onnx")  # doctest: +SKIP
    """
    onnx = _import_onnx("minidl.export.from_onnx")
    path = os.fspath(path)
    if max_bytes is not None and (type(max_bytes) is not int or max_bytes < 0):
        raise TypeError(f"from_onnx: max_bytes must be an int >= 0 or None. Received: {max_bytes!r}")
    try:
        proto = onnx.ModelProto.FromString(_read_regular_file(path, max_bytes))  # never follows external data
        model = _rebuild(proto, onnx, max_bytes)
    except FileNotFoundError:
        raise
    except ImportRefused as exc:  # a foreign model: the node, op and opset first
        raise ValueError(f"from_onnx: {exc.where} in {path!r}: {exc.why}") from None
    except Exception as exc:  # protobuf, json, onnx and numpy all have their own errors: untrusted input
        raise ValueError(f"from_onnx: cannot load a model from {path!r}: {exc}") from exc
    model.eval()
    return model


def _read_regular_file(path, max_bytes):
    """The bytes of ``path``, refusing FIFOs, devices and files over ``max_bytes`` before reading."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))  # a FIFO opens without waiting
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a directory" if stat.S_ISDIR(info.st_mode) else "a FIFO, device or socket"
            raise ValueError(f"not a regular file ({kind})")
        if max_bytes is not None and info.st_size > max_bytes:
            raise ValueError(f"the file has {info.st_size:,} bytes, more than max_bytes={max_bytes:,}; pass a "
                             "larger max_bytes to from_onnx if you trust this file")
        with os.fdopen(os.dup(fd), "rb") as f:
            return f.read(info.st_size + 1)
    finally:
        os.close(fd)


def _rebuild(proto, onnx, max_bytes):
    """The model described by a minidl export's metadata, filled from its initializers after checking them."""
    props = {p.key: p.value for p in proto.metadata_props}
    if _ARCH_KEY not in props:  # not written by minidl: read the ONNX graph itself
        return import_model(proto, onnx, max_bytes)
    spec, extra = json.loads(props[_ARCH_KEY]), json.loads(props.get(_STATE_KEY, "{}"))
    if not isinstance(extra, dict):
        raise ValueError(f"the {_STATE_KEY!r} metadata must be a JSON object")
    check_spec(spec)
    with deferred_init():  # no weights drawn or allocated before the checks
        model = build(spec, REGISTRY)
    inits = {}
    for tensor in proto.graph.initializer:
        if tensor.name in inits:
            raise ValueError(f"two initializers are named {tensor.name!r}")
        inits[tensor.name] = tensor
    expected = {}  # what state_dict() would hold, read off the placeholders (state_dict() would copy them)
    for key, value in model.state_dict(keep_vars=True).items():
        expected[key] = (tuple(value.shape), np.dtype(value.dtype))
    total = sum(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize for shape, dtype in expected.values())
    if max_bytes is not None and total > max_bytes:
        raise ValueError(f"its architecture's arrays take {total:,} bytes, more than max_bytes={max_bytes:,}; "
                         "pass a larger max_bytes to from_onnx if you trust this file")
    state = {}
    for key, (shape, dtype) in expected.items():
        if key in extra:
            state[key] = _metadata_array(key, extra[key], shape, dtype)
        elif key in inits:
            state[key] = _initializer_array(onnx, inits[key], shape, dtype)
        else:
            raise ValueError(f"it has no initializer {key!r}, which its architecture needs")
    model.load_state_dict(state, strict=True)
    return model


def _metadata_array(key, entry, shape, dtype):
    """A state entry stored in the metadata (``num_batches_tracked``), checked before it is made."""
    if not (isinstance(entry, dict) and isinstance(entry.get("dtype"), str) and "value" in entry):
        raise ValueError(f"the metadata entry {key!r} must be an object with 'dtype' and 'value'")
    if entry["dtype"] != dtype.str:
        raise ValueError(f"the metadata entry {key!r} has dtype {entry['dtype']!r}; the architecture needs "
                         f"{dtype.str!r}")
    value = np.array(entry["value"], dtype=dtype)
    if value.shape != shape:
        raise ValueError(f"the metadata entry {key!r} has shape {value.shape}; the architecture needs {shape}")
    return value


def _initializer_array(onnx, tensor, shape, dtype):
    """An initializer as an array, after checking its type, shape and stored length against the architecture."""
    from onnx import TensorProto
    key = tensor.name
    if tensor.data_location == TensorProto.EXTERNAL or tensor.external_data:
        raise ValueError(f"the initializer {key!r} is stored outside the file (external data), which minidl "
                         "never writes and does not follow")
    elem = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE}.get(dtype)
    if tensor.data_type != elem or tuple(tensor.dims) != shape:
        raise ValueError(f"the initializer {key!r} has ONNX data type {tensor.data_type} and shape "
                         f"{tuple(tensor.dims)}; the architecture needs data type {elem} ({dtype}) and shape {shape}")
    count = int(np.prod(shape, dtype=np.int64))
    typed = tensor.float_data if elem == TensorProto.FLOAT else tensor.double_data
    stored = len(tensor.raw_data) if tensor.raw_data else len(typed) * dtype.itemsize
    if stored != count * dtype.itemsize:
        raise ValueError(f"the initializer {key!r} holds {stored:,} bytes; its shape {shape} needs "
                         f"{count * dtype.itemsize:,}")
    return np.array(onnx.numpy_helper.to_array(tensor), dtype=dtype)


def _check_shape(input_shape):
    try:
        shape = tuple(int(s) for s in input_shape)
        ok = len(shape) >= 1 and all(s >= 1 and s == d for s, d in zip(shape, input_shape))
    except (TypeError, ValueError):
        ok = False
    if not ok:
        raise ValueError("to_onnx: input_shape must be the shape of one sample without the batch axis, a tuple "
                         f"of positive ints such as (1, 8, 8). Received: input_shape={input_shape!r}")
    return shape


class LayerScope:
    """What a layer's ``to_onnx`` recipe builds with: nodes and initializers named after the layer.

    ``node(op, inputs, **attributes)`` adds a node and returns its output's name;
    ``const(name, array, dtype=None)`` adds an initializer called ``<prefix>.<name>`` (the
    layer's state-dict key for its arrays) in the model's float dtype (or ``dtype``);
    ``dtype`` is that float dtype.
    """

    def __init__(self, builder, prefix):
        self._b, self._prefix, self.dtype = builder, prefix, builder.dtype

    def node(self, op, inputs, **attrs):
        return self._b.node(op, inputs, self._prefix, **attrs)

    def const(self, name, array, dtype=None):
        return self._b.const(self._prefix, name, array, dtype)


class _Builder:
    """Collects ONNX nodes and initializers while walking a minidl model."""

    def __init__(self, helper, numpy_helper, dtype):
        self.helper, self.numpy_helper, self.dtype = helper, numpy_helper, dtype
        self.nodes, self.initializers, self._names = [], [], set()

    def name(self, base):
        name, i = base, 1
        while name in self._names:
            name, i = f"{base}_{i}", i + 1
        self._names.add(name)
        return name

    def node(self, op, inputs, prefix, **attrs):
        out = self.name(f"{prefix or 'model'}/{op}")
        self.nodes.append(self.helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def const(self, prefix, suffix, array, dtype=None):
        """An initializer named ``<prefix>.<suffix>`` (the layer's state-dict key for its arrays)."""
        name = self.name(f"{prefix}.{suffix}" if prefix else suffix)
        arr = np.asarray(array, dtype=dtype or self.dtype)
        self.initializers.append(self.numpy_helper.from_array(arr, name))
        return name

    def emit(self, layer, names, values, prefix, where):
        """ONNX nodes computing ``layer(*values)``; returns (output name, output value)."""
        if isinstance(layer, Graph):
            return self._emit_graph(layer, names, values, prefix, where)
        kind = type(layer)
        if recipe_class(kind, "to_onnx") is None:
            supported = [n for n, cls in REGISTRY.items() if recipe_class(cls, "to_onnx") is not None]
            raise TypeError(
                f"to_onnx: {where} is a {kind.__module__}.{kind.__qualname__} ({layer!r}), which has no ONNX "
                f"form here. Supported: Sequential, Graph and the layers {', '.join(supported)}. Give the class "
                "an onnx_op or a to_onnx method (see minidl.layers.Layer.to_onnx), replace it, or export its parts."
            )
        try:
            name = layer.to_onnx(LayerScope(self, prefix), names, values[0].shape)
        except Unsupported as exc:
            raise TypeError(f"to_onnx: {where} ({layer!r}) {exc}.") from None
        return name, layer.forward(*values)

    def _emit_graph(self, graph, names, values, prefix, where):
        known = {INPUT: (names[0], values[0])}
        for node in graph.execution_plan():
            child, inputs = graph.nodes[node]
            sub = f"{prefix}.{node}" if prefix else node
            known[node] = self.emit(child, [known[i][0] for i in inputs], [known[i][1] for i in inputs],
                                    sub, f"{where}[{node!r}]" if type(graph) is Graph else f"{where}[{node}]")
        return known[graph.output_name]


def model_dtype(model):
    """The dtype of the model's first parameter, else of its first floating-point buffer (a
    BatchNorm with affine=False has no parameter), else float32."""
    params = model.parameters()
    if params:
        return np.dtype(params[0].data.dtype)
    floats = [np.dtype(v.dtype) for v in model.state_dict(keep_vars=True).values()
              if np.issubdtype(v.dtype, np.floating)]
    return floats[0] if floats else np.dtype(np.float32)
