"""CPU kernels: linalg family. numpy's matmul/einsum call OpenBLAS for float operands, det LAPACK's LU."""
from __future__ import annotations

import numpy as np

from .registry import kernel, kernel_factory


@kernel("matmul", out=True)
def matmul(a, b, out=None):
    return np.matmul(a, b, out=out)


@kernel("gemm", out=True)
def gemm(a, b, c=None, *, alpha, beta, trans_a, trans_b, out=None):
    if out is not None and a.dtype.kind != "f":
        np.copyto(out, gemm(a, b, c, alpha=alpha, beta=beta, trans_a=trans_a, trans_b=trans_b))
        return out
    y = np.matmul(a.T if trans_a else a, b.T if trans_b else b, out=out)
    if y.dtype.kind == "f":
        # Scale and add in place: the product is a fresh array (or the arena's), so no [M, N] temporaries.
        if alpha != 1.0:
            y *= y.dtype.type(alpha)
        if c is not None:
            y += c if beta == 1.0 else c * c.dtype.type(beta)
        return y
    # Integer gemm: ONNX leaves rounding unspecified; compute in float64 and cast back.
    out = y * alpha if alpha != 1.0 else y
    if c is not None:
        out = out + (c * beta if beta != 1.0 else c)
    return np.asarray(out).astype(a.dtype, copy=False)


@kernel_factory("einsum")
def einsum_factory(node, in_types, out_types):
    equation = node.attrs["equation"].replace(" ", "")
    dtype = np.dtype(out_types[0].dtype)
    # optimize=True chooses a contraction order (and BLAS for pairwise products); for one operand there is
    # nothing to plan, and planning costs more than the sum.
    optimize = len(node.inputs) > 1

    def run(*xs):
        return np.asarray(np.einsum(equation, *xs, optimize=optimize)).astype(dtype, copy=False)
    return run


@kernel("det")
def det(x):
    # LAPACK has no float16: factorise in float32. Empty batches give an empty result of the batch shape.
    work = np.float32 if x.dtype == np.float16 else x.dtype
    return np.asarray(np.linalg.det(x.astype(work, copy=False))).astype(x.dtype, copy=False)
