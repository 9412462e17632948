"""The layer graph: a named-node DAG, and Sequential, a chain on the same engine."""

from __future__ import annotations

import weakref

from .layers.base import Layer
from .layers.tree import layer_state_restored, walk_layers  # noqa: F401 - their import path before the split

__all__ = ["Graph", "Sequential", "check_node_name"]

INPUT = "input"


class Graph(Layer):
    r"""A directed acyclic graph of named layers; itself a layer, so graphs nest.

    ``add(name, layer, inputs)`` appends a node fed by earlier nodes (``"input"``
    is the graph's input). The output is the last node added unless
    :meth:`set_output` names another. Parameters are named ``"<node>.weight"``.

    Notes
    -----
    Forward runs the nodes in the order they were added (a topological order,
    since a node can only read nodes that already exist). Backward walks that
    order in reverse; where one value feeds several nodes, the gradients that
    come back from each consumer are added up (the multivariate chain rule).

    Examples
    --------
    >>> from minidl import layers
    >>> g = Graph()
    >>> g.add("conv", layers.Conv2D(1, 1, 3, padding=1, rng=np.random.default_rng(0)), "input")
    >>> g.add("relu", layers.ReLU(), "conv")
    >>> g.add("sum", layers.Add(), ["input", "relu"])   # a residual connection
    >>> g(np.ones((2, 1, 4, 4), np.float32)).shape
    (2, 1, 4, 4)
    """

    def __init__(self):
        super().__init__()
        self._nodes: dict[str, tuple[Layer, tuple[str, ...]]] = {}
        self._output: str | None = None
        self._plan: list[str] | None = None
        self._steps = None
        self._members: dict[int, str] | None = None  # id -> path of every layer inside (lazy)
        self._members_of: int | None = None  # id(self) when _members was built (a copy rebuilds)
        self._parents: list = []  # weakrefs to graphs holding this one as a node (to invalidate theirs)

    # ------------------------------------------------------------- building
    def add(self, name: str, layer: Layer, inputs=None) -> None:
        """Add node ``name`` computing ``layer(*inputs)``.

        Parameters
        ----------
        name : str
            Unique, non-empty, without ``.`` (it becomes part of parameter names),
            and not ``"input"``.
        layer : Layer
            A layer instance not used at any other node of this graph.
        inputs : str or list of str, optional
            Names of earlier nodes or ``"input"``; defaults to the last node added
            (or ``"input"`` for the first node).
        """
        where = f"{type(self).__name__}.add"
        check_node_name(name, where)
        if name in self._nodes:
            raise ValueError(f"{where}: a node named {name!r} already exists; node names must be unique.")
        if not isinstance(layer, Layer):
            raise TypeError(
                f"{where}: node {name!r} must be a minidl Layer instance. "
                f"Received: {type(layer).__name__}."
            )
        self._check_not_shared(name, layer, where)
        if inputs is None:
            inputs = next(reversed(self._nodes)) if self._nodes else INPUT
        if isinstance(inputs, str):
            inputs = (inputs,)
        inputs = tuple(inputs)
        if not inputs:
            raise ValueError(f"{where}: node {name!r} needs at least one input.")
        known = [INPUT, *self._nodes]
        for inp in inputs:
            if inp not in known:
                raise ValueError(
                    f"{where}: node {name!r} reads unknown input {inp!r}. "
                    f"Known nodes so far: {known}. Add the producer first."
                )
        self._nodes[name] = (layer, inputs)
        self._plan = None
        if self._members is not None:
            for path, sub in walk_layers(layer, name):
                self._members.setdefault(id(sub), f"node {path!r}")
        if isinstance(layer, Graph):
            layer._parents.append(weakref.ref(self))
        self._invalidate_parents()

    def _invalidate_parents(self) -> None:
        for ref in self._parents:
            parent = ref()
            if parent is not None:
                parent._members = None
                parent._invalidate_parents()

    def _member_paths(self) -> dict[int, str]:
        """``{id(layer): where}`` for every layer inside this graph, kept up to date by
        :meth:`add` (so building a graph of n nodes costs O(n), not O(n^2))."""
        if self._members is None or self._members_of != id(self):
            members = {id(self): "this graph"}
            for node, (existing, _) in self._nodes.items():
                for path, sub in walk_layers(existing, node):
                    members.setdefault(id(sub), f"node {path!r}")
            self._members, self._members_of = members, id(self)
        return self._members

    def _check_not_shared(self, name: str, layer: Layer, where: str) -> None:
        """Refuse ``layer`` if it (or a layer nested in it) already sits anywhere in this graph.

        Instances are compared by identity through every nested graph: a shared
        instance would have one forward cache for two positions, so its
        gradients would be wrong.
        """
        if layer is self:
            raise ValueError(f"{where}: a graph cannot contain itself (node {name!r}).")
        here = self._member_paths()
        for path, sub in walk_layers(layer, name):
            if id(sub) in here:
                what = "this graph itself" if sub is self else f"already {here[id(sub)]}"
                raise ValueError(
                    f"{where}: the {sub!r} instance at {path!r} is {what}; one layer "
                    f"instance cannot sit at two nodes (its cache and gradients would clash). "
                    f"Create a second instance, or feed the existing node's output to both consumers."
                )

    def set_output(self, name: str) -> None:
        """Make node ``name`` the graph's output (default: the last node added).

        Parameters
        ----------
        name : str
            A node added before (a ValueError otherwise).
        """
        if name not in self._nodes:
            raise ValueError(
                f"{type(self).__name__}.set_output: unknown node {name!r}. Known nodes: {list(self._nodes)}."
            )
        self._output = name
        self._plan = None

    @property
    def output_override(self) -> str | None:
        """The node named by :meth:`set_output`, or None when the output is the last node."""
        return self._output

    @property
    def output_name(self) -> str:
        """The output node's name (a RuntimeError for an empty graph)."""
        if not self._nodes:
            raise RuntimeError(f"{type(self).__name__}: the graph is empty; add nodes first.")
        return self._output if self._output is not None else next(reversed(self._nodes))

    @property
    def nodes(self) -> dict:
        """``{name: (layer, inputs)}`` in insertion order (read-only view)."""
        return dict(self._nodes)

    def execution_plan(self) -> list[str]:
        """The names of the nodes the output depends on, in the order they run.

        Insertion order is topological (a node's inputs are added before it); nodes
        the output does not need are left out. Exporters walk this list.

        Returns
        -------
        list of str

        Examples
        --------
        >>> from minidl.layers import ReLU, Tanh
        >>> g = Graph()
        >>> g.add("a", ReLU()); g.add("unused", Tanh()); g.set_output("a")
        >>> g.execution_plan()
        ['a']
        """
        if self._plan is None:
            needed = {self.output_name}
            for name in reversed(self._nodes):
                if name in needed:
                    needed.update(i for i in self._nodes[name][1] if i != INPUT)
            self._plan = [n for n in self._nodes if n in needed]
        return self._plan

    # ---------------------------------------------------------- computation
    def _forward_steps(self):
        """``[(name, layer, inputs, inputs_to_free)]``, cached with the plan.

        ``inputs_to_free`` are the values whose last consumer is this node: they
        are dropped right after it runs, to free memory early.
        """
        plan = self.execution_plan()
        if self._steps is None or self._steps[0] is not plan:
            last_use = {}
            for name in plan:
                for inp in self._nodes[name][1]:
                    last_use[inp] = name
            steps = []
            for name in plan:
                layer, inputs = self._nodes[name]
                free = tuple(i for i in dict.fromkeys(inputs) if last_use[i] == name and i != INPUT)
                steps.append((name, layer, inputs, free))
            self._steps = (plan, steps)
        return self._steps[1]

    def forward(self, x):
        values = {INPUT: x}
        for name, layer, inputs, free in self._forward_steps():
            if len(inputs) == 1:
                values[name] = layer(values[inputs[0]])
            else:
                values[name] = layer(*(values[i] for i in inputs))
            for inp in free:
                del values[inp]
        self.save_for_backward()  # nothing to keep: a marker that forward ran (in training mode)
        return values[self.output_name]

    def backward(self, grad_output, *, input_grad=True):
        # without input_grad, nodes that read only the graph's input are asked for their parameter
        # gradients alone (backward_params): the first convolution never computes an unused dX
        self.require_cache(self._saved)  # backward without its forward -> RuntimeError
        grads = {self.output_name: grad_output}
        # Every node of the plan is the output or an input of a later node of the plan, so
        # walking the plan backwards, each node finds its gradient in ``grads``; and every
        # node descends from "input", so with input_grad its gradient is there at the end.
        for name in reversed(self.execution_plan()):
            layer, inputs = self._nodes[name]
            if not input_grad and all(inp == INPUT for inp in inputs):
                layer.backward_params(grads.pop(name))
                continue
            grad_in = layer.backward(grads.pop(name))
            if len(inputs) == 1 and not isinstance(grad_in, tuple):
                grad_in = (grad_in,)
            if len(grad_in) != len(inputs):
                raise RuntimeError(
                    f"{type(self).__name__}: node {name!r} ({layer!r}) has {len(inputs)} inputs "
                    f"but its backward returned {len(grad_in)} gradients."
                )
            for inp, g in zip(inputs, grad_in):
                # never add in place: a layer may return the same array for several inputs
                grads[inp] = g if inp not in grads else grads[inp] + g
        return grads[INPUT] if input_grad else None

    # -------------------------------------------------------------- children
    def named_children(self):
        for name, (layer, _) in self._nodes.items():
            yield name, layer

    def __len__(self) -> int:
        return len(self._nodes)

    def __getitem__(self, name):
        return self._nodes[name][0]

    # ----------------------------------------------------------------- views
    def _sources(self, inputs) -> str | None:
        """How :meth:`summary` and ``repr`` show a node's inputs; None: not shown (a chain)."""
        return ", ".join(inputs)

    def summary(self, input_shape=None, dtype=None) -> str:
        """A table of nodes, output shapes and parameter counts, as Keras's ``model.summary()``.

        Parameters
        ----------
        input_shape : tuple, optional
            Shape of ONE sample, without the batch axis, e.g. ``(1, 8, 8)``. Without it, the
            shape the first layer fixes: a first Dense fixes ``(in_features,)``; a first Conv2D
            only the channels, so output shapes that depend on the height and width show
            ``?`` (e.g. ``(N, 16, ?, ?)``; the axes that differ between two probe sizes, 64
            and 96) and a last line says to pass ``(C, H, W)``.
        dtype : dtype, optional
            Defaults to the first parameter's dtype (float32 for an empty model).

        Returns
        -------
        str
            The table (print it), computed by one eval-mode forward pass of a
            zero sample (two with '?' axes); the model's mode and caches are left as
            they were. Below it, as Keras prints them: ``Total params`` (trainable plus
            non-trainable), ``Trainable params`` (every parameter: minidl has no
            ``requires_grad`` flag; :meth:`num_parameters`) and ``Non-trainable params``
            (the floating-point buffers, such as BatchNorm's running mean and variance, which
            Keras counts as non-trainable weights; not integer counters such as
            ``num_batches_tracked``). The ``params`` column counts each node's parameters.

        Raises
        ------
        ValueError
            No ``input_shape`` and the first layer fixes none (a Flatten, an activation...).
        TypeError
            ``input_shape`` is not a tuple of ints >= 1.

        Examples
        --------
        >>> from minidl import layers
        >>> model = Sequential(layers.Conv2D(1, 4, 3, padding=1, rng=0), layers.ReLU())
        >>> lines = model.summary().splitlines()
        >>> print(lines[3])
        0 (Conv2D)    (N, 4, ?, ?)      40
        >>> print(lines[-5])
        Total params: 40
        >>> print(lines[-1])
        call summary((1, H, W)) with your images' size to compute them.
        """
        from .graph_summary import summary_table  # it reads the graph's nodes; graph does not need it

        return summary_table(self, input_shape, dtype)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        for name, (layer, inputs) in self._nodes.items():
            child = repr(layer).replace("\n", "\n  ")
            src = self._sources(inputs)
            lines.append(f"  ({name}): {child}" + ("" if src is None else f" <- {src}"))
        if self._output is not None and self._sources(()) is not None:
            lines.append(f"  output: {self._output}")
        return "\n".join(lines) + "\n)" if self._nodes else f"{type(self).__name__}()"


