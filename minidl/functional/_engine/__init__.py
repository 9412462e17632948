"""The engine behind :mod:`minidl.functional`: speed machinery; nothing here is math a learner needs; skip it.

The math -- one module per op in :mod:`minidl.functional`, forward and backward side by side,
with the formulas in their docstrings and the derivations in ``docs/`` -- calls in here for how
the work is done fast and within a memory budget:

* :mod:`.blas` -- the matrix products, BLAS's threads and the split of a batch over threads;
* :mod:`.tiling` -- the ``Geometry`` record the kernels take, and the cut of a convolution's
  output into pieces that fit the byte budget (``MAX_COLUMN_BYTES``);
* :mod:`.im2col` -- the convolution's unfolding into columns, piece by piece, and its GEMMs;
* :mod:`.depthwise` -- direct per-offset kernels for depthwise convolutions (no GEMM);
* :mod:`.conv_grads` -- the convolution's gradients on those pieces: the NCHW glue around the
  GEMMs, col2im, and the choice of the full-correlation, col2im and depthwise paths;
* :mod:`.padding` -- the copies of the non-zero padding modes and their adjoints.

The wall: modules here import each other, numpy and :mod:`minidl.validation`, never a math module
of :mod:`minidl.functional`: the dependencies run from the math to the engine only
(``tests/test_layering.py`` checks it).
"""
