"""Export a minidl model to ONNX (and read back what minidl exported).

``to_onnx`` writes a standard ONNX model (opset 17, batch dimension dynamic)
that onnxruntime runs with minidl's eval-mode outputs. Each layer becomes:

==================  ==========================================================
minidl              ONNX (opset 17)
==================  ==========================================================
Conv2D              ``Conv`` (explicit asymmetric ``pads``, so TF-style 'same'
                    with stride > 1 too); padding_mode reflect / replicate:
                    ``Pad`` (reflect / edge) then ``Conv``; circular: ``Slice``
                    + ``Concat`` per axis (opset 17 has no ``wrap`` mode)
MaxPool2D           ``MaxPool`` (pads, dilations; ceil_mode as explicit extra pads,
                    PyTorch's rule, which onnx's shape inference does not follow;
                    a ``-inf`` ``Pad`` first when a pad reaches the kernel size,
                    which onnxruntime refuses)
AvgPool2D           ``AveragePool`` (count_include_pad: a zero ``Pad`` first, so
                    ceil_mode's extra pads stay out of the divisor, as in PyTorch)
GlobalAvgPool2D     ``GlobalAveragePool``
Dense               ``Gemm`` (transB=1)
Flatten             ``Flatten`` (axis 1), else ``Reshape``
activations         ``Relu``, ``LeakyRelu``, ``Sigmoid``, ``Tanh``, ``Identity``,
                    ``Softmax`` (axis); GELU from ``Erf`` (or ``Tanh``), ``Mul``, ``Add``
BatchNorm1D/2D      ``BatchNormalization`` with the running statistics
Dropout/Dropout2D   ``Identity`` (eval form)
Graph, Add, Concat  the nodes in order, ``Sum``, ``Concat``
==================  ==========================================================

:func:`from_onnx` reads back what :func:`to_onnx` wrote (the minidl architecture rides in
the model's metadata, the weights are its initializers); it does not import other ONNX models.

onnx and onnxruntime are optional: ``pip install -e ".[onnx]"``.
"""

from __future__ import annotations

import json
import os
import stat

import numpy as np

