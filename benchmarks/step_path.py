"""What a reader follows through one Conv2D training step: the package functions it runs, their files
and code lines (not speed: a measure of how easy the math is to find; issue 18).

    python benchmarks/step_path.py            # the summary
    python benchmarks/step_path.py --list     # every function, in the order first called

One step of ``Sequential(Conv2D(1, 4, 3, padding=1), Flatten(), Dense(256, 10))`` on a digits-shaped
batch (8, 1, 8, 8): forward, softmax cross-entropy, backward, one SGD step with momentum. Each phase
is traced separately (``sys.setprofile``, package files only). "Code lines" are a function's source
lines without its docstring, comments and blank lines; "re-entries" count how often the call path
comes back to a file it had left.
"""

from __future__ import annotations

import argparse
import ast
import io
import os
import sys
import tokenize
from collections import OrderedDict

import numpy as np

import minidl as mdl
from minidl import layers

PACKAGE = os.path.dirname(mdl.__file__)


def code_lines(path: str, first: int) -> int:
    """Code lines of the function defined at line ``first`` of ``path`` (docstring, comments, blanks excluded)."""
    source = open(path, encoding="utf-8").read()
    tree = ast.parse(source)
    node = next((n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                 and (n.lineno == first or (n.decorator_list and n.decorator_list[0].lineno == first))), None)
    if node is None:
        return 0
    skip = set()
    body = node.body
    if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
            and isinstance(body[0].value.value, str):
        skip.update(range(body[0].lineno, body[0].end_lineno + 1))
    lines = set()
    segment = "\n".join(source.splitlines()[node.lineno - 1:node.end_lineno])
    for tok in tokenize.generate_tokens(io.StringIO(segment).readline):
        if tok.type in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                        tokenize.ENDMARKER):
            continue
        line = tok.start[0] + node.lineno - 1
        if line not in skip:
            lines.add(line)
    return len(lines)


def trace(fn):
    """The package functions ``fn()`` calls, in first-call order, and the file re-entries."""
    seen: OrderedDict = OrderedDict()
    path, left = [], set()

    def profiler(frame, event, arg):
        if event != "call":
            return
        code = frame.f_code
        if not code.co_filename.startswith(PACKAGE):
            return
        key = (code.co_filename, code.co_firstlineno, code.co_qualname if hasattr(code, "co_qualname")
               else code.co_name)
        seen.setdefault(key, 0)
        seen[key] += 1
        if not path or path[-1] != code.co_filename:
            if path:
                left.add(path[-1])
            if code.co_filename in left:
                trace.reentries += 1
            path.append(code.co_filename)

    trace.reentries = 0
    sys.setprofile(profiler)
    try:
        fn()
    finally:
        sys.setprofile(None)
    return seen, trace.reentries


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--list", action="store_true", help="print every function (file:line name, code lines)")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    model = mdl.Sequential(layers.Conv2D(1, 4, 3, padding=1, rng=rng), layers.Flatten(),
                           layers.Dense(256, 10, rng=rng))
    loss = mdl.losses.SoftmaxCrossEntropy()
    opt = mdl.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    x = rng.random((8, 1, 8, 8), dtype=np.float32)
    y = np.arange(8) % 10
    model(x), loss(model(x), y), model.backward(loss.backward()), opt.step()  # warm: imports, caches
    state = {}
    phases = {
        "forward": lambda: state.update(out=model(x)),
        "loss": lambda: state.update(value=loss(state["out"], y)),
        "backward": lambda: (opt.zero_grad(), model.backward(loss.backward())),
        "sgd step": opt.step,
    }
    everything: OrderedDict = OrderedDict()
    print(f"{'phase':<10} {'functions':>9} {'files':>6} {'code lines':>10} {'re-entries':>10}")
    for name, fn in phases.items():
        seen, reentries = trace(fn)
        everything.update(seen)
        files = {f for f, _, _ in seen}
        lines = sum(code_lines(f, first) for f, first, _ in seen)
        print(f"{name:<10} {len(seen):>9} {len(files):>6} {lines:>10} {reentries:>10}")
    files = {f for f, _, _ in everything}
    lines = sum(code_lines(f, first) for f, first, _ in everything)
    print(f"{'one step':<10} {len(everything):>9} {len(files):>6} {lines:>10}")
    if args.list:
        for (f, first, name), calls in everything.items():
            print(f"  {os.path.relpath(f, os.path.dirname(PACKAGE))}:{first} {name} "
                  f"({code_lines(f, first)} code lines, {calls} calls)")


if __name__ == "__main__":
    main()
