# cython: language_level=3
# Shared declarations for the CPU driver's Cython kernels.
#
# Every kernel module in this package cimports from here so that they agree on
# the element types they specialise for and on the index type, and share the
# one piece of window geometry they all need (which output columns of a kernel
# tap land inside the input). Only ctypedefs and inline functions live here, so
# cimporting this file creates no runtime module dependency.

# The element types the kernels are compiled for. Other dtypes go to the numpy
# fallback in clawdbot.hal.cpu._numpy_kernels.
ctypedef fused floating:
    float
    double

# Signed, pointer-sized: window offsets go negative inside the padding.
ctypedef Py_ssize_t index_t


cdef inline index_t ceil_div_nonneg(index_t a, index_t b) noexcept nogil:
    # a >= 0, b > 0: plain integer arithmetic, no C truncation surprises.
    return (a + b - 1) // b


cdef inline void tap_range(index_t offset, index_t stride, index_t n_in,
                           index_t n_out, index_t* lo, index_t* hi) noexcept nogil:
    """Output positions o in [lo, hi) with 0 <= o*stride + offset < n_in.

    offset is where output 0 of this kernel tap reads (tap*dilation - pad).
    Splitting every output row into [0, lo) padding, [lo, hi) input and
    [hi, n_out) padding lets the hot loop run over [lo, hi) with no branches,
    which is what lets the compiler vectorise it.
    """
    cdef index_t first, last
    if offset >= 0:
        first = 0
    else:
        first = ceil_div_nonneg(-offset, stride)
    if offset > n_in - 1:
        last = 0
    else:
        last = (n_in - 1 - offset) // stride + 1
    if first > n_out:
        first = n_out
    if last > n_out:
        last = n_out
    if last < first:
        last = first
    lo[0] = first
    hi[0] = last
