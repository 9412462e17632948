"""pytest configuration at the repository root (the doctests of the minidl package)."""

import importlib.util

# minidl.plot's examples draw with matplotlib (the optional `plot` extra): without it,
# their doctests are not collected (tests/test_plot.py skips on its own).
collect_ignore_glob = [] if importlib.util.find_spec("matplotlib") else ["minidl/plot/*.py"]
