"""CPU kernels: reductions, arg max/min, cumsum/cumprod, top-k.

Sums accumulate float16 in float32 (numpy's float16 pairwise sum drifts by several ulps) and integers in their
own dtype (numpy would widen int8..int32 to int64; the op keeps the input dtype, wrapping like C does).
Results are cast back to the input dtype; 0-D numpy scalars are turned back into arrays.
"""
from __future__ import annotations

import numpy as np

from .registry import kernel


def _axes(x: np.ndarray, axes, noop: bool) -> tuple[int, ...]:
    """The reduced axes as a tuple. noop_with_empty_axes without axes reduces over *no* axis: each element
    alone, so reduce_sum_square still squares and reduce_l1 still takes |x| (as ONNX's reference does)."""
    if axes is None or axes.size == 0:
        return () if noop else tuple(range(x.ndim))
    return tuple(sorted({int(a) % max(x.ndim, 1) for a in axes.reshape(-1)}))


def _acc_dtype(x: np.ndarray) -> np.dtype:
    return np.dtype(np.float32) if x.dtype == np.float16 else x.dtype


def _reduction(op: str, fn):
    """Register reduce op `op` computing fn(x, axes, keepdims) -> array in any dtype (cast to x's)."""
    @kernel(op)
    def run(x, axes=None, *, keepdims, noop_with_empty_axes):
        ax = _axes(x, axes, noop_with_empty_axes)
        with np.errstate(invalid="ignore"):  # NaN/inf cast to an integer dtype: undefined, as in C
            return np.asarray(fn(x, ax, keepdims)).astype(x.dtype, copy=False)
    run.__name__ = op
    return run


def _sum(x, ax, keep):
    return np.sum(x, axis=ax, keepdims=keep, dtype=_acc_dtype(x))


def _extreme(x, ax, keep, largest: bool):
    # `initial` makes an empty reduction return the identity (-inf / lowest, +inf / highest) instead of raising.
    if x.dtype == np.bool_:
        init = not largest
    elif x.dtype.kind == "f":
        init = -np.inf if largest else np.inf
    else:
        info = np.iinfo(x.dtype)
        init = info.min if largest else info.max
    fn = np.max if largest else np.min
    return fn(x, axis=ax, keepdims=keep, initial=init)


def _mean(x, ax, keep):
    # Integers average in float64 and are truncated by the cast back; an empty set is 0 / 0 = NaN.
    dtype = _acc_dtype(x) if x.dtype.kind == "f" else np.dtype(np.float64)
    count = int(np.prod([x.shape[a] for a in ax]))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(x, axis=ax, keepdims=keep, dtype=dtype) / dtype.type(count)


def _log_sum_exp(x, ax, keep):
    w = x.astype(_acc_dtype(x)) if x.dtype.kind == "f" else x.astype(np.float64)
    m = _extreme(w, ax, True, largest=True)
    m = np.where(np.isfinite(m), m, 0)  # an all -inf (or empty) slice: log(0) + 0 = -inf
    with np.errstate(divide="ignore"):
        s = np.log(np.sum(np.exp(w - m), axis=ax, keepdims=True)) + m
    return s if keep else np.squeeze(s, axis=ax)


def _float_work(x):
    return x.astype(np.float32) if x.dtype == np.float16 else x


def _log(s):
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.log(s)


_reduction("reduce_sum", _sum)
_reduction("reduce_max", lambda x, ax, keep: _extreme(x, ax, keep, largest=True))
_reduction("reduce_min", lambda x, ax, keep: _extreme(x, ax, keep, largest=False))
_reduction("reduce_mean", _mean)
_reduction("reduce_prod", lambda x, ax, keep: np.prod(x, axis=ax, keepdims=keep, dtype=_acc_dtype(x)))
_reduction("reduce_l1", lambda x, ax, keep: _sum(np.abs(x), ax, keep))
_reduction("reduce_sum_square", lambda x, ax, keep: _sum(_float_work(x) * _float_work(x), ax, keep))
_reduction("reduce_l2", lambda x, ax, keep: np.sqrt(_sum(_float_work(x) * _float_work(x), ax, keep)))
_reduction("reduce_log_sum", lambda x, ax, keep: _log(_sum(_float_work(x), ax, keep)))
_reduction("reduce_log_sum_exp", _log_sum_exp)


# -- arg max / arg min -----------------------------------------------------------------------------------------
def _arg(fn, x, axis, keepdims, select_last_index):
    if select_last_index:
        # The last of tied extremes is the first one in the reversed axis.
        idx = x.shape[axis] - 1 - fn(np.flip(x, axis=axis), axis=axis)
    else:
        idx = fn(x, axis=axis)
    if keepdims:
        idx = np.expand_dims(idx, axis)
    return np.asarray(idx, dtype=np.int64)


@kernel("argmax")
def argmax(x, *, axis, keepdims, select_last_index):
    return _arg(np.argmax, x, axis, keepdims, select_last_index)


@kernel("argmin")
def argmin(x, *, axis, keepdims, select_last_index):
    return _arg(np.argmin, x, axis, keepdims, select_last_index)


# -- cumsum / cumprod ------------------------------------------------------------------------------------------
def _scan(x, axis, exclusive: bool, reverse: bool, fn, identity):
    ax = int(np.asarray(axis).reshape(-1)[0])
    w = np.flip(x, axis=ax) if reverse else x
    out = fn(w, axis=ax, dtype=_acc_dtype(x))
    if exclusive and out.shape[ax] > 0:
        # Shift by one along the axis: element i holds the scan of the elements before it.
        out = np.concatenate([np.full_like(np.take(out, [0], axis=ax), identity),
                              np.take(out, np.arange(out.shape[ax] - 1), axis=ax)], axis=ax)
    if reverse:
        out = np.flip(out, axis=ax)
    return np.asarray(out, dtype=x.dtype)


@kernel("cumsum")
def cumsum(x, axis, *, exclusive, reverse):
    return _scan(x, axis, exclusive, reverse, np.cumsum, 0)


@kernel("cumprod")
def cumprod(x, axis, *, exclusive, reverse):
    return _scan(x, axis, exclusive, reverse, np.cumprod, 1)


# -- top-k -----------------------------------------------------------------------------------------------------
@kernel("topk")
def topk(x, k, *, axis, largest, sorted):
    k = int(np.asarray(k).reshape(-1)[0])
    n = x.shape[axis]
    if largest:
        # A stable ascending sort of the reversed axis, read backwards, is descending with ties in
        # increasing original index (what ONNX and onnxruntime return).
        order = np.argsort(np.flip(x, axis=axis), axis=axis, kind="stable")
        idx = (n - 1) - np.flip(order, axis=axis)
    else:
        idx = np.argsort(x, axis=axis, kind="stable")
    idx = np.take(idx, np.arange(k), axis=axis)
    return np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64, copy=False)
