"""Every public function, class and method of minidl has a complete numpydoc docstring.

What is public: every module of the ``minidl`` package whose dotted name has no part starting
with ``_``; in each, the functions and classes named in its ``__all__`` (constants and submodules
are left out: constants are documented by ``#:`` comments); in each such class, the methods and
properties whose name does not start with ``_`` that it defines itself or inherits from a
private minidl class (``Layer.state_dict`` comes from ``minidl.layers.tree.LayerTree``). A
method that overrides one without writing a docstring of its own inherits the base's (as
:func:`inspect.getdoc` and Sphinx's autodoc do), and is checked with it, except for the names of
its arguments, which may differ from the base's (``Layer.forward(*inputs)``, ``Conv2D.forward(x)``).

The rules, checked with the small numpydoc section parser below (numpydoc itself is not a
test dependency):

* a one-line summary (the first line, before any section);
* only numpydoc's section headers (a misspelt ``Example`` or ``Return`` fails), each underlined
  with as many dashes as it has characters and after a blank line (numpydoc warns otherwise);
* ``Parameters`` when the callable takes arguments besides ``self``/``cls`` (for a class, its
  constructor's), and every argument named in it (``*args``/``**kwargs`` by their names);
* ``Returns`` when the function's own body has a ``return <value>`` that is not ``None`` (read
  from the source with :mod:`ast`), ``Yields`` when it ``yield``\\ s; abstract methods that only
  raise NotImplementedError are in ``RETURNS_ANYWAY`` below;
* ``Shape`` for layers and losses (subclasses of :class:`minidl.layers.Layer` and
  :class:`minidl.losses.Loss`, except those in ``NO_SHAPE``: Layer itself and the containers),
  for the kernels that :mod:`minidl.functional`
  exports, and for every callable that takes an argument named as in ``ARRAY_ARGS`` (``x``,
  ``targets``, ``grad_output``...);
* ``Examples`` (with at least one ``>>>`` line: they run as doctests through pyproject's
  ``--doctest-modules``) for every function and class, and for the methods named in
  ``METHODS_WITH_EXAMPLES`` (the calls a user writes: forward, backward, step, state_dict...;
  an override inherits the base's example, as the layers' forward/backward do Layer's); the
  other methods are shown by their class's examples.
Properties need the summary only.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
import textwrap

import pytest

import minidl
from minidl.layers import Layer
from minidl.losses import Loss

#: Section headers numpydoc knows (plus minidl's ``Shape``, as PyTorch's docs have it).
SECTIONS = {"Parameters", "Returns", "Yields", "Receives", "Other Parameters", "Raises", "Warns",
            "Warnings", "See Also", "Notes", "References", "Examples", "Attributes", "Methods",
            "Shape"}

#: Abstract methods: their body only raises NotImplementedError, but a subclass's returns a value.
RETURNS_ANYWAY = {
    "minidl.layers.base.Layer.forward",
    "minidl.layers.base.Layer.backward",
    "minidl.optim.lr_scheduler.LRScheduler.get_lr",
}

#: The abstract base, and the classes whose instances hold other layers: their Shape is their children's.
NO_SHAPE = {"minidl.layers.base.Layer", "minidl.graph.Graph", "minidl.graph.Sequential"}


def _public_modules():
    names = ["minidl"]
    for info in pkgutil.walk_packages(minidl.__path__, "minidl."):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return sorted(names)


def _qualname(obj):
    return f"{obj.__module__}.{obj.__qualname__}"


def _exported():
    """(qualified name, object, kind, None) of the functions and classes in the ``__all__`` lists."""
    seen, out = set(), []
    for modname in _public_modules():
        module = importlib.import_module(modname)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)):
                continue  # constants, submodules
            if not getattr(obj, "__module__", "").startswith("minidl") or id(obj) in seen:
                continue
            seen.add(id(obj))
            out.append((_qualname(obj), obj, "class" if inspect.isclass(obj) else "function", None))
    return out


def _methods(cls, public):
    """The methods and properties checked under ``cls``'s name: its own, and those of the private
    minidl classes it inherits from (Layer's state_dict is LayerTree's); a public base's are
    checked under the base's name."""
    public_bases = [k for k in cls.__mro__[1:] if id(k) in public]
    own = [k for k in cls.__mro__ if k is cls or not (
        id(k) in public or not k.__module__.startswith("minidl") or any(k in b.__mro__ for b in public_bases))]
    done, out = set(), []
    for klass in own:
        for attr, raw in vars(klass).items():
            if attr.startswith("_") or attr in done:
                continue
            done.add(attr)
            if isinstance(raw, property):
                out.append((f"{_qualname(cls)}.{attr}", raw, "property", cls))
            elif isinstance(raw, (staticmethod, classmethod)) or inspect.isfunction(raw):
                out.append((f"{_qualname(cls)}.{attr}", getattr(cls, attr), "method", cls))
    return out