class Sequential(Graph):
    r"""A chain of layers: node ``str(i)`` feeds node ``str(i + 1)``.

    Parameters
    ----------
    *layers : Layer
        In order (or one list or tuple of them).

    Parameter names are those of :class:`torch.nn.Sequential` (``"0.weight"``,
    ``"3.bias"``), so a PyTorch state dict of the same architecture loads with
    ``model.load_state_dict({k: v.numpy() for k, v in torch_model.state_dict().items()})``.

    Examples
    --------
    >>> from minidl import layers
    >>> model = Sequential(layers.Flatten(), layers.Dense(4, 2, rng=np.random.default_rng(0)))
    >>> [name for name, _ in model.named_parameters()]
    ['1.weight', '1.bias']
    """

    def __init__(self, *layers):
        super().__init__()
        if len(layers) == 1 and isinstance(layers[0], (list, tuple)):
            layers = tuple(layers[0])
        for layer in layers:
            self.append(layer)

    def add(self, name_or_layer, layer=None, inputs=None) -> None:
        """Keras's ``model.add(layer)``: append ``layer`` at the end of the chain.

        ``add(name, layer, inputs)`` adds a node as :meth:`Graph.add` does.

        Parameters
        ----------
        name_or_layer : Layer or str
            The layer to append, or a node name (then ``layer`` and ``inputs`` as in Graph.add).
        layer : Layer, optional
        inputs : str or list of str, optional
            Node names, not arrays.

        Shape
        -----
        No arrays: the appended layer takes the previous layer's output.

        Examples
        --------
        >>> from minidl.layers import Dense, ReLU
        >>> model = Sequential()
        >>> model.add(Dense(4, 3, rng=0)); model.add(ReLU())
        >>> model
        Sequential(
          (0): Dense(in_features=4, out_features=3)
          (1): ReLU()
        )
        """
        if layer is None and isinstance(name_or_layer, Layer):
            self.append(name_or_layer)
            return
        super().add(name_or_layer, layer, inputs)

    def append(self, layer: Layer) -> "Sequential":
        """Add ``layer`` at the end of the chain; returns ``self``.

        Parameters
        ----------
        layer : Layer

        Returns
        -------
        Sequential
            ``self``.
        """
        Graph.add(self, str(len(self._nodes)), layer, next(reversed(self._nodes)) if self._nodes else INPUT)
        return self

    def __getitem__(self, index):
        layers = [layer for layer, _ in self._nodes.values()]
        if isinstance(index, slice):
            return Sequential(*layers[index])
        return layers[index]

    def __iter__(self):
        return iter([layer for layer, _ in self._nodes.values()])

    def _sources(self, inputs) -> None:
        return None  # each node reads the one before it: summary and repr need not say so