from .. import layers as L
from ..functional.geometry import resolve_padding
from ..functional.pool import pool_geometry
from ..graph import INPUT, Graph, layer_state_restored
from ..io import MAX_LOAD_BYTES, archive
from ..io.architecture import REGISTRY, build, check_spec, json_default, spec_of
from ..parameter import deferred_init

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
        built-in layer; see the module's table for the layers supported.
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
    dtype = _model_dtype(model)
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
    """Read back a model written by :func:`to_onnx`: same architecture, same state, bit for bit.

    The file is treated as untrusted, as :func:`minidl.load` treats a model file: it
    must be a regular file of at most ``max_bytes``; the architecture in its metadata
    is rebuilt without allocating any weight; every initializer's declared type, shape
    and stored length are checked against that architecture (and their total against
    ``max_bytes``) before any array is made. External data is never followed: minidl
    never writes it, so an initializer stored outside the file is refused.

    Parameters
    ----------
    path : str or os.PathLike
        An ONNX file exported by minidl (it carries the minidl architecture in its
        metadata; the weights and running statistics are its initializers).
    max_bytes : int or None, default ``minidl.io.MAX_LOAD_BYTES`` (2 GiB)
        Refuse files, and architectures whose arrays, taking more bytes; checked
        before reading them. None lifts the limit.

    Returns
    -------
    minidl Layer
        The model in eval mode (the form that was exported); its ``state_dict()``
        equals the exported model's exactly.

    Raises
    ------
    FileNotFoundError
        When ``path`` does not exist.
    ValueError
        Naming ``path``, for anything else that is not a minidl export: not a regular
        file, larger than ``max_bytes``, not ONNX, an ONNX model not exported by minidl
        (arbitrary ONNX graphs are not imported), metadata that does not describe a
        model, initializers that do not match its architecture or are stored externally.

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
    if _ARCH_KEY not in props:
        raise ValueError(f"it was not written by minidl.export.to_onnx (no {_ARCH_KEY!r} metadata). Only "
                         "minidl's own exports can be read back; rebuild other models in minidl and copy their "
                         "weights with load_state_dict.")
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
        emitter = _EMITTERS.get(type(layer))
        if emitter is None:
            raise TypeError(
                f"to_onnx: {where} is a {type(layer).__module__}.{type(layer).__qualname__} ({layer!r}), which "
                f"has no ONNX form here. Supported: Sequential, Graph and the built-in layers "
                f"{', '.join(L.__all__[1:])}. Replace it, or export its parts."
            )
        if isinstance(layer, (L.BatchNorm1D, L.BatchNorm2D)) and layer.running_mean is None:
            raise TypeError(f"to_onnx: {where} ({layer!r}) has track_running_stats=False: its eval form uses "
                            "the batch's statistics, which ONNX's BatchNormalization cannot. Train it with "
                            "track_running_stats=True.")
        out = layer.forward(*values)
        return emitter(self, layer, names, values[0].shape, prefix, where), out

    def _emit_graph(self, graph, names, values, prefix, where):
        known = {INPUT: (names[0], values[0])}
        for node in graph.execution_plan():
            child, inputs = graph.nodes[node]
            sub = f"{prefix}.{node}" if prefix else node
            known[node] = self.emit(child, [known[i][0] for i in inputs], [known[i][1] for i in inputs],
                                    sub, f"{where}[{node!r}]" if type(graph) is Graph else f"{where}[{node}]")
        return known[graph.output_name]


def _pairs(pads):
    (pt, pb), (pl, pr) = pads
    return [int(pt), int(pl), int(pb), int(pr)]


def _conv(b, layer, names, in_shape, prefix, where):
    pads = resolve_padding(layer.padding, in_shape[2:], layer.kernel_size, layer.stride, layer.dilation)
    x = names[0]
    if layer.padding_mode != "zeros" and any(_pairs(pads)):
        x = _pad(b, x, pads, layer.padding_mode, in_shape, prefix)
        pads = ((0, 0), (0, 0))
    inputs = [x, b.const(prefix, "weight", layer.weight.data)]
    if layer.bias is not None:
        inputs.append(b.const(prefix, "bias", layer.bias.data))
    return b.node("Conv", inputs, prefix, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  dilations=list(layer.dilation), group=layer.groups, pads=_pairs(pads))


def _pad(b, x, pads, mode, in_shape, prefix):
    if mode in ("reflect", "replicate"):
        (pt, pb), (pl, pr) = pads
        amounts = b.const(prefix, "pads", [0, 0, pt, pl, 0, 0, pb, pr], np.int64)
        return b.node("Pad", [x, amounts], prefix, mode="reflect" if mode == "reflect" else "edge")
    for axis, (before, after) in ((2, pads[0]), (3, pads[1])):  # circular: [x[-before:], x, x[:after]]
        n, parts = in_shape[axis], []
        for start, end, amount in ((n - before, n, before), (0, after, after)):
            if amount:
                ids = [b.const(prefix, "slice", [v], np.int64) for v in (start, end, axis)]
                parts.append(b.node("Slice", [x, *ids], prefix))
        parts.insert(1 if before else 0, x)
        if len(parts) > 1:
            x = b.node("Concat", parts, prefix, axis=axis)
    return x


def _maxpool(b, layer, names, in_shape, prefix, where):
    # explicit pads, ceil_mode's extra bottom/right rows included (PyTorch's rule, which drops a
    # window starting in the right padding); MaxPool's padding never wins a window
    geo = pool_geometry(in_shape[2:], layer.kernel_size, layer.stride, layer.padding, where, layer.dilation,
                        layer.ceil_mode)
    x, pads, (kh, kw) = names[0], _pairs(geo.pads), layer.kernel_size
    if max(pads[0], pads[2]) >= kh or max(pads[1], pads[3]) >= kw:
        # onnxruntime refuses a pad as large as the kernel (ceil_mode's extra with a dilation can be):
        # pad with -inf first, which never wins a window either, then pool without pads
        (pt, pb), (pl, pr) = geo.pads
        amounts = b.const(prefix, "pads", [0, 0, pt, pl, 0, 0, pb, pr], np.int64)
        x, pads = b.node("Pad", [x, amounts, b.const(prefix, "pad_value", -np.inf)], prefix), [0, 0, 0, 0]
    return b.node("MaxPool", [x], prefix, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  dilations=list(layer.dilation), pads=pads)


def _avgpool(b, layer, names, in_shape, prefix, where):
    # PyTorch's divisor counts the zero padding (count_include_pad) but never ceil_mode's extra
    # rows: pad with zeros explicitly, then pool with the extra as uncounted padding
    ph, pw = layer.padding
    geo = pool_geometry(in_shape[2:], layer.kernel_size, layer.stride, (ph, pw), where, 1, layer.ceil_mode)
    (_, eh), (_, ew) = geo.pads
    eh, ew, x = eh - ph, ew - pw, names[0]
    if layer.count_include_pad and (ph or pw):
        x = b.node("Pad", [x, b.const(prefix, "pads", [0, 0, ph, pw, 0, 0, ph, pw], np.int64)], prefix)
        ph = pw = 0
    return b.node("AveragePool", [x], prefix, kernel_shape=list(layer.kernel_size), strides=list(layer.stride),
                  pads=[ph, pw, ph + eh, pw + ew], count_include_pad=0)


def _dense(b, layer, names, in_shape, prefix, where):
    inputs = [names[0], b.const(prefix, "weight", layer.weight.data)]
    if layer.bias is not None:
        inputs.append(b.const(prefix, "bias", layer.bias.data))
    return b.node("Gemm", inputs, prefix, transB=1)


def _flatten(b, layer, names, in_shape, prefix, where):
    if layer.start_dim == 1:
        return b.node("Flatten", names, prefix, axis=1)
    shape = b.const(prefix, "shape", [0] * layer.start_dim + [-1], np.int64)
    return b.node("Reshape", [names[0], shape], prefix)


def _model_dtype(model):
    """The dtype of the model's first parameter, else of its first floating-point buffer (a
    BatchNorm with affine=False has no parameter), else float32."""
    params = model.parameters()
    if params:
        return np.dtype(params[0].data.dtype)
    floats = [np.dtype(v.dtype) for v in model.state_dict().values() if np.issubdtype(np.asarray(v).dtype, np.floating)]
    return floats[0] if floats else np.dtype(np.float32)


def _batchnorm(b, layer, names, in_shape, prefix, where):
    c = layer.num_features
    scale = layer.weight.data if layer.affine else np.ones(c, layer.running_mean.dtype)  # ONNX needs both
    bias = layer.bias.data if layer.affine else np.zeros(c, layer.running_mean.dtype)
    inputs = [names[0], b.const(prefix, "weight", scale), b.const(prefix, "bias", bias),
              b.const(prefix, "running_mean", layer.running_mean),
              b.const(prefix, "running_var", layer.running_var)]
    return b.node("BatchNormalization", inputs, prefix, epsilon=float(layer.eps))


def _gelu(b, layer, names, in_shape, prefix, where):
    x = names[0]
    if layer.approximate == "tanh":  # 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
        cube = b.node("Mul", [b.node("Mul", [x, x], prefix), x], prefix)
        inner = b.node("Add", [x, b.node("Mul", [cube, b.const(prefix, "c", 0.044715)], prefix)], prefix)
        t = b.node("Tanh", [b.node("Mul", [inner, b.const(prefix, "k", np.sqrt(2 / np.pi))], prefix)], prefix)
    else:  # 0.5 x (1 + erf(x / sqrt(2)))
        t = b.node("Erf", [b.node("Div", [x, b.const(prefix, "sqrt2", np.sqrt(2.0))], prefix)], prefix)
    one = b.node("Add", [t, b.const(prefix, "one", 1.0)], prefix)
    return b.node("Mul", [b.node("Mul", [x, b.const(prefix, "half", 0.5)], prefix), one], prefix)


def _simple(op, **attrs):
    def emit(b, layer, names, in_shape, prefix, where):
        return b.node(op, names, prefix, **{k: getattr(layer, v) if isinstance(v, str) else v
                                            for k, v in attrs.items()})
    return emit


_EMITTERS = {
    L.Conv2D: _conv, L.MaxPool2D: _maxpool, L.AvgPool2D: _avgpool, L.Dense: _dense, L.Flatten: _flatten,
    L.BatchNorm1D: _batchnorm, L.BatchNorm2D: _batchnorm, L.GELU: _gelu,
    L.GlobalAvgPool2D: _simple("GlobalAveragePool"), L.ReLU: _simple("Relu"), L.Sigmoid: _simple("Sigmoid"),
    L.Tanh: _simple("Tanh"), L.Identity: _simple("Identity"), L.Dropout: _simple("Identity"),
    L.Dropout2D: _simple("Identity"), L.Add: _simple("Sum"), L.LeakyReLU: _simple("LeakyRelu", alpha="negative_slope"),
    L.Softmax: _simple("Softmax", axis="axis"), L.Concat: _simple("Concat", axis="axis"),
}
