"""pytest configuration at the repository root (the doctests of the minidl package)."""

import importlib.util

# Modules whose import needs an optional package: without it their doctests are not
# collected (the tests using them skip on their own, with the reason).
#   minidl.plot draws with matplotlib (the `plot` extra);
#   minidl.interop._torch builds torch modules (torch, the test oracle).
collect_ignore_glob = []
if importlib.util.find_spec("matplotlib") is None:
    collect_ignore_glob.append("minidl/plot/*.py")
if importlib.util.find_spec("torch") is None:
    collect_ignore_glob.append("minidl/interop/_torch.py")
