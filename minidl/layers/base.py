"""The layer protocol: :class:`Layer` (forward, backward, saved values, the input rule, the
configuration, the interop recipes), :class:`InputSpec` and :class:`Unsupported`. The layer tree
it stands on (children, parameters, buffers, modes, state dicts) is :mod:`minidl.layers.tree`."""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import numpy as np

from ..functional.geometry import resolve_padding
from ..parameter import Parameter
from ..validation import check_array, check_float_dtype
from .tree import LayerTree

__all__ = ["Layer", "InputSpec", "Unsupported", "OnnxNode", "set_model_writer"]

_MODEL_WRITER = [None]


def set_model_writer(write) -> None:
    """Install ``write(model, path)`` as what :meth:`Layer.save` calls (minidl.io does).

    Parameters
    ----------
    write : callable
        ``write(model, path)``; :mod:`minidl.io` installs :func:`minidl.save` when
        ``minidl`` is imported (the layers never import the I/O, which imports them).

    Examples
    --------
    >>> import minidl
    >>> from minidl.layers import base
    >>> base._MODEL_WRITER[0] is minidl.save
    True
    """
    _MODEL_WRITER[0] = write


class InputSpec(NamedTuple):
    """The rule a layer's input follows; :meth:`Layer.check_input <minidl.layers.Layer.check_input>`
    applies it, with messages that name the layer, what it expected and what it received.

    Parameters
    ----------
    ndim : int, tuple of int or None, default None
        The rank accepted (the message names it), or the ranks (the message shows
        ``layout``); None: any.
    layout : str, default ''
        How the message names the axes, e.g. ``'(N, C, H, W)'``.
    floating : bool, default True
        Require a floating-point dtype (a layer that checks its input's dtype
        against its weights' says False and does that itself).

    Examples
    --------
    >>> import numpy as np
    >>> from minidl.layers import InputSpec
    >>> InputSpec(ndim=4, layout="(N, C, H, W)").check(np.zeros((2, 8, 8)), "MyLayer()")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: MyLayer(): expected input with 4 dimensions (N, C, H, W), got 3 dimensions with shape (2, 8, 8). For ...
    """

    ndim: int | tuple | None = None
    layout: str = ""
    floating: bool = True

    def check(self, x, where, name="input"):
        """Raise the TypeError/ValueError that says what ``x`` should be, or return it.

        Parameters
        ----------
        x : ndarray
        where : str or Layer
            Who checks, named in the message (a layer: its ``repr``, formatted only on error).
        name : str, default 'input'

        Returns
        -------
        ndarray
            ``x`` itself.

        Shape
        -----
        ``x``: ``ndim`` dimensions, when given.
        """
        check_array(x, name, where)
        ranks = (self.ndim,) if isinstance(self.ndim, int) else self.ndim
        if ranks is not None and x.ndim not in ranks:
            one = isinstance(self.ndim, int)  # one rank: the message names it, with a hint for images
            wanted = f"with {self.ndim} dimensions {self.layout}" if one else f"of shape {self.layout}"
            raise ValueError(f"{where}: expected {name} {wanted}, got {x.ndim} dimensions with shape {x.shape}."
                             f"{_hint(self.ndim, x.ndim) if one else ''}")
        if self.floating:
            check_float_dtype(x, name, where)
        return x


def _hint(ndim, got):
    if ndim == 4 and got == 3:
        return " For a single image add a batch axis: x[None]."
    if ndim == 4 and got == 2:
        return " For 8x8 digits use x.reshape(-1, 1, 8, 8)."
    return ""


class Unsupported(TypeError):
    """Raised by an interop recipe for a configuration with no form there.

    The message says why; :mod:`minidl.interop` and :func:`minidl.export.to_onnx` raise a
    TypeError that adds where the layer sits in the model.

    Parameters
    ----------
    *args
        The reason, as for any exception (``Unsupported("with dim=None (set dim)")``).
    **kwargs
        None are used (what :class:`TypeError` accepts).

    Examples
    --------
    >>> from minidl.layers import Unsupported
    >>> issubclass(Unsupported, TypeError)
    True
    """