_ZIP_UNSAFE = ("/", "\\")


def check_node_name(name, where: str) -> None:
    """Refuse node names that cannot be part of parameter names and file member names.

    A name must be a non-empty printable str of at most 200 characters, without
    ``.`` (it separates the parts of parameter names), ``/`` or ``\\``
    (zip member names would collide or be rewritten), and not ``"input"``.
    ``\\x00`` and other control characters are not printable: zip truncates
    member names at ``\\x00``, so ``"a\\x00b"`` and ``"a\\x00c"`` would collide.

    Parameters
    ----------
    name : str
    where : str
        The caller, named in the error.

    Examples
    --------
    >>> check_node_name("conv1", "Graph.add")
    >>> check_node_name("conv.1", "Graph.add")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Graph.add: node name 'conv.1' contains '.', which separates ...
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"{where}: node name must be a non-empty str. Received: {name!r}")
    if "." in name:
        raise ValueError(
            f"{where}: node name {name!r} contains '.', which separates the parts of "
            f"parameter names ('{name}.weight'); use '_' instead."
        )
    if not name.isprintable() or any(c in name for c in _ZIP_UNSAFE) or len(name) > 200:
        raise ValueError(
            f"{where}: node name {name!r} must be printable, at most 200 characters, and free "
            f"of control characters (such as '\\x00'), '/' and '\\', which would clash in "
            "saved files' member names. Use letters, digits, '_' or '-'."
        )
    if name == INPUT:
        raise ValueError(f"{where}: {INPUT!r} is reserved for the graph's input; pick another name.")
