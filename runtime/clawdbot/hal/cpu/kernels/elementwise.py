"""CPU kernels: elementwise arithmetic, comparison and logic (numpy ufuncs).

Operands arrive with one dtype (the op set guarantees it), so numpy's type promotion never changes the result
dtype — except where numpy itself widens (float16 transcendental functions are computed by numpy in float32 and
rounded back, which is what we want) or returns 0-D scalars, which `np.asarray` turns back into arrays.
"""
from __future__ import annotations

import math

import numpy as np

from .registry import kernel, kernel_factory

try:  # the C library's erf, compiled (hal/cpu/_cython/mathfn.pyx); numpy has none
    from .._cython import mathfn as _c_math
except ImportError:  # pragma: no cover - a half-built tree; the polynomial below stands in
    _c_math = None


def _same(x, like) -> np.ndarray:
    """`x` as an array of `like`'s dtype (ufuncs on 0-D inputs return numpy scalars)."""
    return np.asarray(x, dtype=like.dtype)


# -- arithmetic ------------------------------------------------------------------------------------------------
def _binary(op: str, fn) -> None:
    """A binary ufunc whose result keeps the first operand's dtype (and stays an array for 0-d operands).
    Written into `out` when given, which may be either operand (numpy handles an exact overlap)."""
    def run(a, b, out=None):
        return _same(fn(a, b), a) if out is None else fn(a, b, out=out)
    kernel(op, out=True, inplace=(0, 1))(run)


for _op, _fn in (("add", np.add), ("sub", np.subtract), ("mul", np.multiply), ("min", np.minimum),
                 ("max", np.maximum), ("bitwise_and", np.bitwise_and), ("bitwise_or", np.bitwise_or),
                 ("bitwise_xor", np.bitwise_xor)):
    _binary(_op, _fn)


@kernel("div", out=True, inplace=(0, 1))
def div(a, b, out=None):
    if a.dtype.kind == "f":
        return _same(np.divide(a, b), a) if out is None else np.divide(a, b, out=out)
    if out is not None:
        np.copyto(out, div(a, b))
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.floor_divide(a, b)  # numpy floors and gives 0 for a zero divisor
        if a.dtype.kind == "i":
            # C/ONNX truncate toward zero: a floored quotient with a remainder and mixed signs is one too low.
            q = q + ((np.remainder(a, b) != 0) & ((a < 0) != (b < 0)))
    return _same(q, a)


def _int_pow(a, b):
    """Integer power without numpy's error on negative exponents: a ** -n truncates to 0 unless |a| == 1."""
    neg = b < 0
    if not np.any(neg):
        return np.power(a, b)
    r = np.power(a, np.where(neg, 0, b).astype(b.dtype))
    odd = (b % 2) != 0
    inv = np.where(a == 1, 1, np.where(a == -1, np.where(odd, -1, 1), 0)).astype(a.dtype)
    return np.where(neg, inv, r)


@kernel("pow")
def pow_(a, b):
    if a.dtype.kind in "iu":
        return _same(_int_pow(a, b), a)
    return _same(np.power(a, b), a)


@kernel("mod")
def mod(a, b, fmod):
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.fmod(a, b) if fmod else np.mod(a, b)
    return _same(r, a)


@kernel("clip", out=True, inplace=(0,))
def clip(x, lo=None, hi=None, out=None):
    # max then min (not np.clip) so that lo > hi yields hi everywhere, as ONNX specifies.
    if lo is None and hi is None:
        if out is None:
            return x
        np.copyto(out, x)
        return out
    y = np.empty_like(x) if out is None else out
    if lo is not None:
        np.maximum(x, lo.reshape(()), out=y)
    if hi is not None:
        np.minimum(x if lo is None else y, hi.reshape(()), out=y)  # in place on the first result
    return y


# -- unary math ------------------------------------------------------------------------------------------------
def _unary(op: str, fn) -> None:
    def run(x, out=None):
        return _same(fn(x), x) if out is None else fn(x, out=out)
    kernel(op, out=True, inplace=(0,))(run)


for _op, _fn in (("neg", np.negative), ("abs", np.abs), ("sign", np.sign), ("sqrt", np.sqrt), ("exp", np.exp),
                 ("log", np.log), ("reciprocal", np.reciprocal), ("floor", np.floor), ("ceil", np.ceil),
                 ("round", np.round), ("sin", np.sin), ("cos", np.cos), ("tan", np.tan), ("asin", np.arcsin),
                 ("acos", np.arccos), ("atan", np.arctan), ("sinh", np.sinh), ("cosh", np.cosh),
                 ("asinh", np.arcsinh), ("acosh", np.arccosh), ("atanh", np.arctanh),
                 ("bitwise_not", np.invert), ("not", np.logical_not)):
    _unary(_op, _fn)