def _public_objects():
    """(qualified name, object, kind, owner class or None) for everything the rules cover."""
    out = _exported()
    public = {id(obj) for _, obj, kind, _ in out if kind == "class"}
    for _, cls, kind, _ in list(out):
        if kind == "class":
            out.extend(_methods(cls, public))
    return sorted(out, key=lambda t: t[0])


def parse_sections(doc: str):
    """Split a numpydoc docstring into ``(summary, {header: body})``.

    A header is a line followed by a line of dashes of at least its length (the body runs to the
    next header). Unknown headers are kept, for the caller to reject.
    """
    lines = textwrap.dedent(doc).strip("\n").splitlines()
    sections, current, body = {}, None, []
    summary_lines = []
    i = 0
    while i < len(lines):
        line = lines[i]
        nxt = lines[i + 1] if i + 1 < len(lines) else ""
        if line.strip() and re.fullmatch(r"\s*-{3,}\s*", nxt) and len(nxt.strip()) >= len(line.strip()):
            if current is not None:
                sections[current] = "\n".join(body)
            current, body = line.strip(), []
            i += 2
            continue
        if current is None:
            summary_lines.append(line)
        else:
            body.append(line)
        i += 1
    if current is not None:
        sections[current] = "\n".join(body)
    summary = summary_lines[0].strip() if summary_lines else ""
    return summary, sections


def layout_problems(doc: str) -> list[str]:
    """What numpydoc would warn about in the headers: an underline of another length than its header
    ("potentially wrong underline length"), no blank line before a header."""
    lines = textwrap.dedent(doc).strip("\n").splitlines()
    out = []
    for i in range(len(lines) - 1):
        head, under = lines[i].strip(), lines[i + 1].strip()
        if head and re.fullmatch(r"-{3,}", under):
            if len(under) != len(head):
                out.append(f"underline of {head!r} is {len(under)} long, not {len(head)}")
            if i > 0 and lines[i - 1].strip():
                out.append(f"no blank line before {head!r}")
    return out


def documented_names(body: str) -> set[str]:
    """The names a Parameters section documents: ``a, b : type`` or ``name`` at the section's indent."""
    lines = [ln for ln in body.splitlines() if ln.strip()]
    if not lines:
        return set()
    indent = min(len(ln) - len(ln.lstrip()) for ln in lines)
    names = set()
    for ln in lines:
        if len(ln) - len(ln.lstrip()) != indent:
            continue
        head = ln.strip().split(" : ")[0].rstrip(":")
        for part in head.split(","):
            part = part.strip().lstrip("*")
            if part.isidentifier():
                names.add(part)
    return names


def _signature_params(obj, kind):
    target = obj
    if kind == "class":
        init = obj.__init__
        if init is object.__init__:
            return []
        target = init
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return []
    params = list(sig.parameters.values())
    if kind in ("class", "method") and params and params[0].name in ("self", "cls"):
        params = params[1:]  # (a classmethod read from its class is bound already: no cls)
    return [p.name for p in params]


class _ReturnFinder(ast.NodeVisitor):
    """Finds ``return <value>`` and ``yield`` in a function's own body (not in nested ones)."""

    def __init__(self):
        self.returns_value = self.yields = False
        self.depth = 0

    def _nested(self, node):
        self.depth += 1
        if self.depth == 1:
            self.generic_visit(node)
        self.depth -= 1

    visit_FunctionDef = visit_AsyncFunctionDef = visit_Lambda = visit_ClassDef = _nested

    def visit_Return(self, node):
        if node.value is not None and not (isinstance(node.value, ast.Constant) and node.value.value is None):
            self.returns_value = True
        self.generic_visit(node)

    def visit_Yield(self, node):
        self.yields = True
        self.generic_visit(node)

    visit_YieldFrom = visit_Yield


def _returns(func):
    """(returns a value, yields), read from the source."""
    func = inspect.unwrap(func)
    try:
        src = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):  # pragma: no cover
        return False, False
    finder = _ReturnFinder()
    finder.visit(ast.parse(src))
    return finder.returns_value, finder.yields


def _is_layer_like(cls):
    return issubclass(cls, (Layer, Loss)) and _qualname(cls) not in NO_SHAPE


#: The names minidl gives the array arguments of its API: a callable that takes one documents shapes.
ARRAY_ARGS = {"x", "y", "input", "inputs", "target", "targets", "logits", "images", "grad_output", "y_true",
              "y_pred", "probs", "labels"}
