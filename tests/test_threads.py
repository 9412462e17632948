"""minidl.set_num_threads / get_num_threads: the one thread setting."""

from __future__ import annotations

import numpy as np
import pytest

import minidl as mdl
from minidl.functional._engine import blas

threadpoolctl = pytest.importorskip("threadpoolctl")


@pytest.fixture(autouse=True)
def default_setting():
    """Every test starts and ends with the default (BLAS's own thread count)."""
    mdl.set_num_threads(None)
    yield
    mdl.set_num_threads(None)


def test_set_get_round_trip_and_default():
    default = mdl.get_num_threads()
    assert default == max([lib.num_threads for lib in blas.blas_libraries()], default=1)
    for n in (1, 2, 5, np.int64(3)):
        mdl.set_num_threads(n)
        assert mdl.get_num_threads() == n and type(mdl.get_num_threads()) is int
    mdl.set_num_threads(None)
    assert mdl.get_num_threads() == default


def test_restoring_a_value_read_before():
    old = mdl.get_num_threads()
    mdl.set_num_threads(1)
    mdl.set_num_threads(old)
    assert mdl.get_num_threads() == old


def test_the_default_follows_blas_and_is_not_blas_one_thread_inside_a_block():
    """Unset, the setting is BLAS's own count: an outer threadpool_limits lowers it; inside the
    Trainer's block (BLAS on one thread) it is still the count BLAS had before."""
    if not blas.blas_libraries():
        pytest.skip("no BLAS library visible to threadpoolctl")
    default = mdl.get_num_threads()
    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        assert mdl.get_num_threads() == 1
    with blas.auto_threads():
        assert [lib.num_threads for lib in blas.blas_libraries()] == [1] * len(blas.blas_libraries())
        assert mdl.get_num_threads() == default


@pytest.mark.parametrize("bad, error", [(0, ValueError), (-2, ValueError), (1.5, TypeError), (2.0, TypeError),
                                        (True, TypeError), ("2", TypeError)])
def test_bad_values_are_refused_and_change_nothing(bad, error):
    mdl.set_num_threads(3)
    with pytest.raises(error, match=r"^minidl\.set_num_threads: n must be .*None for the default.*Received: n="):
        mdl.set_num_threads(bad)
    assert mdl.get_num_threads() == 3
