"""Session report: the largest conv and batchnorm parity errors the run saw (tests/test_conv.py,
tests/test_batchnorm.py)."""

import contextlib
import sys
import time
import tracemalloc

import pytest


def _batchnorm_parity(terminalreporter):
    """test_batchnorm's parity record, when its torch tests ran."""
    module = next((m for m in list(sys.modules.values())
                   if getattr(m, "__file__", None) and m.__file__.endswith("test_batchnorm.py")
                   and hasattr(m, "PARITY")), None)
    if module is not None and module.PARITY["configs"]:
        terminalreporter.write_line(
            "batchnorm parity: max |minidl - torch| = {values_grads:.3e} (values and gradients, training "
            "and eval), {running:.3e} (running statistics) over {configs} configs".format(**module.PARITY))


def pytest_terminal_summary(terminalreporter):
    """Print test_conv's parity record when its tests ran (each test asserts its own bound)."""
    _batchnorm_parity(terminalreporter)
    module = next((m for m in list(sys.modules.values())
                   if getattr(m, "__file__", None) and m.__file__.endswith("test_conv.py")
                   and hasattr(m, "PARITY")), None)
    if module is None:
        return
    p = module.PARITY
    if not (p["torch_configs"] or p["reference_configs"]):
        return
    if p["torch_configs"]:
        torch_part = "max |minidl - torch| = {torch:.3e} over {torch_configs} configs (worst: {where})".format(
            where=(p["torch_where"] or ("-",))[0], **p)
    else:  # no torch: say so, rather than print a maximum over nothing that reads like agreement
        torch_part = "not compared with torch (torch is not installed: pip install torch==2.13.0)"
    terminalreporter.write_line(
        "conv parity: {torch_part}; max |minidl - loop reference| = {reference:.3e} over {reference_configs} "
        "configs; max |reference - torch| = {ref_vs_torch}; hypothesis examples: parity "
        "{hypothesis_parity_examples}, gradcheck {hypothesis_gradcheck_examples}".format(
            torch_part=torch_part, **{**p, "ref_vs_torch": "{:.3e}".format(p["ref_vs_torch"]) if p["torch_configs"]
                                      else "-"}))


# ------------------------------------------------------------------ hostile files: refused cheaply
@pytest.fixture
def ceiling():
    """``with ceiling(seconds, peak_bytes):`` fails the test if the block takes longer or its tracemalloc
    peak (numpy reports its allocations to tracemalloc) is larger: a hostile file must be refused in
    milliseconds without allocating what it declares. The defaults are generous for a shared machine."""
    @contextlib.contextmanager
    def within(seconds=1.0, peak_bytes=4 * 2**20):
        tracemalloc.start()
        start = time.perf_counter()
        try:
            yield
            elapsed, peak = time.perf_counter() - start, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert elapsed < seconds, f"took {elapsed:.2f} s, more than the {seconds} s ceiling"
        assert peak < peak_bytes, f"peak {peak / 2**20:.2f} MiB, more than the {peak_bytes / 2**20:.1f} MiB ceiling"
    return within
