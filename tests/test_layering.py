"""The package's import structure (issue 18): no import cycles, and the engine behind its wall.

Imports are read from the source with :mod:`ast` (at module level and inside functions, relative
ones resolved), as ``house.py`` reads them: an import of ``minidl.a.b.name`` counts as one of the
deepest module it names. Edges into a package's ``__init__`` are left out, as there: an
``__init__`` re-exports what its modules define, so ``from . import x`` in a package's own module
makes no cycle with it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import minidl

ROOT = Path(minidl.__file__).resolve().parent


def _modules():
    """``{dotted name: path}`` of every module of the package."""
    out = {}
    for path in sorted(ROOT.rglob("*.py")):
        parts = ("minidl",) + path.relative_to(ROOT).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(name, path, modules):
    """The package's modules that module ``name`` imports."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join(base + ([node.module] if node.module else []))
            targets = [module] + [f"{module}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def _graph(into_init=False):
    """``{module: the modules it imports}``; edges into an ``__init__`` only with ``into_init``."""
    modules = _modules()
    return {name: {t for t in _imports(name, path, modules) if into_init or modules[t].name != "__init__.py"}
            for name, path in modules.items()}


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_package_has_no_import_cycles():
    graph = _graph()
    assert len(graph) >= 50, sorted(graph)  # we are really looking at the package
    cycles = _cycles(graph)
    assert not cycles, "import cycles (break them by moving the shared piece):\n" + "\n".join(
        " <-> ".join(c) for c in cycles)


def test_the_cycle_finder_finds_a_cycle():
    """The check above can fail: a two-module cycle and a longer one are found, a chain is not."""
    graph = {"a": {"b"}, "b": {"a"}, "c": {"d"}, "d": {"e"}, "e": {"c"}, "f": {"a"}}
    assert sorted(_cycles(graph)) == [["a", "b"], ["c", "d", "e"]]
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_the_engine_imports_no_math_module():
    """``minidl.functional._engine`` is speed machinery behind a wall: the math of
    ``minidl.functional`` imports it, never the other way round."""
    graph = _graph(into_init=True)  # `from .. import relu` reaches over the wall too
    engine = [name for name in graph if name.startswith("minidl.functional._engine.")]
    assert len(engine) >= 6, engine  # blas, tiling, im2col, depthwise, conv_grads, padding
    upward = {name: sorted(t for t in graph[name] if t.startswith("minidl.functional")
                           and not t.startswith("minidl.functional._engine"))
              for name in engine}
    assert not any(upward.values()), f"engine modules importing math modules: {upward}"


def _code_lines(path):
    """Lines holding code: not blank, not comments, not docstrings (module, class, function)."""
    import io
    import tokenize

    source = path.read_text(encoding="utf-8")
    docs = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if (isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and body
                and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):
            docs.update(range(body[0].lineno, body[0].end_lineno + 1))
    skip = {tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT, tokenize.ENDMARKER}
    lines = set()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in skip:
            lines.update(n for n in range(tok.start[0], tok.end[0] + 1) if n not in docs)
    return len(lines)


def test_a_module_is_one_idea_of_at_most_300_code_lines():
    """The size rule counts code, not prose (issue 18): docstrings and comments are free."""
    sizes = {name: _code_lines(path) for name, path in _modules().items()}
    assert sizes["minidl.layers.base"] > 100  # the counter counts something
    big = {name: n for name, n in sizes.items() if n > 300}
    assert not big, f"modules over 300 code lines (split by idea, not to meet the count): {big}"
