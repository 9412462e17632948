"""Render minidl's numpydoc-style ``Shape`` section (torch-like), which numpydoc does not know.

numpydoc drops a section it does not know (with a Python warning). A handler that runs
before numpydoc's (priority 400 < numpydoc's 500) takes the ``Shape`` section out of the
docstring; a handler that runs after it (priority 600) puts it back into numpydoc's output
as a ``.. rubric:: Shape`` followed by the section's text, before the Notes / References /
Examples rubrics (or at the end), so the Shape reads after Parameters and Returns.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^(\s*)(\S.*?)\s*$")
_BEFORE = (".. seealso::", ".. rubric:: Notes", ".. rubric:: References", ".. rubric:: Examples")


def _is_header(lines, i):
    """True when ``lines[i]`` is a section title underlined by dashes on the next line."""
    if i + 1 >= len(lines) or not lines[i].strip():
        return False
    under = lines[i + 1].strip()
    return len(under) >= 3 and set(under) == {"-"} and len(under) == len(lines[i].strip())


def extract_shape(lines):
    """Remove the ``Shape`` section from ``lines`` (in place); return its body (dedented lines)."""
    for i in range(len(lines)):
        if lines[i].strip() == "Shape" and _is_header(lines, i):
            end = i + 2
            while end < len(lines) and not _is_header(lines, end):
                end += 1
            body = lines[i + 2 : end]
            del lines[i:end]
            while body and not body[-1].strip():
                body.pop()
            indent = min((len(b) - len(b.lstrip()) for b in body if b.strip()), default=0)
            return [b[indent:] for b in body]
    return None


def insert_shape(lines, body):
    """Insert ``.. rubric:: Shape`` and ``body`` into numpydoc's rendered ``lines`` (in place)."""
    at = next((i for i, line in enumerate(lines) if line.strip().startswith(_BEFORE)), len(lines))
    lines[at:at] = ["", ".. rubric:: Shape", "", *body, ""]


_pending: dict[tuple[str, str], list[str]] = {}


def _before_numpydoc(app, what, name, obj, options, lines):
    body = extract_shape(lines)
    if body is not None:
        _pending[(what, name)] = body


def _after_numpydoc(app, what, name, obj, options, lines):
    body = _pending.pop((what, name), None)
    if body is not None:
        insert_shape(lines, body)


def setup(app):
    app.connect("autodoc-process-docstring", _before_numpydoc, priority=400)
    app.connect("autodoc-process-docstring", _after_numpydoc, priority=600)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
