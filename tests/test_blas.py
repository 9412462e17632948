"""minidl.functional.blas helpers: the bias add and the column sums equal numpy's plain forms."""

import numpy as np
import pytest

from minidl.functional import blas


@pytest.mark.parametrize("shape", [(37, 16), (3, 5, 7), (2, 8, 8, 16), (0, 4, 4, 32), (1, 300), (5, 1),
                                   (300, 16, 16), (4099, 17), (1, 70000)])
def test_add_row_vector_equals_broadcast_add(shape):
    rng = np.random.default_rng(0)
    a = rng.standard_normal(shape).astype(np.float32)
    v = rng.standard_normal(shape[-1]).astype(np.float32)
    expected = a + v
    assert blas.add_row_vector(a, v) is a
    np.testing.assert_array_equal(a, expected)


@pytest.mark.parametrize("shape", [(2048, 16), (0, 3), (7, 1)])
def test_column_sums_equal_sum_over_rows(shape):
    a = np.random.default_rng(1).standard_normal(shape)
    np.testing.assert_allclose(blas.column_sums(a), a.sum(axis=0), rtol=1e-12, atol=1e-12)
