"""Smoke test of benchmarks/run.py: a tiny subset runs, exits 0 and prints its figures (no timed assertions)."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_run_py_quick_subset():
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--cases", "conv_8x8_16,digits_epoch",
         "--rounds", "1", "--threads", "1", "--no-write"],
        capture_output=True, text=True, timeout=120, env=env, cwd=ROOT, check=False)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "BLAS (threadpoolctl): " in out
    for case in ("conv_8x8_16 [1 thread]: minidl ", "digits_epoch [1 thread]: minidl "):
        assert case in out, out
    assert "of same-size numpy GEMM" in out
    if importlib.util.find_spec("torch") is None:
        assert "torch: skipped (not importable)" in out
    else:
        assert out.count("ratio minidl/torch") == 2, out


def test_run_py_rejects_unknown_case():
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--cases", "nope", "--no-write"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT, check=False)
    assert proc.returncode == 2 and "unknown case(s) ['nope']" in proc.stderr