class OnnxNode(NamedTuple):
    """One ONNX node as :func:`minidl.export.from_onnx` hands it to a layer's
    :meth:`~minidl.layers.Layer.from_onnx_node` recipe.

    Parameters
    ----------
    op : str
        The ONNX op (``"Conv"``).
    attrs : dict
        Every attribute of the node, the op's defaults (at the model's opset) filled in:
        ints, floats, str (decoded), lists of them, arrays for tensors.
    consts : tuple
        One entry per node input: the array of a constant input (an initializer or a
        ``Constant`` node; Conv's weight), None for an input computed at run time or left out.
    tensors : int
        How many leading inputs are computed at run time (the layer's inputs).
    input_shape : tuple of int
        The shape of the first input for a batch of one (``(1, C, H, W)``).
    outputs : int
        How many outputs the node declares (a second one is, e.g., MaxPool's indices).
    opset : int
        The model's opset of the default ONNX domain.

    Examples
    --------
    >>> from minidl.layers import ReLU
    >>> ReLU.from_onnx_node(OnnxNode("Relu", {}, (None,), 1, (1, 3), 1, 17))
    ReLU()
    """

    op: str
    attrs: dict
    consts: tuple
    tensors: int
    input_shape: tuple
    outputs: int
    opset: int


class Layer(LayerTree):
    """Base class of every layer, loss and graph.

    A subclass implements ``forward(*inputs)`` (keeping what its backward
    needs) and ``backward(grad_output, *, input_grad=True)``, which returns the
    gradient with respect to each input (one array, or a tuple for several
    inputs; None may be returned when ``input_grad`` is False) and adds the
    gradient of every parameter into its ``.grad``. The gradients are exact
    gradients of ``sum(output * grad_output)``: nothing is averaged. Its
    hyper-parameters are its constructor's arguments, kept under attributes of
    the same names: :meth:`get_config` and ``repr`` read them from there.

    The backward rule, the same in every built-in layer: ``grad_output`` is
    checked as forward checks its input, never converted. It must be a
    numpy array of the dtype of the last forward output (else TypeError,
    naming both dtypes and the ``astype`` fix) and of its shape (else
    ValueError); each returned gradient has the shape and dtype of its input.
    A refused gradient leaves every ``.grad`` untouched.

    Parameters and child layers assigned as attributes are found
    automatically, in assignment order, as in :class:`torch.nn.Module`;
    buffers (state that is not trained, as BatchNorm's running statistics)
    are declared with :meth:`register_buffer`. :meth:`state_dict` holds both.

    The toolkit for writing a layer (every built-in layer uses it):

    - :meth:`save_for_backward` in ``forward`` keeps what backward needs, by
      name (in training mode only; calling a layer in eval mode drops the
      previous call's values first and keeps nothing), and :attr:`saved_values`
      in ``backward`` returns it (``self.saved_values.x``), or raises the RuntimeError that names the cause (backward
      before forward, or after an eval-mode forward). One forward cache per
      layer, under one name: no layer keeps backward state elsewhere.
    - :meth:`check_grad_output` applies the backward rule below.
    - :meth:`require_cache` gives the same RuntimeError for a cache kept
      under an attribute of the layer's own.

    Examples
    --------
    >>> from minidl import Parameter
    >>> class Scale(Layer):
    ...     def __init__(self):
    ...         super().__init__()
    ...         self.alpha = Parameter(np.ones(1))
    ...     def forward(self, x):
    ...         self.save_for_backward(x=x)
    ...         return self.alpha.data * x
    ...     def backward(self, grad_output, *, input_grad=True):
    ...         x = self.saved_values.x
    ...         grad_output = self.check_grad_output(grad_output, x.shape, x.dtype)
    ...         self.alpha.grad += (grad_output * x).sum(keepdims=True).ravel()
    ...         return self.alpha.data * grad_output
    >>> [name for name, _ in Scale().named_parameters()]
    ['alpha']
    """

    #: What :meth:`forward` accepts (an :class:`~minidl.layers.InputSpec`), applied by
    #: :meth:`check_input`; None: the layer's kernel checks its input itself (Conv2D, the pools).
    input_spec = None

    def __init__(self) -> None:
        self.training = True
        self._saved = None  # what save_for_backward kept: a tuple, or None
        self._forward_in_eval = False
        self._buffers: dict[str, bool] = {}  # buffer name -> persistent (the arrays are attributes)

    # ----------------------------------------------------------- computation
    def forward(self, *inputs):  # pragma: no cover - abstract
        """Compute the output; in training mode keep what :meth:`backward` needs.

        Calling the layer, ``layer(x)``, calls this. Each built-in layer checks
        its input (an ndarray of its parameters' dtype and of the rank it
        expects) and raises a TypeError or ValueError that names the layer.

        Parameters
        ----------
        *inputs : ndarray
            One array for most layers; several for merge layers
            (:class:`~minidl.layers.Add`, :class:`~minidl.layers.Concat`);
            ``(logits, targets)`` for losses.

        Returns
        -------
        ndarray
            The output (a float for a loss).

        Shape
        -----
        The layer's class documents it (e.g. Conv2D: ``(N, C_in, H, W) ->
        (N, C_out, H_out, W_out)``).

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> layer = Dense(4, 3, rng=0)
        >>> layer.forward(np.ones((2, 4), np.float32)).shape
        (2, 3)
        """
        raise NotImplementedError(f"{type(self).__name__} must implement forward()")

    def backward(self, grad_output, *, input_grad=True):  # pragma: no cover - abstract
        """Gradient with respect to the input(s); add the parameters' gradients into ``.grad``.

        The exact gradient of ``sum(output * grad_output)`` (nothing averaged:
        a loss carries the 1/N). ``grad_output`` follows the backward rule of
        the class docstring; a refused gradient leaves every ``.grad`` untouched.

        Parameters
        ----------
        grad_output : ndarray
            dL/d(output) of the last :meth:`forward` call: its shape and dtype.
        input_grad : bool, default True
            False when nobody needs dL/d(input) (the layer reading the model's input;
            torch's ``needs_input_grad``): a layer whose input gradient is costly
            (Dense, Conv2D, BatchNorm, Graph) then skips it and returns None. A layer
            may ignore it, or leave it out of its signature: :meth:`backward_params`
            then calls ``backward(grad_output)``.

        Returns
        -------
        ndarray or tuple of ndarray or None
            dL/d(input), one per input of :meth:`forward`, each of its input's
            shape and dtype (None when ``input_grad`` is False and skipped).

        Raises
        ------
        RuntimeError
            No forward call kept anything (none yet, or one in eval mode).
        TypeError, ValueError
            ``grad_output`` not an ndarray of the output's dtype / shape.

        Shape
        -----
        ``grad_output``: the output's; the result: the input's.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> layer = Dense(4, 3, rng=0)
        >>> y = layer(np.ones((2, 4), np.float32))
        >>> layer.backward(np.ones_like(y)).shape, layer.weight.grad.shape
        ((2, 4), (3, 4))
        >>> layer.backward(np.ones_like(y), input_grad=False) is None
        True
        """
        raise NotImplementedError(f"{type(self).__name__} must implement backward()")

    def backward_params(self, grad_output) -> None:
        """Fill the parameters' ``.grad`` as :meth:`backward` does, without dL/dinput.

        ``backward(grad_output, input_grad=False)`` for a layer whose backward takes
        ``input_grad`` (every built-in layer), else ``backward(grad_output)`` with its
        result dropped (a user layer written as ``backward(self, grad_output)``).

        Parameters
        ----------
        grad_output : ndarray
            As for :meth:`backward`.

        Shape
        -----
        ``grad_output``: the last forward output's.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> layer = Dense(4, 3, rng=0)
        >>> y = layer(np.ones((2, 4), np.float32))
        >>> layer.backward_params(np.ones_like(y))
        >>> layer.bias.grad
        array([2., 2., 2.], dtype=float32)
        """
        if _takes_input_grad(type(self).backward):
            self.backward(grad_output, input_grad=False)
        else:
            self.backward(grad_output)

    def check_input(self, *inputs) -> None:
        """Apply the class's :attr:`input_spec` to each input (the first line of a forward).

        Parameters
        ----------
        *inputs : ndarray
            What :meth:`forward` received.

        Raises
        ------
        TypeError, ValueError
            Naming the layer, what it expects and what it received.

        Shape
        -----
        Each input: the spec's ``ndim`` dimensions, when it gives them.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> Dense(4, 3).check_input(np.zeros((2, 3, 4), np.float32))  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: Dense(in_features=4, out_features=3): expected input with 2 dimensions (N, in_features), got 3 ...
        """
        if self.input_spec is not None:
            for x in inputs:
                self.input_spec.check(x, self)

    def __call__(self, *inputs):
        if not self.keeps_caches:  # eval mode keeps nothing: free a training call's cache before computing
            self.save_for_backward()
        return self.forward(*inputs)

    def save_for_backward(self, *values, **named) -> None:
        """Keep values for :meth:`backward` (the name of :meth:`torch.autograd.Function`'s).

        Call it in ``forward``; it replaces what the previous call kept. In
        eval mode (:meth:`eval`, ``Trainer.predict``/``evaluate``) nothing is
        kept, so a forward pass holds no memory after it returns; calling the
        layer in eval mode drops what an earlier training-mode forward kept
        before computing.

        Parameters
        ----------
        *values
            Anything (arrays, shapes, flags), kept in order.
        **named
            The same, by name: backward reads ``self.saved_values.x`` (the built-in
            layers save by name, so backward says what it uses).

        Examples
        --------
        >>> from minidl.layers import ReLU
        >>> layer = ReLU()
        >>> layer.save_for_backward(1, 2)
        >>> layer.saved_values
        (1, 2)
        >>> layer.save_for_backward(x=np.zeros(3), shape=(3,))
        >>> layer.saved_values.shape
        (3,)
        """
        keep = self.keeps_caches
        self._forward_in_eval = not keep
        self._saved = Saved(values, named) if keep else None

    @property
    def saved_values(self) -> tuple:
        """What the last :meth:`save_for_backward` kept: a tuple, its named values also attributes.

        Raises
        ------
        RuntimeError
            When nothing is kept: backward before forward, or after an
            eval-mode forward (see :meth:`require_cache`).
        """
        return self.require_cache(self._saved)

    def require_cache(self, cache):
        """Return ``cache``, or raise the RuntimeError for a backward without its forward.

        The message names the cause: a forward in eval mode (which keeps
        nothing) or no forward at all.

        Parameters
        ----------
        cache : object or None
            What the layer kept in its forward pass (None: nothing).

        Returns
        -------
        object
            ``cache`` itself.

        Raises
        ------
        RuntimeError
            ``cache`` is None.

        Examples
        --------
        >>> from minidl.layers import ReLU
        >>> ReLU().require_cache(None)  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        RuntimeError: ReLU(): backward() was called before forward(). Call forward(x) first; ...
        """
        if cache is None and self._forward_in_eval:
            raise RuntimeError(
                f"{self!r}: backward() after a forward() in eval mode, which keeps no backward "
                "caches (to save memory). Call model.train() (or layer.train()) before the "
                "forward pass whose gradients you need, or run the eval-mode forward and backward "
                "inside `with minidl.enable_grad():`."
            )
        if cache is None:
            raise RuntimeError(
                f"{self!r}: backward() was called before forward(). "
                "Call forward(x) first; backward uses what that call kept."
            )
        return cache

    _require_cache = require_cache  # the name before issue 11

    def check_grad_output(self, grad_output, shape, dtype) -> np.ndarray:
        """Return ``grad_output`` if it is an ndarray of ``shape`` and ``dtype``, or raise.

        The backward rule of every built-in layer: the upstream gradient is
        checked as forward checks its input, never converted. Not an ndarray
        or another dtype than the forward output's -> TypeError; another
        shape -> ValueError.

        Parameters
        ----------
        grad_output : ndarray
            The upstream gradient passed to ``backward``.
        shape, dtype
            Those of the last forward output.

        Returns
        -------
        ndarray
            ``grad_output`` itself.

        Raises
        ------
        TypeError
            Not an ndarray, or another dtype.
        ValueError
            Another shape.

        Shape
        -----
        ``grad_output``: exactly ``shape``.

        Examples
        --------
        >>> from minidl.layers import ReLU
        >>> g = np.ones((2, 3), np.float32)
        >>> ReLU().check_grad_output(g, (2, 3), np.float32) is g
        True
        """
        if not isinstance(grad_output, np.ndarray):
            raise TypeError(
                f"{self!r}: backward expected grad_output as a numpy.ndarray of dtype {np.dtype(dtype)}. "
                f"Received: {type(grad_output).__name__}. Convert it with "
                f"np.asarray(grad_output, dtype=np.{np.dtype(dtype)})."
            )
        if grad_output.dtype != dtype:
            raise TypeError(
                f"{self!r}: backward expected grad_output of dtype {np.dtype(dtype)} (the dtype of the "
                f"last forward output), got {grad_output.dtype}. Cast it with "
                f"grad_output.astype(np.{np.dtype(dtype)})."
            )
        if grad_output.shape != tuple(shape):
            raise ValueError(
                f"{self!r}: backward expected grad_output of shape {tuple(shape)} (the shape of "
                f"the last forward output), got {grad_output.shape}."
            )
        return grad_output

    _check_grad = check_grad_output  # the name before issue 11

    # ------------------------------------------------------------------ I/O
    def save(self, path) -> None:
        """Save architecture and weights to one ``.npz`` file: :func:`minidl.save`, which
        :mod:`minidl.io` installs with :func:`set_model_writer` (the layers never import
        the I/O, which imports them); see :func:`minidl.load`.

        Parameters
        ----------
        path : str or os.PathLike
            The file to write (``.npz``).

        Examples
        --------
        >>> import os, tempfile, minidl
        >>> from minidl.layers import Dense
        >>> with tempfile.TemporaryDirectory() as tmp:
        ...     Dense(4, 3).save(os.path.join(tmp, "dense.npz"))
        ...     minidl.load(os.path.join(tmp, "dense.npz"))
        Dense(in_features=4, out_features=3)
        """
        if _MODEL_WRITER[0] is None:  # pragma: no cover - minidl/__init__ imports minidl.io
            raise RuntimeError(f"{type(self).__name__}.save: import minidl (minidl.io) first.")
        _MODEL_WRITER[0](self, path)

    # ----------------------------------------------------------------- repr
    def extra_repr(self) -> str:
        """What goes between the parentheses of the layer's ``repr`` (as torch's).

        The default shows every constructor argument, ``name=value``, read back as
        :meth:`get_config` does (an argument the layer keeps under no attribute of its
        name is left out, and ``dtype`` when it is float32, as the built-in layers do).
        A layer overrides it for torch's layout (``Conv2D``).

        Returns
        -------
        str

        Examples
        --------
        >>> from minidl.layers import Conv2D, LeakyReLU
        >>> Conv2D(1, 8, 3, stride=2).extra_repr()
        '1, 8, kernel_size=(3, 3), stride=(2, 2)'
        >>> LeakyReLU(0.2).extra_repr()
        'negative_slope=0.2'
        """
        return ", ".join(f"{name}={value!r}" for name, value in self._hyper_parameters().items()
                         if not (name == "dtype" and np.dtype(value) == np.float32))  # as the built-ins

    def get_config(self) -> dict:
        """Constructor arguments (JSON-serialisable) that rebuild this layer.

        :func:`minidl.save` stores them as the architecture; ``type(layer)(**config)``
        rebuilds the layer (its weights come from the state dict). The default reads
        every argument of ``__init__`` (``rng`` aside: weights come from the state
        dict) back from the attribute of the same name, as scikit-learn's
        ``get_params`` does, so a layer declares its hyper-parameters once, in its
        constructor: a ``bias`` kept as a Parameter or None gives whether it exists,
        ``dtype`` the dtype of the layer's arrays, tuples become lists.

        Returns
        -------
        dict

        An argument kept under no attribute of its name is left out, so the layer is
        rebuilt with its default (a ``seed`` for the initial weights, which the state
        dict replaces anyway): store a real hyper-parameter as ``self.<name>``, or
        override get_config.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> Dense(4, 3, bias=False).get_config()
        {'in_features': 4, 'out_features': 3, 'bias': False, 'dtype': 'float32'}
        """
        return {name: _jsonable(value) for name, value in self._hyper_parameters().items()}

    def _hyper_parameters(self) -> dict:
        """``{constructor argument: its value now}`` (see get_config)."""
        out = {}
        for name, default in constructor_args(type(self).__init__):
            if name == "dtype" and not hasattr(self, "dtype"):
                params = self.parameters()
                value = np.dtype(params[0].dtype).name if params else default
            elif hasattr(self, name):
                value = getattr(self, name)
                if isinstance(default, bool) and (value is None or isinstance(value, Parameter)):
                    value = value is not None  # bias=True/False kept as a Parameter or None
            else:
                continue
            out[name] = value
        return out

    @classmethod
    def examples(cls, rng):
        """Small configurations of this class for the gradient checker (``minidl gradcheck``).

        ``minidl gradcheck`` (:func:`minidl.gradcheck_grid.run_grid`) runs
        :func:`minidl.gradcheck` on every pair this yields, for every registered
        class; a registered class that yields nothing is listed as not checked.
        Override it in your layer: build layers in float64 with ``cls(...)`` (so a
        subclass is checked as itself) and draw inputs where central differences
        are valid (:func:`minidl.testing.tie_free` away from kinks and max-pool
        ties). The base class yields nothing.

        Parameters
        ----------
        rng : numpy.random.Generator
            Draws the weights and inputs (seeded by the caller).

        Yields
        ------
        layer : Layer
            An instance of ``cls``, built with ``rng``.
        inputs : tuple
            The arguments of ``layer.forward``.

        Examples
        --------
        >>> from minidl.layers import Dense
        >>> layer, inputs = next(Dense.examples(np.random.default_rng(0)))
        >>> type(layer).__name__, [x.shape for x in inputs]
        ('Dense', [(3, 5)])
        >>> list(Layer.examples(np.random.default_rng(0)))
        []
        """
        yield from ()

    def kinks(self, *inputs, tol=1e-4):
        """Where the layer is not differentiable, for :func:`minidl.check_model` to leave out.

        The default: nowhere (None). A layer with kinks returns one boolean mask per input,
        True at the elements within ``tol`` of a kink (ReLU: ``|x| <= tol``; MaxPool2D: the
        elements of windows whose largest values tie within ``tol``).

        Parameters
        ----------
        *inputs : ndarray
            What :meth:`forward` takes.
        tol : float, default 1e-4
            How close to a kink an element may be before it is left out.

        Returns
        -------
        tuple of ndarray of bool, or None

        Shape
        -----
        Each mask: its input's shape.

        Examples
        --------
        >>> from minidl.layers import ReLU, Tanh
        >>> ReLU().kinks(np.array([-1.0, 0.0, 2e-5, 3.0]), tol=1e-4)
        (array([False,  True,  True, False]),)
        >>> Tanh().kinks(np.zeros(2)) is None
        True
        """
        return None

    # --------------------------------------------------------- interop recipes
    #: The ONNX op of a layer that is one node on its inputs (None: no such op).
    onnx_op: str | None = None
    #: That node's attributes, ``{ONNX attribute: layer attribute}``.
    onnx_attrs: dict = {}
    #: Names of the torch modules that are this layer (``torch.nn``'s, or the extras of
    #: :mod:`minidl.interop._torch`); :func:`~minidl.interop.to_torch` builds the first,
    #: :func:`~minidl.interop.from_torch` maps each back to this class.
    torch_modules: tuple = ()
    #: The torch module's constructor arguments, ``{torch argument: layer attribute}``.
    torch_args: dict = {}
    #: ONNX ops :meth:`from_onnx_node` reads, besides :attr:`onnx_op` (Conv2D: ``("Conv",)``).
    onnx_imports: tuple = ()
    #: Subgraphs of ONNX ops read back as one layer of this class (declared on the class itself, not
    #: inherited): ``((kwargs, steps), ...)``, the layer built as ``cls(**kwargs)``. Each step is
    #: ``(op, *inputs)`` or ``(op, *inputs, {attr: value})``; an input is ``"x"`` (the layer's input),
    #: the index of an earlier step, or a float (a scalar constant); the last step computes the output.
    #: SiLU: ``(({}, (("Sigmoid", "x"), ("Mul", "x", 0))),)``.
    onnx_patterns: tuple = ()

    def to_onnx(self, g, inputs, input_shape):
        """Add the ONNX nodes computing this layer in eval mode; return the output's name.

        The default emits :attr:`onnx_op` with :attr:`onnx_attrs` read off the layer.

        Parameters
        ----------
        g : minidl.interop.onnx.LayerScope
            ``g.node(op, inputs, **attributes)`` adds a node and returns its output's
            name; ``g.const(name, array, dtype=None)`` adds an initializer named
            after the layer's state-dict prefix (``"0.weight"``) and returns its name;
            ``g.dtype`` is the model's float dtype.
        inputs : list of str
            The names of the layer's inputs in the ONNX graph.
        input_shape : tuple of int
            The shape of the first input for a batch of one (for input-dependent pads).

        Returns
        -------
        str
            The name of the node output holding the layer's output.

        Raises
        ------
        Unsupported
            No ONNX form (the message says why; the exporter adds where).

        Shape
        -----
        ``input_shape``: the input's, with a batch of one, e.g. ``(1, C, H, W)``.
        """
        if self.onnx_op is None:
            raise Unsupported("has no ONNX form")
        return g.node(self.onnx_op, inputs, **{k: getattr(self, a) for k, a in self.onnx_attrs.items()})

    def to_torch(self, t):
        """The ``torch.nn`` module computing this layer (its state is copied in afterwards).

        The default builds ``torch_modules[0]`` with :attr:`torch_args` read off the layer.

        Parameters
        ----------
        t : module
            :mod:`minidl.interop._torch`: ``t.nn`` is ``torch.nn``, ``t.module(name)``
            a torch.nn class or one of minidl's extras, ``t.dtype(layer)`` the torch
            dtype of the layer's arrays.

        Returns
        -------
        torch.nn.Module

        Raises
        ------
        Unsupported
            No torch equivalent.
        """
        if not self.torch_modules:
            raise Unsupported("has no torch.nn equivalent")
        return t.module(self.torch_modules[0])(**{k: getattr(self, a) for k, a in self.torch_args.items()})

    @classmethod
    def from_torch(cls, module, t):
        """The layer equivalent to ``module`` (one of :attr:`torch_modules`), without its state.

        The default calls ``cls`` with :attr:`torch_args` read off the module.

        Parameters
        ----------
        module : torch.nn.Module
        t : module
            As for :meth:`to_torch`; ``t.np_dtype(module)`` is the numpy dtype of its weights.

        Returns
        -------
        Layer

        Raises
        ------
        Unsupported
            An option minidl cannot represent (the message names it).
        """
        return cls(**{a: getattr(module, k) for k, a in cls.torch_args.items()})

    @classmethod
    def from_onnx_node(cls, node):
        """The layer computing one ONNX node (its :attr:`onnx_op` or one of :attr:`onnx_imports`), weights set.

        :func:`minidl.export.from_onnx` calls it, for ONNX files minidl did not write, on the
        class that declares the node's op. The default builds ``cls`` with :attr:`onnx_attrs`
        read off the node's attributes, for a node whose every input is computed at run time
        and which has no attribute outside :attr:`onnx_attrs`.

        Parameters
        ----------
        node : OnnxNode
            The op, its attributes (defaults filled in), its constant inputs and its input's shape.

        Returns
        -------
        Layer
            In training mode, its parameters the node's constants (trainable).

        Raises
        ------
        Unsupported
            A form of the op minidl cannot compute (the message says why; the importer adds
            the node, op and opset).

        Examples
        --------
        >>> from minidl.layers import LeakyReLU
        >>> LeakyReLU.from_onnx_node(OnnxNode("LeakyRelu", {"alpha": 0.2}, (None,), 1, (1, 4), 1, 17))
        LeakyReLU(negative_slope=0.2)
        """
        extra = sorted(set(node.attrs) - set(cls.onnx_attrs))
        if extra:
            raise Unsupported(f"with the attribute(s) {extra}, which {cls.__name__} has no form for")
        if node.tensors != len(node.consts):
            raise Unsupported(f"with constant or missing inputs ({cls.__name__} computes on run-time inputs only)")
        return cls(**{a: node.attrs[k] for k, a in cls.onnx_attrs.items() if k in node.attrs})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.extra_repr()})"


