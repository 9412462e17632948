"""``model.summary()``: the table of a graph's nodes, output shapes and parameter counts, and the sample
shape a model's first layer fixes (so that ``summary()`` needs no input shape when that layer says it)."""

from __future__ import annotations

import numpy as np

from .layers.conv import Conv2D
from .layers.dense import Dense
from .layers.tree import layer_state_restored

__all__ = ["sample_shape", "summary_table", "param_counts"]

INPUT = "input"
#: The sizes tried for the axes the first layer leaves open (a Conv2D's height and width): an output axis
#: that differs between the two depends on them and is shown as '?'.
PROBES = (64, 96)


def sample_shape(layer):
    """The shape of one sample as ``layer`` fixes it: ints, and None for the axes it leaves open.

    A :class:`~minidl.layers.Dense` fixes ``(in_features,)``; a :class:`~minidl.layers.Conv2D` only
    its channels, ``(in_channels, None, None)``; a Graph or Sequential what its first node reading
    the input fixes. Other layers (Flatten, activations...) fix nothing.

    Parameters
    ----------
    layer : Layer

    Returns
    -------
    tuple or None
        None when the layer fixes nothing.

    Examples
    --------
    >>> import minidl as mdl
    >>> sample_shape(mdl.Sequential(mdl.layers.Conv2D(3, 8, 3), mdl.layers.ReLU()))
    (3, None, None)
    >>> sample_shape(mdl.layers.Dense(64, 10)), sample_shape(mdl.layers.Flatten())
    ((64,), None)
    """
    if isinstance(layer, Dense):
        return (layer.in_features,)
    if isinstance(layer, Conv2D):
        return (layer.in_channels, None, None)
    if hasattr(layer, "execution_plan"):  # a Graph: its first node that reads the input and fixes a shape
        nodes = layer.nodes
        for name in layer.execution_plan():
            sub, inputs = nodes[name]
            shape = sample_shape(sub) if INPUT in inputs else None
            if shape is not None:
                return shape
    return None


def param_counts(model) -> tuple[int, int]:
    """``(trainable, non_trainable)`` scalars, as Keras's summary counts them.

    Trainable: the parameters (:meth:`~minidl.layers.Layer.num_parameters`; minidl has no
    ``requires_grad`` flag, so every parameter is trainable). Non-trainable: the floating-point
    buffers, such as BatchNorm's running mean and variance (Keras's non-trainable moving
    statistics); integer counters such as ``num_batches_tracked``, which Keras has not, are
    left out. Shared arrays are counted once.

    Parameters
    ----------
    model : Layer

    Returns
    -------
    (int, int)

    Examples
    --------
    >>> import minidl as mdl
    >>> param_counts(mdl.Sequential(mdl.layers.Dense(4, 3), mdl.layers.BatchNorm1D(3)))
    (21, 6)
    """
    buffers = sum(b.size for b in model.buffers() if np.issubdtype(b.dtype, np.floating))
    return model.num_parameters(), int(buffers)


def _shape_text(outs) -> str:
    """``(N, 16, ?, ?)``: the axes that differ between the probes are '?'; '?' alone when unknown."""
    if outs is None or len({np.ndim(o) for o in outs}) != 1:
        return "?"
    dims = zip(*(np.shape(o)[1:] for o in outs))
    return "(N" + "".join(f", {d[0]}" if len(set(d)) == 1 else ", ?" for d in dims) + ")"


def _probe(layer, ins, dtype):
    """The layer's outputs for each probe of its inputs; None when the probes cannot run it."""
    if all(v is not None for v in ins):
        n = max(len(v) for v in ins)
        try:
            return [layer(*(v[min(k, len(v) - 1)] for v in ins)) for k in range(n)]
        except (ValueError, TypeError):  # e.g. a Dense after Flatten: it takes one height and width only
            if all(len(v) == 1 for v in ins):
                raise  # the input shape is fully known: a real error of the model
    own = sample_shape(layer) if len(ins) == 1 else None
    if own is not None and None not in own:  # the layer fixes its own input again (a Dense)
        return [layer(np.zeros((1, *own), dtype))]
    return None


