"""Gradient tests of a whole model, layer by layer, at the inputs a real batch gives each layer.

:func:`check_model` runs one batch through a float64 copy of the model, records what every layer
(every node of a Graph, nested too) receives, and checks each layer's backward there: dX and every
parameter gradient, element by element for small tensors (as :func:`minidl.gradcheck`) and along a
few random directions for large ones (Chainer's ``check_backward`` idea: ``<grad, v>`` against
``(f(x + eps v) - f(x - eps v)) / 2 eps``), so a digits or MNIST model checks in seconds.

Kinks are not failed blindly: a layer that knows its kinks says where they are (``Layer.kinks``:
ReLU at 0, max-pool windows with near ties), and those elements are left out of the numerical
check; along any direction, one-sided differences that disagree betray a kink no layer declared,
and that direction is replaced. A random layer (Dropout) is checked with its mask fixed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .grad_mode import enable_grad
from .gradcheck import float64_copy
from .graph import Graph
from .modelcheck_numeric import TensorResult, check_layer_at, tensor_result

__all__ = ["check_model", "ModelCheck", "LayerCheck", "TensorResult"]


@dataclass
class LayerCheck:
    """One layer's row of a :class:`ModelCheck`.

    Parameters
    ----------
    path : str
        Where the layer sits (``"block1.conv"``, ``"0"``).
    layer : str
        Its repr.
    input_shapes : list of tuple
    tensors : list of TensorResult
    note : str
        Why it was not checked (not called by the batch; random and not fixable), if so.

    Examples
    --------
    >>> LayerCheck("0", "ReLU()", [(2, 3)], []).passed
    True
    """

    path: str
    layer: str
    input_shapes: list
    tensors: list = field(default_factory=list)
    note: str = ""

    @property
    def passed(self) -> bool:
        """Every tensor passed (a layer with nothing to check passes)."""
        return all(t.passed for t in self.tensors)


@dataclass
class ModelCheck:
    """The result of :func:`check_model`: ``.passed``, ``.rows``, ``.first_failure``; ``str()`` is a table.

    Parameters
    ----------
    rows : list of LayerCheck
        One per layer, in the order the batch reached them.
    eps, rtol, atol : float
        As given to :func:`check_model`.

    Examples
    --------
    >>> ModelCheck([], 1e-6, 1e-5, 1e-8).first_failure is None
    True
    """

    rows: list
    eps: float
    rtol: float
    atol: float

    @property
    def passed(self) -> bool:
        """Every layer passed."""
        return all(row.passed for row in self.rows)

    @property
    def first_failure(self):
        """The path of the first layer (in the order the batch reached them) that failed, or None."""
        return next((row.path for row in self.rows if not row.passed), None)

    def __bool__(self) -> bool:
        return self.passed

    def __str__(self) -> str:
        lines = [f"{'layer':<28} {'input':<18} {'tensor':<10} {'method':<14} {'max_abs_err':>11} "
                 f"{'max_rel_err':>11} {'kinks':>5}  result"]
        for row in self.rows:
            head = f"{row.path or '(model)'} {row.layer}"[:28]
            shape = ", ".join(str(s) for s in row.input_shapes)[:18]
            if not row.tensors:
                lines.append(f"{head:<28} {shape:<18} {row.note or 'nothing to check'}")
            for t in row.tensors:
                method = f"{t.method}({t.checked})"
                lines.append(f"{head:<28} {shape:<18} {t.name:<10} {method:<14} {t.max_abs_err:>11.3e} "
                             f"{t.max_rel_err:>11.3e} {t.kinks_skipped:>5}  {'ok' if t.passed else 'FAIL'}")
                head = shape = ""
        verdict = "PASSED" if self.passed else f"FAILED: the first failing layer is {self.first_failure!r}"
        return "\n".join(lines + [f"check_model: {verdict} ({len(self.rows)} layers, eps={self.eps:g})"])


def _units(layer, path):
    """``(path, layer)`` of what is checked: every layer, walking into Graphs (and Sequentials) only;
    a user's layer that holds layers is checked as one unit, its own backward."""
    if isinstance(layer, Graph):
        for name, child in layer.named_children():
            yield from _units(child, f"{path}.{name}" if path else name)
    else:
        yield path, layer


def _record_inputs(twin, x):
    """``{id(layer): (path, layer, inputs)}`` of every leaf layer the batch reaches, in call order."""
    seen = {}
    leaves = list(_units(twin, ""))
    for path, layer in leaves:
        def recording(*inputs, _layer=layer, _path=path, _forward=layer.forward):
            seen.setdefault(id(_layer), (_path, _layer, [np.array(v, copy=True) if isinstance(v, np.ndarray)
                                                         else v for v in inputs]))
            return _forward(*inputs)
        layer.forward = recording
    try:
        twin(x)
    finally:
        for _, layer in leaves:
            del layer.forward
    return seen, leaves