NOT_ARRAYS = {"minidl.graph.Graph.add"}  # its inputs are node names

#: Methods a user calls by name: each needs an example of its own (or its base's).
METHODS_WITH_EXAMPLES = {"forward", "backward", "step", "state_dict", "load_state_dict", "fit", "evaluate",
                         "predict", "zero_grad", "save_checkpoint", "load_checkpoint"}

_FUNCTIONAL = {id(getattr(minidl.functional, n)) for n in minidl.functional.__all__
               if callable(getattr(minidl.functional, n))}


def _own_doc(obj, kind):
    return kind == "class" or bool(getattr(obj, "__doc__", None))


def _missing_parameters_and_returns(qualname, obj, kind, sections):
    missing = []
    params = _signature_params(obj, kind)
    if params:
        if "Parameters" not in sections:
            missing.append("Parameters")
        elif _own_doc(obj, kind):  # an inherited docstring documents the base's argument names
            undocumented = [p for p in params if p not in documented_names(sections["Parameters"])]
            if undocumented:
                missing.append(f"Parameters lacks {undocumented}")
    if kind != "class":
        returns_value, yields = _returns(obj)
        if (returns_value or qualname in RETURNS_ANYWAY) and "Returns" not in sections:
            missing.append("Returns")
        if yields and "Yields" not in sections:
            missing.append("Yields")
    return missing


def problems(qualname, obj, kind, owner) -> list[str]:
    """What the docstring of ``obj`` lacks, as short phrases (empty when it is complete)."""
    doc = inspect.getdoc(obj) if kind != "property" else obj.__doc__
    if not doc or not doc.strip():
        return ["no docstring"]
    summary, sections = parse_sections(doc)
    missing = []
    if not summary:
        missing.append("no one-line summary")
    unknown = set(sections) - SECTIONS
    if unknown:
        missing.append(f"unknown section(s) {sorted(unknown)}")
    missing += layout_problems(doc)
    if kind == "property":
        return missing
    missing += _missing_parameters_and_returns(qualname, obj, kind, sections)
    arrays = bool(ARRAY_ARGS.intersection(_signature_params(obj, kind))) and qualname not in NOT_ARRAYS
    needs_shape = (arrays or id(obj) in _FUNCTIONAL
                   or (kind == "class" and _is_layer_like(obj)))
    if needs_shape and "Shape" not in sections:
        missing.append("Shape")
    needs_example = kind != "method" or obj.__name__ in METHODS_WITH_EXAMPLES
    if needs_example and ">>>" not in sections.get("Examples", ""):
        missing.append("Examples")
    return missing


OBJECTS = _public_objects()


def test_the_walk_finds_the_public_api():
    names = {q for q, *_ in OBJECTS}
    # a few names from each area, so that a broken walk cannot pass by finding nothing
    for expected in ("minidl.functional.conv.conv2d", "minidl.layers.conv.Conv2D", "minidl.train.trainer.Trainer.fit",
                     "minidl.optim.optimizer.Optimizer.step", "minidl.data.iterate_batches", "minidl.io.save"):
        assert expected in names
    assert len(OBJECTS) > 250


def test_parser_finds_a_missing_section():
    def f(x):
        """Double.

        Parameters
        ----------
        x : ndarray, shape (N,)

        Returns
        -------
        ndarray, shape (N,)

        Example
        -------
        >>> f(1)
        2
        """
        return 2 * x

    got = problems("f", f, "function", None)
    assert "unknown section(s) ['Example']" in got and "Examples" in got and "Shape" in got
    assert "Returns" not in got and "Parameters" not in got


def test_parser_finds_headers_numpydoc_would_warn_about():
    doc = "Summary.\n\nParameters\n---\nx : int\nReturns\n-------\nint\n"
    assert layout_problems(doc) == ["underline of 'Parameters' is 3 long, not 10",
                                    "no blank line before 'Returns'"]


def test_parser_names_undocumented_arguments():
    def g(a, b, *rest, key=None):
        """Sum.

        Parameters
        ----------
        a, b : int
        *rest : int

        Returns
        -------
        int

        Examples
        --------
        >>> g(1, 2)
        3
        """
        return a + b + sum(rest)

    assert problems("g", g, "function", None) == ["Parameters lacks ['key']"]


@pytest.mark.parametrize("qualname, obj, kind, owner", OBJECTS, ids=[q for q, *_ in OBJECTS])
def test_docstring_is_complete(qualname, obj, kind, owner):
    missing = problems(qualname, obj, kind, owner)
    assert not missing, f"{qualname} ({kind}): docstring lacks {', '.join(missing)}"
