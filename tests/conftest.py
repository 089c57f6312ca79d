import sys
from pathlib import Path

import pytest

# tests/reference.py is a helper module next to the tests, not part of fixar.
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(params=["numba", "numpy"])
def route(request, monkeypatch):
    """Runs a golden-model test with numba's kernels, then with the numpy
    route that FIXAR_NO_NUMBA=1 selects (the same bits either way)."""
    from fixar.golden.fixed import numba_kernels
    if request.param == "numba":
        monkeypatch.delenv("FIXAR_NO_NUMBA", raising=False)
        if numba_kernels() is None:
            pytest.skip("numba cannot be imported here")
    else:
        monkeypatch.setenv("FIXAR_NO_NUMBA", "1")
        assert numba_kernels() is None
    return request.param
