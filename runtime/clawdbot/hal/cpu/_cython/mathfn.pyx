# cython: language_level=3
"""Elementwise math numpy has no ufunc for (compiled kernel).

erf: the C library's, correctly rounded to within an ulp (glibc), in one pass with no temporaries, so BERT's
GELU (x * (1 + erf(x / sqrt 2)) / 2) needs neither scipy nor a polynomial on the hot path. Callers go
through hal/cpu/kernels/elementwise.py, which handles non-contiguous arrays and other dtypes.
"""

from libc.math cimport erf as c_erf, erff as c_erff

from ._typedefs cimport floating, index_t


def erf(const floating[::1] x, floating[::1] out):
    """out[i] = erf(x[i]); out may be x."""
    cdef index_t i, n = x.shape[0]
    if out.shape[0] != n:
        raise ValueError(f"erf: out has {out.shape[0]} elements, x has {n}")
    with nogil:
        if floating is float:
            for i in range(n):
                out[i] = c_erff(x[i])
        else:
            for i in range(n):
                out[i] = c_erf(x[i])