# erf without scipy: erf(x) = x * g(x²) with g a degree-40 Chebyshev interpolant on [0, 36] built once from
# math.erf; relative error ~2e-14 everywhere (the x factor keeps tiny arguments exact), and erf(x) is ±1 to
# double precision beyond |x| = 6.
_ERF_LIMIT = 36.0
_erf_g = None


def _erf_fallback(x: np.ndarray) -> np.ndarray:
    global _erf_g
    if _erf_g is None:
        def g(t):
            r = np.sqrt(t)
            return np.array([math.erf(v) / v if v > 0 else 2 / math.sqrt(math.pi) for v in r])
        _erf_g = np.polynomial.Chebyshev.interpolate(g, 40, domain=[0, _ERF_LIMIT])
    x64 = x.astype(np.float64)
    t = x64 * x64
    return np.where(t < _ERF_LIMIT, x64 * _erf_g(np.minimum(t, _ERF_LIMIT)), np.sign(x64))


def erf(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """The Gauss error function in x's dtype (float16 is computed in float32), into `out` when given."""
    if _c_math is not None and x.dtype in (np.float32, np.float64):
        y = np.empty_like(x) if out is None else out
        # The compiled loop takes flat contiguous arrays; anything else goes through a contiguous copy.
        src = x if x.flags.c_contiguous else np.ascontiguousarray(x)
        dst = y if y.flags.c_contiguous else np.empty_like(src)
        _c_math.erf(src.reshape(-1), dst.reshape(-1))
        if dst is not y:
            np.copyto(y, dst)
        return y
    r = _same(_erf_fallback(x), x)
    if out is None:
        return r
    np.copyto(out, r)
    return out


kernel("erf", out=True, inplace=(0,))(erf)


@kernel("isnan")
def isnan(x):
    return np.asarray(np.isnan(x))


@kernel("isinf")
def isinf(x, detect_negative, detect_positive):
    if detect_negative and detect_positive:
        return np.asarray(np.isinf(x))
    if detect_positive:
        return np.asarray(x == np.inf)
    if detect_negative:
        return np.asarray(x == -np.inf)
    return np.zeros(np.shape(x), dtype=bool)


# -- comparison, logic, bitwise --------------------------------------------------------------------------------
def _to_bool(op: str, fn) -> None:
    kernel(op)(lambda a, b: np.asarray(fn(a, b)))


for _op, _fn in (("equal", np.equal), ("less", np.less), ("greater", np.greater), ("less_equal", np.less_equal),
                 ("greater_equal", np.greater_equal), ("and", np.logical_and), ("or", np.logical_or),
                 ("xor", np.logical_xor)):
    _to_bool(_op, _fn)

@kernel("bit_shift")
def bit_shift(a, b, direction):
    bits = a.dtype.itemsize * 8
    in_range = (b >= 0) & (b < bits)
    safe = np.where(in_range, b, 0).astype(a.dtype)
    if direction == "left":
        r = np.left_shift(a, safe)
        fill = np.zeros((), a.dtype)
    else:
        r = np.right_shift(a, safe)  # arithmetic for signed dtypes
        fill = np.where(a < 0, -1, 0).astype(a.dtype) if a.dtype.kind == "i" else np.zeros((), a.dtype)
    return _same(np.where(in_range, r, fill), a)


# -- selection and conversion ----------------------------------------------------------------------------------
@kernel("where")
def where(cond, a, b):
    return _same(np.where(cond, a, b), a)


@kernel_factory("cast")
def cast(node, in_types, out_types):
    to = np.dtype(node.attrs["to"])
    src = in_types[0].dtype if in_types[0] is not None else None
    if src == node.attrs["to"]:
        return lambda x: x
    if to.kind in "iu" and src in ("float16", "float32", "float64"):
        def float_to_int(x):
            # NaN/inf have no integer value (C leaves it undefined); map them to 0 instead of numpy's warning.
            with np.errstate(invalid="ignore"):
                return np.asarray(np.where(np.isfinite(x), x, 0).astype(to))
        return float_to_int
    return lambda x: np.asarray(x.astype(to))
