"""The structural ONNX ops of :mod:`minidl.interop.onnx_import`: they make no layer of their own, or one
from two nodes. Each takes the importer, the node, its attributes (defaults filled in) and ``where`` (the
node, op and opset, for messages) and returns True when it handled the node."""

from __future__ import annotations

import re

import numpy as np

from ..layers.base import OnnxNode, Unsupported
from ..layers.registry import REGISTRY
from ._onnx_tensors import ImportRefused, tensor_array

__all__ = ["fold", "FOLDED", "constant", "identity", "shape", "add", "matmul", "pad", "flatten", "reshape",
           "materialise",
           "merge_pad"]


#: Ops computed at import time when every input is a constant (torch.onnx.export writes them for a Pad's
#: amounts), with onnx's reference evaluator, on at most _FOLD_SIZE values in and out.
FOLDED = ("ConstantOfShape", "Concat", "Reshape", "Slice", "Transpose", "Cast", "Unsqueeze", "Squeeze", "Identity")
_FOLD_SIZE = 2**16


def fold(imp, node, where):
    """A node of constants, as the constant it computes (small integer or float arrays only)."""
    from onnx import helper, numpy_helper
    from onnx.reference import ReferenceEvaluator
    values = [imp.consts[n] for n in node.input if n]
    if any(v.size > _FOLD_SIZE for v in values) or (node.op_type == "ConstantOfShape" and (
            values[0].ndim != 1 or np.any(values[0] < 0) or np.prod(values[0], dtype=object) > _FOLD_SIZE)):
        raise ImportRefused(where, f"it computes on constants of more than {_FOLD_SIZE:,} values; minidl folds "
                            "only small constants (shapes, pad amounts)")
    names = [n for n in node.input if n]
    inputs = [helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(v.dtype), v.shape)
              for n, v in zip(names, values)]
    graph = helper.make_graph([node], "fold", inputs, [helper.make_empty_tensor_value_info(node.output[0])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", imp.opset)])
    try:
        (out,) = ReferenceEvaluator(model).run([node.output[0]], dict(zip(names, values)))
    except Exception as exc:  # the reference evaluator's own errors: untrusted input
        raise ImportRefused(where, f"its constants cannot be folded: {exc}") from None
    imp.consts[node.output[0]] = np.array(numpy_helper.to_array(numpy_helper.from_array(np.asarray(out))))
    if imp.from_shape.intersection(names):
        imp.from_shape.add(node.output[0])


def constant(imp, node, attrs, where):
    """``Constant``: an array, read as a shape, a pad amount or a weight by its consumers."""
    if "value" in attrs:
        value = tensor_array(imp.onnx, attrs["value"], f"the value of {where}")
    elif {"value_float", "value_floats"} & set(attrs):
        value = np.array(attrs.get("value_float", attrs.get("value_floats")), np.float32)
    elif {"value_int", "value_ints"} & set(attrs):
        value = np.array(attrs.get("value_int", attrs.get("value_ints")), np.int64)
    else:
        raise ImportRefused(where, f"a Constant given as {sorted(attrs)} (sparse or strings) is not supported")
    imp.consts[node.output[0]] = value
    return True


def identity(imp, node, attrs, where):
    """``Identity``: the same constant, or the same Graph node (no layer)."""
    (name,) = node.input
    if name in imp.consts:
        imp.consts[node.output[0]] = imp.consts[name]
        if name in imp.from_shape:
            imp.from_shape.add(node.output[0])
    else:
        imp.tensors[node.output[0]] = imp._tensor(name, where)
    return True


def shape(imp, node, attrs, where):
    """``Shape`` of a tensor computed at run time: its shape for a batch of one, a constant whose batch entry
    is the batch only where minidl knows it is: as a ``Resize``'s sizes (torch's ``nn.Upsample(size=...)``:
    ``Concat(Slice(Shape(x), 0, 2), (H, W))``); any other consumer refuses it."""
    src = imp._tensor(node.input[0], where) if node.input[0] not in imp.consts else None
    if src is None:
        raise ImportRefused(where, "a Shape of a constant: fold it first (onnx-simplifier)")
    dims = np.array(imp.values[src].shape, np.int64)
    imp.consts[node.output[0]] = dims[attrs.get("start", 0):attrs.get("end", len(dims))]
    imp.from_shape.add(node.output[0])
    return True


def add(imp, node, attrs, where):
    """``Add``: of two tensors, the layer of ``Sum``; of a MatMul and a constant, a Dense with that bias."""
    a, b = node.input
    if a in imp.consts and b in imp.consts:
        raise ImportRefused(where, "it adds two constants; fold them first (onnx-simplifier)")
    if a not in imp.consts and b not in imp.consts:
        imp._layer("Sum", node, {}, where)
        return True
    x, bias = (a, imp.consts[b]) if b in imp.consts else (b, imp.consts[a])
    entry = imp.pending.get(x)
    if entry is None or entry[0] != "matmul" or imp.uses.get(x, 0) != 1:
        raise ImportRefused(where, "an Add of a tensor and a constant is read only as the bias after a MatMul "
                            "(MatMul + Add: one Dense); minidl has no layer adding a constant")
    imp.pending.pop(x)
    _dense(imp, entry, bias, where, node.output[0])
    return True


def _dense(imp, entry, bias, where, out):
    _, x, weight, name = entry
    src = imp._tensor(x, where)
    spec = OnnxNode("Gemm", {"alpha": 1.0, "beta": 1.0, "transA": 0, "transB": 0}, (None, weight, bias), 1,
                    imp.values[src].shape, 1, imp.opset)
    imp._add(name, build_layer(_classes()["Gemm"], spec, where), [src], where, out)


def matmul(imp, node, attrs, where):
    """``MatMul`` of a 2-D tensor by a constant 2-D weight: kept until its consumer (an Add: the bias)."""
    x, w = node.input
    if x in imp.consts or w not in imp.consts or imp.consts[w].ndim != 2 or \
            imp.values[imp._tensor(x, where)].ndim != 2:
        raise ImportRefused(where, "a MatMul is read only as x @ W with x of shape (N, features) computed at run "
                            "time and W a constant 2-D weight (a Dense)")
    imp.pending[node.output[0]] = ("matmul", x, imp.consts[w], _node_name(node, "matmul"))
    return True


def pad(imp, node, attrs, where):
    """``Pad`` with zeros of H and W: kept until its consumer, which must be a Conv (merged into its pads)."""
    names = list(node.input) + ["", ""]
    x, amounts, value, axes = names[:4]
    src = imp._tensor(x, where) if x not in imp.consts else None
    rank = None if src is None else imp.values[src].ndim
    if src is None or amounts not in imp.consts or (value and value not in imp.consts) or \
            (axes and axes not in imp.consts) or attrs.get("mode", "constant") != "constant" or rank != 4 or \
            amounts in imp.from_shape:
        raise ImportRefused(where, "a Pad is read only with zeros (mode 'constant'), constant amounts, on an "
                            "(N, C, H, W) tensor, directly before a Conv")
    amounts = imp.consts[amounts].astype(np.int64).reshape(-1)
    full = np.zeros(8, np.int64)
    axes = [a % 4 for a in imp.consts[axes].reshape(-1)] if axes else list(range(4))
    if len(amounts) != 2 * len(axes):
        raise ImportRefused(where, f"its pads {amounts.tolist()} do not match its {len(axes)} axes")
    full[axes], full[[a + 4 for a in axes]] = amounts[:len(axes)], amounts[len(axes):]
    if (value and np.any(imp.consts[value])) or full[[0, 1, 4, 5]].any() or (full < 0).any():
        raise ImportRefused(where, f"a Pad with value {imp.consts[value] if value else 0} and pads {full.tolist()} "
                            "is not supported: only zeros on H and W, before a Conv")
    imp.pending[node.output[0]] = ("pad", x, full, _node_name(node, "pad"))
    return True


def merge_pad(imp, name, attrs, where):
    """``(input name, attrs)`` of a Conv reading a pending Pad, the Pad's amounts added to its own pads."""
    kind, x, full, _ = imp.pending[name]
    if kind != "pad" or imp.uses.get(name, 0) != 1 or attrs.get("auto_pad", "NOTSET") != "NOTSET":
        return name, attrs  # the importer materialises it (a MatMul) or refuses it (a Pad used twice)
    imp.pending.pop(name)
    own = list(attrs.get("pads") or [0, 0, 0, 0])
    pads = [own[0] + full[2], own[1] + full[3], own[2] + full[6], own[3] + full[7]]
    return x, {**attrs, "pads": [int(p) for p in pads]}


def materialise(imp, name, where):
    """A pending node whose consumer does not merge it: a MatMul becomes a Dense without bias; a Pad is refused."""
    entry = imp.pending.pop(name)
    if entry[0] == "pad":
        raise ImportRefused(where, f"it reads the output of a Pad ({entry[3]!r}); a Pad is read only directly "
                            "before a Conv (merged into its pads)")
    _dense(imp, entry, None, where, name)


def flatten(imp, node, attrs, where):
    """``Flatten`` at axis 1 (or its negative): Flatten, nothing for a 2-D input; other axes merge the batch."""
    src = imp._tensor(node.input[0], where)
    rank = imp.values[src].ndim
    axis = attrs.get("axis", 1) + (rank if attrs.get("axis", 1) < 0 else 0)
    if axis != 1:
        raise ImportRefused(where, f"a Flatten at axis {attrs.get('axis')} of a {rank}-D input merges the batch "
                            "axis into others; minidl reads Flatten only at axis 1 (the batch kept)")
    _keep_or_flatten(imp, node, src, 1, where)
    return True


def _keep_or_flatten(imp, node, src, start, where):
    if start >= imp.values[src].ndim - 1:
        imp.tensors[node.output[0]] = src  # nothing to flatten
    else:
        imp._add(_node_name(node, "flatten"), REGISTRY["Flatten"](start_dim=start), [src], where, node.output[0])


def reshape(imp, node, attrs, where):
    """``Reshape`` that keeps the batch axis and flattens the last axes (Flatten), or changes nothing."""
    x, shape = node.input
    src = imp._tensor(x, where) if x not in imp.consts else None
    if src is None or shape not in imp.consts or shape in imp.from_shape:
        raise ImportRefused(where, "a Reshape is read only with a constant target shape on a tensor computed at "
                            "run time (a shape computed from Shape/Gather is not supported: use torch.flatten)")
    target, sample = [int(s) for s in imp.consts[shape].reshape(-1)], imp.values[src].shape[1:]
    size = int(np.prod(sample))
    if attrs.get("allowzero", 0) and 0 in target:
        raise ImportRefused(where, "a Reshape with allowzero=1 and a 0 in its shape is not supported")
    rest = [sample[i - 1] if t == 0 and i - 1 < len(sample) else t for i, t in enumerate(target[1:], 1)]
    known = int(np.prod([r for r in rest if r != -1]))
    if target[0] in (0, imp.batch) and rest.count(-1) == 1 and known and size % known == 0:
        rest[rest.index(-1)] = size // known
    keeps = target and (target[0] in (0, -1) or target[0] == imp.batch) and -1 not in rest and \
        int(np.prod(rest)) == size
    if not keeps:
        raise ImportRefused(where, f"a Reshape to {target} of an input of shape (N, {', '.join(map(str, sample))}) "
                            "merges or splits the batch axis; minidl reads Reshape only when it keeps the batch axis")
    start = next((k for k in range(len(sample)) if list(sample[:k]) + [int(np.prod(sample[k:]))] == rest),
                 None)
    if tuple(rest) == tuple(sample):
        imp.tensors[node.output[0]] = src
    elif start is None:
        raise ImportRefused(where, f"a Reshape of (N, {', '.join(map(str, sample))}) to (N, "
                            f"{', '.join(map(str, rest))}) is not supported: minidl reads Reshape only as a Flatten "
                            "of the last axes (or a no-op)")
    else:
        _keep_or_flatten(imp, node, src, start + 1, where)
    return True


def _node_name(node, op):
    """A Graph node name from an ONNX node's (torch writes ``/layer1/conv/Conv``): ``layer1_conv_Conv``."""
    name = re.sub(r"[^0-9A-Za-z_]+", "_", node.name or "").strip("_")[:100]
    return name or op.lower()


def _classes():
    """``{ONNX op: [registered classes]}`` from the ``onnx_op`` and ``onnx_imports`` each class declares
    in its own body, in registration order: the importer asks each in turn (Conv2D reads 2-D ``Conv``;
    a Conv1D declaring ``Conv`` too would read the 1-D ones Conv2D refuses)."""
    found = {}
    for cls in REGISTRY.values():
        ops = ((vars(cls).get("onnx_op"),) if "onnx_op" in vars(cls) else ()) + vars(cls).get("onnx_imports", ())
        for op in ops:
            if op and op != "Identity":  # Identity is structural: no node
                found.setdefault(op, []).append(cls)
    return found


def build_layer(classes, spec, where):
    """The layer of the first class whose ``from_onnx_node`` reads ``spec``; else Unsupported with every reason."""
    reasons = []
    for cls in classes:
        try:
            return cls.from_onnx_node(spec)
        except Unsupported as exc:
            reasons.append((cls.__name__, str(exc)))
        except (ValueError, TypeError) as exc:  # the layer's constructor refused an attribute
            raise ImportRefused(where, f"minidl's {cls.__name__} cannot take it: {exc}") from None
    if len(reasons) == 1:
        raise Unsupported(reasons[0][1])
    raise Unsupported("(" + "; ".join(f"as {name}: {why}" for name, why in reasons) + ")")