def _check_shape(input_shape, where):
    """The sample shape as a tuple of ints >= 1, or a TypeError that says how to write it."""
    if isinstance(input_shape, (tuple, list)) and all(
            isinstance(d, (int, np.integer)) and not isinstance(d, bool) and d >= 1 for d in input_shape):
        return tuple(int(d) for d in input_shape)
    raise TypeError(f"{where}: input_shape must be the shape of one sample, without the batch axis, as a "
                    f"tuple of ints >= 1, e.g. (1, 28, 28). Received: {input_shape!r}")


def summary_table(graph, input_shape=None, dtype=None) -> str:
    """The text of :meth:`minidl.Graph.summary` (see there).

    Parameters
    ----------
    graph : Graph
    input_shape : tuple or None
        One sample's shape; None: the one the first layer fixes (:func:`sample_shape`).
    dtype : dtype or None
        Of the probe; None: the first parameter's dtype (float32 without parameters).

    Returns
    -------
    str

    Raises
    ------
    ValueError
        ``input_shape`` is None and the first layer fixes no shape.
    TypeError
        ``input_shape`` is not a tuple of positive ints.

    Examples
    --------
    >>> import minidl as mdl
    >>> lines = summary_table(mdl.Sequential(mdl.layers.Dense(4, 3, rng=0))).splitlines()
    >>> print(lines[2])
    input         (N, 4)             0
    >>> print(lines[-3])
    Total params: 15
    """
    where = f"{type(graph).__name__}.summary"
    if input_shape is None:
        input_shape = sample_shape(graph)
        if input_shape is None:
            first = next(iter(graph.nodes.values()), (None,))[0]
            raise ValueError(f"{where}: the first layer, {first!r}, does not fix the input's shape (a Dense or a "
                             "Conv2D does); pass the shape of one sample, without the batch axis, e.g. "
                             "summary((1, 28, 28)) for 28x28 grayscale images.")
    else:
        input_shape = _check_shape(input_shape, where)
    params = graph.parameters()
    dtype = dtype or (params[0].dtype if params else np.float32)
    sizes = PROBES if None in input_shape else PROBES[:1]
    probes = [np.zeros((1, *(p if d is None else d for d in input_shape)), dtype) for p in sizes]
    values = {INPUT: probes}
    shows_inputs = graph._sources(()) is not None
    rows = [("input", "", _shape_text(probes), "0")]
    nodes = graph.nodes
    with layer_state_restored(graph):  # a forward waiting for its backward keeps its caches
        graph.eval()  # and the probe keeps none
        for name in graph.execution_plan():
            layer, inputs = nodes[name]
            values[name] = _probe(layer, [values[i] for i in inputs], dtype)
            rows.append((f"{name} ({type(layer).__name__})", graph._sources(inputs) or "",
                         _shape_text(values[name]), f"{layer.num_parameters():,}"))
    return _format(rows, shows_inputs, graph, input_shape)


def _format(rows, shows_inputs, graph, input_shape) -> str:
    head = ("node (layer)", "inputs", "output shape", "params")
    keep = [i for i in range(4) if i != 1 or shows_inputs]
    table = [[r[i] for i in keep] for r in [head, *rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(keep))]

    def fmt(row):
        return "  ".join(c.rjust(w) if j == len(keep) - 1 else c.ljust(w)
                         for j, (c, w) in enumerate(zip(row, widths)))
    rule = "-" * (sum(widths) + 2 * (len(widths) - 1))
    trainable, frozen = param_counts(graph)
    lines = [fmt(table[0]), rule, *(fmt(r) for r in table[1:]), rule, f"Total params: {trainable + frozen:,}",
             f"Trainable params: {trainable:,}", f"Non-trainable params: {frozen:,}"]
    if None in input_shape:
        open_axes = iter("HW")  # a Conv2D's (sample_shape leaves no other axes open)
        shape = "(" + ", ".join(str(d) if d is not None else next(open_axes) for d in input_shape) + ")"
        lines += ["Output shapes with '?' depend on the input's height and width (the first layer does not fix them):",
                  f"call summary({shape}) with your images' size to compute them."]
    return "\n".join(lines)