class Saved(tuple):
    """What :meth:`Layer.save_for_backward` kept: a tuple whose named values are attributes too
    (plain instance attributes: reading ``saved.x`` costs what any attribute does)."""

    def __new__(cls, values, named):
        saved = super().__new__(cls, values + tuple(named.values()) if values else tuple(named.values()))
        saved.__dict__.update(named)
        return saved

    def __reduce__(self):  # copy.deepcopy and pickle rebuild it with its names
        named = dict(self.__dict__)
        return Saved, (tuple(self)[:len(self) - len(named)], named)

    def __getattr__(self, name):  # only reached for a name that was not saved
        raise AttributeError(f"nothing was saved for backward as {name!r}; saved by name: {list(self.__dict__)}")


@functools.lru_cache(maxsize=None)
def _takes_input_grad(backward) -> bool:
    """Whether a ``backward`` function accepts the ``input_grad`` keyword."""
    params = inspect.signature(backward).parameters
    return "input_grad" in params or any(p.kind is p.VAR_KEYWORD for p in params.values())


@functools.lru_cache(maxsize=None)
def constructor_args(init) -> tuple:
    """``((name, default), ...)`` of an ``__init__``'s named arguments, ``self`` and ``rng`` aside
    (default ``None`` for a required one)."""
    params = list(inspect.signature(init).parameters.values())[1:]
    return tuple((p.name, None if p.default is p.empty else p.default) for p in params
                 if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "rng")


