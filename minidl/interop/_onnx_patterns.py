"""Patterns of ONNX ops read as one layer by :mod:`minidl.interop.onnx_import` (torch writes SiLU as
``x * Sigmoid(x)`` before ONNX had the op). The patterns live in the layers' own files, as the class
attribute ``onnx_patterns`` (see :attr:`minidl.layers.Layer.onnx_patterns`); this module only matches them.

A pattern is matched from its last step (the node computing the layer's output) back through the
producers of its inputs, ``Add`` and ``Mul`` in either order. It is fused only when every value inside it
is used by the pattern alone (an intermediate value used elsewhere keeps the nodes apart, and the
importer then refuses the ops it has no layer for)."""

from __future__ import annotations

import numpy as np

from ..layers.registry import REGISTRY
from ._onnx_ops import _node_name, constant
from ._onnx_tensors import ImportRefused

__all__ = ["patterns", "pattern_ops", "find", "add_fused"]

_COMMUTATIVE = ("Add", "Mul")
_RTOL = 1e-6  # torch stores the constants in float32 (sqrt(2) as 1.4142135381698608)


def patterns():
    """``[(class, kwargs, steps)]`` of every registered class declaring ``onnx_patterns``, longest first."""
    found = [(cls, kwargs, steps) for cls in REGISTRY.values() for kwargs, steps in vars(cls).get("onnx_patterns", ())]
    return sorted(found, key=lambda p: -len(p[2]))


def pattern_ops():
    """The ONNX ops appearing in some pattern, with the layers whose patterns hold them."""
    ops = {}
    for cls, _, steps in patterns():
        for step in steps:
            ops.setdefault(step[0], [])
            if cls.__name__ not in ops[step[0]]:
                ops[step[0]].append(cls.__name__)
    return ops


def find(imp):
    """``({root node index: (class, kwargs, x)}, {inner node indices})`` of the patterns in the graph.

    Constant nodes are read first (they have no inputs, so their place does not matter): the patterns'
    scalars are compared with them.
    """
    nodes = list(imp.graph.node)
    for i, node in enumerate(nodes):
        if node.op_type == "Constant":
            constant(imp, node, imp._attrs(node, imp._known(node, i)), imp._where(node, i))
    ctx = _Context(imp, nodes)
    fused, claimed = {}, set()
    for root, node in enumerate(nodes):
        for cls, kwargs, steps in patterns():
            if node.op_type != steps[-1][0]:
                continue
            state = next((s for s in _bind(ctx, steps, len(steps) - 1, root, {}) if ctx.private(s, root)), None)
            if state is None:
                continue
            members = {v for k, v in state.items() if k != "x"}
            if members & claimed:
                continue
            claimed |= members
            fused[root] = (cls, kwargs, state["x"])
            break
    return fused, claimed - set(fused)


def add_fused(imp, node, index, cls, kwargs, x):
    """Add the layer of a matched pattern, computing on ``x``, as the node computing the pattern's output."""
    where = imp._where(node, index)
    if x not in imp.tensors and x not in imp.pending:
        raise ImportRefused(where, f"{cls.__name__}'s input {x!r} is a constant or computed by no earlier node")
    imp._add(_node_name(node, cls.__name__.lower()), cls(**kwargs), [imp._tensor(x, where)], where, node.output[0])


class _Context:
    def __init__(self, imp, nodes):
        self.imp, self.nodes = imp, nodes
        self.producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}

    def attrs_match(self, index, wanted):
        if not wanted:
            return True
        node = self.nodes[index]
        attrs = self.imp._attrs(node, self.imp._known(node, index))
        return all(np.isclose(attrs.get(k, np.nan), v, rtol=_RTOL, atol=0) for k, v in wanted.items())

    def private(self, state, root):
        """Whether every value computed inside the match (the root's output aside) is used by it alone."""
        members = [v for k, v in state.items() if k != "x"]
        for i in members:
            if i == root:
                continue
            outs = [o for o in self.nodes[i].output if o]
            inside = sum(list(self.nodes[j].input).count(o) for j in members for o in outs)
            if sum(self.imp.uses.get(o, 0) for o in outs) != inside:
                return False
        return True


def _bind(ctx, steps, k, index, state):
    """Yield the states (``"x"``: the input's name, step -> node index) in which step ``k`` is node ``index``."""
    if k in state:
        if state[k] == index:
            yield state
        return
    if index in (v for key, v in state.items() if key != "x"):
        return
    op, *args = steps[k]
    wanted = args.pop() if args and isinstance(args[-1], dict) else {}
    node = ctx.nodes[index]
    if node.op_type != op or len(node.input) != len(args) or not ctx.attrs_match(index, wanted):
        return
    orders = [args, args[::-1]] if op in _COMMUTATIVE and len(args) == 2 else [args]
    for order in orders:
        yield from _inputs(ctx, steps, list(zip(order, node.input)), {**state, k: index})


def _inputs(ctx, steps, pairs, state):
    if not pairs:
        yield state
        return
    (arg, name), rest = pairs[0], pairs[1:]
    if arg == "x":
        if state.get("x", name) == name and name not in ctx.imp.consts:
            yield from _inputs(ctx, steps, rest, {**state, "x": name})
    elif isinstance(arg, float):
        value = ctx.imp.consts.get(name)
        if value is not None and value.size == 1 and np.isclose(float(value.reshape(-1)[0]), arg, rtol=_RTOL, atol=0):
            yield from _inputs(ctx, steps, rest, state)
    elif name in ctx.producer:
        for bound in _bind(ctx, steps, arg, ctx.producer[name], state):
            yield from _inputs(ctx, steps, rest, bound)