def check_model(model, x, y=None, loss=None, against=None, *, directions=3, elementwise_limit=16,
                eps=1e-6, rtol=1e-5, atol=1e-8, seed=0) -> ModelCheck:
    r"""Check every layer's backward at the inputs one real batch gives it, in float64.

    Parameters
    ----------
    model : Layer
        A Sequential, a Graph (nested ones too) or one layer; left untouched (a float64
        deep copy is checked, in the model's mode: training mode checks what training uses).
    x : ndarray
        One batch (a few samples are enough: a batch of 16 checks in seconds).
    y, loss : optional
        Labels and a loss (:class:`~minidl.losses.SoftmaxCrossEntropy`, ...): the loss is
        checked too, at the model's output, as the last row ``"loss"``.
    against : {None, 'torch'}
        ``'torch'``: instead of finite differences, each layer's twin from
        :func:`minidl.interop.to_torch` is fed the same recorded inputs, and its output and
        every gradient (torch's autograd) are compared with the layer's in float64 -- a custom
        layer with a torch recipe is compared with its torch twin; a layer without one is
        reported, not failed. Needs torch.
    directions : int, default 3
        Random directions per tensor larger than ``elementwise_limit`` elements.
    elementwise_limit : int, default 16
        Tensors with at most this many elements are checked element by element.
    eps : float, default 1e-6
        The central difference's step.
    rtol, atol : float
        Elementwise: ``|a - n| <= atol + rtol * max(|a|, |n|)``. Along a direction ``v``:
        ``|<g, v> - n| <= atol + rtol * sum(|g * v|)`` (the size of the terms summed).
    seed : int
        Seeds the upstream gradients and the directions.

    Returns
    -------
    ModelCheck
        ``.passed``, ``.rows`` (one :class:`LayerCheck` per layer: ``.path``, ``.passed``,
        ``.tensors``), ``.first_failure`` (a path or None); ``str()`` is a table.

    Raises
    ------
    ValueError
        ``against`` other than None or 'torch'.
    ImportError
        ``against='torch'`` without torch.

    Shape
    -----
    ``x``: what the model takes, e.g. (N, 1, 8, 8) for the digits models.

    Examples
    --------
    >>> import minidl as mdl
    >>> x = np.random.default_rng(0).standard_normal((4, 1, 8, 8)).astype(np.float32)
    >>> report = mdl.check_model(mdl.models.reference_cnn(0), x)
    >>> report.passed, report.first_failure
    (True, None)
    """
    if against not in (None, "torch"):
        raise ValueError(f"check_model: against must be None or 'torch'. Received: {against!r}")

    twin = float64_copy(model)
    rng = np.random.default_rng(seed)
    x64 = np.array(x, dtype=np.float64)
    with enable_grad():  # eval mode too: its backward is what is checked
        seen, leaves = _record_inputs(twin, x64)
        rows = []
        for _, (path, layer, inputs) in seen.items():
            row = LayerCheck(path, repr(layer), [np.shape(v) for v in inputs])
            if against == "torch":
                row.tensors, row.note = _against_torch(layer, inputs, rng, rtol, atol)
            else:
                row.tensors, row.note = check_layer_at(layer, inputs, rng, directions, elementwise_limit, eps,
                                                       rtol, atol)
            rows.append(row)
        if loss is not None and against is None:
            out = twin(x64)
            row = LayerCheck("loss", repr(loss), [out.shape])
            row.tensors, row.note = check_layer_at(float64_copy(loss), [out, y], rng, directions,
                                                   elementwise_limit, eps, rtol, atol)
            rows.append(row)
    return ModelCheck(rows, eps, rtol, atol)


def _against_torch(layer, inputs, rng, rtol, atol):
    """Output, input and parameter gradients of ``layer`` against its torch twin's autograd."""
    from .interop import to_torch
    try:
        module = to_torch(layer)
    except TypeError as exc:
        return [], f"no torch twin: {exc}"
    import torch
    xs = [np.array(v, dtype=np.float64) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v for v in inputs]
    tx = [torch.tensor(v, requires_grad=True) if isinstance(v, np.ndarray) and v.dtype.kind == "f" else v for v in xs]
    layer.zero_grad()
    out = layer(*xs)
    g = rng.standard_normal(np.shape(out))
    grads = layer.backward(g)
    grads = grads if isinstance(grads, (tuple, list)) else (grads,)
    t_out = module(*tx)
    t_out.backward(torch.from_numpy(g))
    pairs = [("output", out, t_out.detach().numpy())]
    pairs += [("input" if len(tx) == 1 else f"input[{i}]", got, t.grad.numpy())
              for i, (got, t) in enumerate(zip(grads, tx)) if got is not None and isinstance(t, torch.Tensor)]
    theirs = dict(module.named_parameters())
    pairs += [(name, p.grad, theirs[name].grad.numpy()) for name, p in layer.named_parameters()]
    results = []
    for name, ours, ref in pairs:
        a, n = np.asarray(ours, np.float64).ravel(), np.asarray(ref, np.float64).ravel()
        keys = [tuple(int(j) for j in np.unravel_index(i, np.shape(ref))) for i in range(n.size)] if n.size < 4096 \
            else list(range(n.size))
        results.append(tensor_result(name, "torch", a, n, np.maximum(np.abs(a), np.abs(n)), rtol, atol, keys, 0))
    return results, ""