def _jsonable(value):
    """Tuples as lists (recursively), dtypes as their names: what the architecture's JSON holds."""
    if isinstance(value, (tuple, list)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.dtype, type)):
        return np.dtype(value).name
    return value


def recipe_class(layer_cls, recipe: str):
    """The class whose ``recipe`` (``"to_onnx"``, ``"to_torch"``) applies to ``layer_cls``, or None.

    A subclass inherits its parent's recipes unless it computes something else: a class
    that overrides ``forward`` below the recipe's class has none until it writes its own
    (a user's ``class MyReLU(ReLU)`` with its own forward is not exported as ``Relu``).
    """
    declared = {"to_onnx": ("onnx_op", "to_onnx"), "to_torch": ("torch_modules", "to_torch")}[recipe]
    owner = next((k for k in layer_cls.__mro__ if any(n in vars(k) for n in declared)), None)
    forward = next((k for k in layer_cls.__mro__ if "forward" in vars(k)), None)
    if owner is None or owner is Layer or forward is None or not issubclass(owner, forward):
        return None
    return owner


def onnx_pads(pads) -> list:
    """minidl's ``((top, bottom), (left, right))`` as ONNX's ``[top, left, bottom, right]``."""
    (pt, pb), (pl, pr) = pads
    return [int(pt), int(pl), int(pb), int(pr)]


