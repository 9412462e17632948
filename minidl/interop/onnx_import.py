"""Read ONNX models minidl did not write (``torch.onnx.export`` of a CNN, say) into a minidl Graph that trains.

:func:`minidl.export.from_onnx` calls :func:`import_model` for a file without minidl's metadata.
It walks the ONNX graph in its (topological) order and makes one Graph node per ONNX node:

- a layer op is read by the registered class that declares it, with the recipe in the layer's own
  file (:meth:`~minidl.layers.Layer.from_onnx_node`: ``onnx_op`` or ``onnx_imports``; Conv2D reads
  ``Conv``, Dense ``Gemm``, BatchNorm ``BatchNormalization``, ...); this module keeps no list of layers;
- the structural ops live here: ``Constant`` and ``Identity`` of constants (read as arrays), ``Shape``
  (a constant read only as a Resize's sizes, as torch writes ``nn.Upsample(size=...)``),
  ``Identity`` (no node), ``Add`` of two tensors (the class of ``Sum``), ``MatMul`` followed by ``Add``
  (a Gemm: Dense), ``Pad`` of zeros directly before a ``Conv`` (merged into its pads), and ``Flatten``/
  ``Reshape`` that keep the batch axis (Flatten, or nothing for a no-op);
- the patterns the layers declare in their own files (``onnx_patterns``: SiLU reads ``x * Sigmoid(x)``,
  GELU torch's Erf and Tanh forms, Mish ``x * Tanh(Softplus(x))``, Hardswish ``x * HardSigmoid(x)``) are
  found first (:mod:`._onnx_patterns`) and each becomes one layer, unless a value inside is used elsewhere.

Initializers become trainable Parameters; constants feeding Reshape/Pad are read as shapes. Every
node is checked on a batch of one zeros as it is added, so a graph minidl cannot compute is refused
at the node that breaks it. The file is untrusted: only the default ONNX domain at opsets 13 to the
installed onnx's newest, one input and one output, initializers checked (type, declared and stored
size, no external data) before any array is made. A refusal is an :class:`ImportRefused` naming the
node, its op and the opset.
"""

from __future__ import annotations

from ..graph import INPUT, Graph
from ..layers.base import OnnxNode, Unsupported
from ..layers.registry import REGISTRY
from . import _onnx_ops as S
from . import _onnx_patterns as P
from ._onnx_ops import _classes, _node_name
from ._onnx_tensors import ImportRefused, check_budget, input_probe, tensor_array

__all__ = ["import_model", "supported_ops", "ImportRefused", "MIN_OPSET"]

#: The oldest opset of the default ONNX domain read (Softmax's and Reshape's current meanings).
MIN_OPSET = 13
_DOMAINS = ("", "ai.onnx")
_STRUCTURAL = ("Constant", "Identity", "Shape", "Add", "MatMul", "Pad", "Flatten", "Reshape")


def import_model(proto, onnx, max_bytes):
    """The minidl Graph computing an ONNX model, its initializers as Parameters.

    Parameters
    ----------
    proto : onnx.ModelProto
    onnx : module
        The onnx package.
    max_bytes : int or None
        Refuse initializers and constants taking more bytes in all.

    Returns
    -------
    Graph
        In training mode, one node per ONNX op that computes something.

    Raises
    ------
    ImportRefused
        Naming the node (op, opset) or the model part minidl cannot read.

    Examples
    --------
    >>> model = import_model(onnx.load("cnn.onnx"), onnx, 2**31)  # doctest: +SKIP
    """
    opset = _opset(proto, onnx)
    return _Importer(proto.graph, onnx, opset, max_bytes).run()


def _opset(proto, onnx):
    newest = onnx.defs.onnx_opset_version()
    versions = [o.version for o in proto.opset_import if o.domain in _DOMAINS]
    if not versions:
        raise ImportRefused("the model", "it imports no opset of the default ONNX domain")
    if not MIN_OPSET <= versions[0] <= newest:
        raise ImportRefused("the model", f"its opset is {versions[0]}; minidl reads opsets {MIN_OPSET} to {newest}. "
                            "Export it again with opset_version=17 (torch.onnx.export) or convert it with "
                            "onnx.version_converter")
    return versions[0]


