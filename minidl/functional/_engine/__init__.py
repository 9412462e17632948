"""The engine behind :mod:`minidl.functional`: speed machinery; nothing here is math a learner needs; skip it.

The math -- one module per op in :mod:`minidl.functional`, forward and backward side by side,
with the formulas in their docstrings and the derivations in ``docs/`` -- calls in here for how
the work is done fast and within a memory budget:

* :mod:`.blas` -- the matrix products, BLAS's threads and the split of a batch over threads.

The wall: modules here import each other and :mod:`minidl.validation`, never a math module of
:mod:`minidl.functional` (the dependencies run from the math to the engine only).
"""