def onnx_padding(attrs, input_shape, kernel_size, stride, dilation=(1, 1)):
    """minidl's padding for an ONNX Conv or pool node's ``auto_pad`` and ``pads``: ``'valid'``,
    ``'same'`` (SAME_UPPER is Keras's rule), ``(ph, pw)`` or ``((top, bottom), (left, right))``."""
    auto = attrs.get("auto_pad", "NOTSET")
    if auto == "VALID":
        return "valid"
    if auto == "SAME_UPPER":
        return "same"
    if auto == "SAME_LOWER":  # the odd extra row/column first
        (pt, pb), (pl, pr) = resolve_padding("same", input_shape[2:], kernel_size, stride, dilation)
        return (pb, pt), (pr, pl)
    if auto != "NOTSET":
        raise Unsupported(f"with auto_pad={auto!r}")
    pads = list(attrs.get("pads") or [0, 0, 0, 0])
    if len(pads) != 4 or min(pads) < 0:
        raise Unsupported(f"with pads={pads} (four pads >= 0 for 2-D data)")
    if pads[0] == pads[2] and pads[1] == pads[3]:
        return int(pads[0]), int(pads[1])
    return (int(pads[0]), int(pads[2])), (int(pads[1]), int(pads[3]))


def set_arrays(layer, **arrays):
    """Copy ``arrays`` into the layer's parameters/buffers of the same names (an ONNX node's constants)."""
    for name, value in arrays.items():
        target = getattr(layer, name)
        target = target.data if isinstance(target, Parameter) else target
        if target.shape != np.shape(value):
            raise Unsupported(f"with {name} of shape {np.shape(value)}; {target.shape} expected")
        target[...] = value
    return layer


def torch_padding(padding, kernel_size):
    """minidl's symmetric ``padding`` as torch's: an int, a pair, or 0 for 'valid'."""
    if isinstance(padding, str):
        return 0
    if isinstance(padding, (int, np.integer)):
        return int(padding)
    if all(isinstance(p, (int, np.integer)) for p in padding):
        return tuple(int(p) for p in padding)
    (pt, _), (pl, _) = resolve_padding(padding, (1, 1), kernel_size)
    return pt, pl