class _Importer:
    def __init__(self, graph, onnx, opset, max_bytes):
        self.graph, self.onnx, self.opset, self.max_bytes = graph, onnx, opset, max_bytes
        self.model, self.names = Graph(), set()
        self.consts = {}  # ONNX name -> array (initializers, Constant nodes and what folds from them)
        self.tensors = {}  # ONNX name -> the Graph node computing it (or INPUT)
        self.values = {}  # Graph node name (or INPUT) -> its value for a batch of one zeros
        self.pending = {}  # ONNX name -> ("matmul" | "pad", input name, array): merged into their consumer
        self.from_shape = set()  # names of consts computed from a Shape (their batch entry is 1, the probe's)
        self.uses = {}
        for node in graph.node:
            for name in node.input:
                self.uses[name] = self.uses.get(name, 0) + 1
        for out in graph.output:
            self.uses[out.name] = self.uses.get(out.name, 0) + 1

    def run(self):
        if len(self.graph.sparse_initializer):
            raise ImportRefused("the model", "it has sparse initializers, which minidl does not read")
        check_budget(self.graph, self.max_bytes)
        for i, node in enumerate(self.graph.node):  # the first op minidl does not read, before anything else
            self._known(node, i)
        for t in self.graph.initializer:
            if t.name in self.consts:
                raise ImportRefused("the model", f"two initializers are named {t.name!r}")
            self.consts[t.name] = tensor_array(self.onnx, t, f"the initializer {t.name!r}")
        inputs = [i for i in self.graph.input if i.name not in self.consts]
        if len(inputs) != 1 or len(self.graph.output) != 1:
            raise ImportRefused("the model", f"it has {len(inputs)} inputs and {len(self.graph.output)} outputs; "
                                "minidl imports models with one input (the batch) and one output")
        self.tensors[inputs[0].name], self.values[INPUT] = INPUT, input_probe(inputs[0], self.max_bytes)
        self.batch = inputs[0].type.tensor_type.shape.dim[0].dim_value or None  # a fixed batch size, if declared
        fused, inside = P.find(self)  # the layers' patterns (SiLU: x * Sigmoid(x)), each one layer
        for i, node in enumerate(self.graph.node):
            if i in fused:
                P.add_fused(self, node, i, *fused[i])
            elif i not in inside:
                self._node(node, i)
        out = self.graph.output[0].name
        if out in self.pending:
            self._materialise(out, "the model's output")
        if out not in self.tensors:
            raise ImportRefused("the model", f"its output {out!r} is a constant or is never computed")
        src = self.tensors[out]
        if src == INPUT:  # the model is the identity
            self._add("identity", REGISTRY["Identity"](), [INPUT], "the model's output")
            src = "identity"
        self.model.set_output(src)
        return self.model

    # ----------------------------------------------------------------- one node
    def _where(self, node, index):
        return f"node {node.name or f'#{index}'!r} (op {node.op_type}, opset {self.opset})"

    def _known(self, node, index):
        """The node's schema, after checking its domain and that minidl reads its op."""
        op, where = node.op_type, self._where(node, index)
        if node.domain not in _DOMAINS:
            raise ImportRefused(where, f"its domain is {node.domain!r}; minidl reads only the default ONNX domain")
        if op not in supported_ops():
            raise ImportRefused(where, f"{op} is not supported. minidl reads {', '.join(supported_ops())}. "
                                "Replace the op in the model, or build the model in minidl and copy its weights")
        try:
            return self.onnx.defs.get_schema(op, self.opset, "")
        except Exception:  # onnx's SchemaError: no such op at this opset
            raise ImportRefused(where, f"{op} is not an op of the default ONNX domain at opset {self.opset}") from None

    def _node(self, node, index):
        op, where = node.op_type, self._where(node, index)
        attrs = self._attrs(node, self._known(node, index))
        for name in node.input:
            if name and name not in self.consts and name not in self.tensors and name not in self.pending:
                raise ImportRefused(where, f"its input {name!r} is computed by no earlier node (not in "
                                    "topological order, or missing)")
        if op in S.FOLDED and node.input and all(not n or n in self.consts for n in node.input):
            S.fold(self, node, where)  # torch computes a Pad's amounts from constants: fold them
            return
        try:
            if op in _STRUCTURAL and self._structural(op, node, attrs, where):
                return
            self._layer(op, node, attrs, where)
        except Unsupported as exc:
            raise ImportRefused(where, f"this form of {op} is not supported: {op} {exc}") from None

    def _attrs(self, node, schema):
        helper, out = self.onnx.helper, {}
        for name, attr in schema.attributes.items():
            if attr.default_value.type:  # the op's default, at this opset
                out[name] = helper.get_attribute_value(attr.default_value)
        for attr in node.attribute:
            out[attr.name] = helper.get_attribute_value(attr)
        return {k: v.decode() if isinstance(v, bytes) else v for k, v in out.items()}

    def _layer(self, op, node, attrs, where):
        classes = _classes().get(op)
        if classes is None and op in P.pattern_ops():
            raise ImportRefused(where, f"{op} is read only inside the patterns torch writes for "
                                f"{', '.join(P.pattern_ops()[op])} (x * Sigmoid(x) is SiLU, say); these nodes form "
                                "none, or a value inside one is also used elsewhere")
        if classes is None:
            raise ImportRefused(where, f"{op} is read only on constants (folded), which its inputs are not")
        names = list(node.input)
        while names and not names[-1]:
            names.pop()
        if op == "Conv" and names and names[0] in self.pending:  # Pad + Conv: one Conv2D with the pads
            names[0], attrs = S.merge_pad(self, names[0], attrs, where)
        tensors = 0
        while tensors < len(names) and (names[tensors] in self.tensors or names[tensors] in self.pending):
            tensors += 1
        if tensors == 0:
            raise ImportRefused(where, "its first input is a constant; minidl does not fold constants through "
                                f"{op}. Fold them first (onnx-simplifier, or torch.onnx.export's do_constant_folding)")
        late = [n for n in names[tensors:] if n and (n not in self.consts or (n in self.from_shape and op != "Resize"))]
        if late:
            raise ImportRefused(where, f"its input {late[0]!r} is computed at run time; minidl reads it only as a "
                                "constant (an initializer or a Constant node)")
        srcs = [self._tensor(n, where) for n in names[:tensors]]
        consts = tuple(None if i < tensors or not n else self.consts[n] for i, n in enumerate(names))
        outputs = sum(1 for o in node.output if o)
        if any(self.uses.get(o, 0) for o in node.output[1:] if o):
            raise ImportRefused(where, "its second output is used; minidl layers have one output")
        spec = OnnxNode(op, attrs, consts, tensors, self.values[srcs[0]].shape, outputs, self.opset)
        self._add(_node_name(node, op), S.build_layer(classes, spec, where), srcs, where, node.output[0])

    def _add(self, name, layer, srcs, where, out=None):
        """Add ``layer`` on Graph nodes ``srcs`` after computing it on their batch-of-one values."""
        values = [self.values[s] for s in srcs]
        layer.eval()
        try:
            value = layer(*values)
        except (ValueError, TypeError) as exc:
            raise ImportRefused(where, f"minidl's {layer!r} cannot compute it on its input of shape "
                                f"{values[0].shape}: {exc}") from None
        layer.train()
        name = self._unique(name)
        self.model.add(name, layer, list(srcs))
        self.values[name] = value
        if out is not None:
            self.tensors[out] = name
        return name

    def _tensor(self, name, where):
        """The Graph node computing ONNX tensor ``name`` (a pending MatMul becomes a Dense without bias)."""
        if name in self.pending:
            self._materialise(name, where)
        return self.tensors[name]

    def _unique(self, base):
        name, i = base, 1
        while name in self.names or name == INPUT:
            name, i = f"{base}_{i}", i + 1
        self.names.add(name)
        return name

    def _structural(self, op, node, attrs, where):
        return getattr(S, op.lower())(self, node, attrs, where)

    def _materialise(self, name, where):
        S.materialise(self, name, where)



def supported_ops():
    """The ONNX ops :func:`import_model` reads, sorted: the registered layers', the structural ones and
    those of the layers' patterns (``Mul``, ``Erf``, ...; read only inside one).

    Returns
    -------
    list of str

    Examples
    --------
    >>> {"Conv", "Gemm", "Relu", "Reshape"} <= set(supported_ops())
    True
    """
    return sorted(set(_classes()) | set(_STRUCTURAL) | set(S.FOLDED) | {"Sum"} | set(P.pattern_ops()))
