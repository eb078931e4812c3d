"""claw ops: reductions (reduce_*, arg max/min), scans (cumsum, cumprod) and top-k selection.

The reduce_* ops take their axes as an optional int64 input (ONNX moved axes from an attribute to an input; the
importer turns attributes into constants), so inference reads the axes value when it is known at conversion
time. Without axes (or with an empty axes tensor) every axis is reduced, unless `noop_with_empty_axes` is set,
in which case no axis is: each element is reduced alone (reduce_sum_square squares, reduce_l1 takes |x|, and
the shape is unchanged). A reduction over an empty set yields the operation's identity:
0 (sum, l1, l2, sum_square), 1 (prod), -inf (log_sum, log_sum_exp; the lowest value for max, the highest for min).
"""
from __future__ import annotations

from ..dtypes import NUMERIC_TYPES
from ..graph import Dim, TensorType
from ._shapes import norm_axis
from .registry import Attr, InferenceError, register

_REDUCE_ATTRS = {
    "keepdims": Attr(bool, True, "keep reduced axes as size 1"),
    "noop_with_empty_axes": Attr(bool, False, "with no/empty axes: reduce no axis instead of every axis"),
}
_REDUCE_DOCS = {
    "reduce_sum": "sum of x over axes.",
    "reduce_mean": "mean of x over axes (integers: the truncated mean).",
    "reduce_max": "maximum of x over axes (bool: any).",
    "reduce_min": "minimum of x over axes (bool: all).",
    "reduce_prod": "product of x over axes.",
    "reduce_l1": "sum of |x| over axes.",
    "reduce_l2": "sqrt of the sum of x² over axes.",
    "reduce_sum_square": "sum of x² over axes.",
    "reduce_log_sum": "ln of the sum of x over axes.",
    "reduce_log_sum_exp": "ln of the sum of exp(x) over axes (max-shifted for stability).",
}


def reduced_shape(shape: tuple[Dim, ...], axes: list[int], keepdims: bool) -> tuple[Dim, ...]:
    """`shape` with the (normalised) `axes` set to 1 or dropped."""
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


def _axes_value(ctx, rank: int) -> list[int] | None:
    """The normalised axes from input 1 when known, [] when omitted or empty; None when unknown."""
    if not ctx.has_input(1):
        return []
    if ctx.dtype(1) != "int64":
        raise InferenceError(f"axes must be int64, got {ctx.dtype(1)}")
    v = ctx.value(1)
    if v is None:
        return None
    axes = sorted({norm_axis(int(a), rank, "reduce axis") for a in v.reshape(-1)})
    return axes


def _reduce(ctx, allowed: frozenset[str]):
    t = ctx.type(0)
    if t.dtype not in allowed:
        raise InferenceError(f"{ctx.node.op} does not take {t.dtype}")
    keep = ctx.attr("keepdims")
    if t.shape is None:
        return [TensorType(t.dtype, None)]
    rank = len(t.shape)
    axes = _axes_value(ctx, rank)
    if axes is None:  # known rank, unknown axes
        return [TensorType(t.dtype, (None,) * rank if keep else None)]
    if not axes:
        if ctx.attr("noop_with_empty_axes"):
            return [t]
        axes = list(range(rank))
    return [TensorType(t.dtype, reduced_shape(t.shape, axes, keep))]


for _name, _doc in _REDUCE_DOCS.items():
    _allowed = NUMERIC_TYPES | {"bool"} if _name in ("reduce_max", "reduce_min") else NUMERIC_TYPES
    register(_name, "reduce", _doc, inputs=(1, 2), attrs=_REDUCE_ATTRS)(
        lambda ctx, _allowed=_allowed: _reduce(ctx, _allowed))


# -- arg max / arg min -----------------------------------------------------------------------------------------
def _arg_reduce(ctx):
    t = ctx.type(0)
    if t.dtype not in NUMERIC_TYPES:
        raise InferenceError(f"{ctx.node.op} does not take {t.dtype}")
    if t.shape is None:
        return [TensorType("int64", None)]
    axis = norm_axis(ctx.attr("axis"), len(t.shape))
    return [TensorType("int64", reduced_shape(t.shape, [axis], ctx.attr("keepdims")))]


_ARG_ATTRS = {
    "axis": Attr(int, 0, "the axis searched"),
    "keepdims": Attr(bool, True, "keep the searched axis as size 1"),
    "select_last_index": Attr(bool, False, "on ties, the last index instead of the first"),
}
register("argmax", "reduce", "int64 index of the maximum along `axis`.", attrs=_ARG_ATTRS)(_arg_reduce)
register("argmin", "reduce", "int64 index of the minimum along `axis`.", attrs=_ARG_ATTRS)(_arg_reduce)


# -- scans and selection ---------------------------------------------------------------------------------------
_SCAN_ATTRS = {"exclusive": Attr(bool, False, "leave out the element itself (the first result is the identity)"),
               "reverse": Attr(bool, False, "scan from the end of the axis")}


def _scan(ctx):
    t = ctx.type(0)
    if t.dtype not in NUMERIC_TYPES:
        raise InferenceError(f"{ctx.node.op} does not take {t.dtype}")
    if ctx.dtype(1) != "int64":
        raise InferenceError(f"the axis input must be int64, got {ctx.dtype(1)}")
    v = ctx.value(1)
    if v is not None and t.rank is not None:
        if v.size != 1:
            raise InferenceError(f"the axis input must hold one value, got {v.size}")
        norm_axis(int(v.reshape(-1)[0]), t.rank)
    return [t]


register("cumsum", "reduce", "Running sum of x along the axis given by the 0-D int64 input; `exclusive` leaves "
         "out the element itself, `reverse` sums from the end.", inputs=(2, 2), attrs=_SCAN_ATTRS)(_scan)
register("cumprod", "reduce", "Running product of x along the axis given by the 0-D int64 input; `exclusive` "
         "leaves out the element itself (starting from 1), `reverse` multiplies from the end.", inputs=(2, 2),
         attrs=_SCAN_ATTRS)(_scan)


@register("topk", "reduce", "The k largest (or smallest) entries along `axis` and their int64 indices; k is a "
          "1-element int64 input. Ties go to the lower index; sorted=False may still return them sorted.",
          inputs=(2, 2), outputs=(2, 2),
          attrs={"axis": Attr(int, -1), "largest": Attr(bool, True), "sorted": Attr(bool, True)})
def _topk(ctx):
    t = ctx.type(0)
    if t.dtype not in NUMERIC_TYPES:
        raise InferenceError(f"topk does not take {t.dtype}")
    if ctx.dtype(1) != "int64":
        raise InferenceError(f"k must be int64, got {ctx.dtype(1)}")
    if t.shape is None:
        return [TensorType(t.dtype, None), TensorType("int64", None)]
    axis = norm_axis(ctx.attr("axis"), len(t.shape))
    k_sym = ctx.sym(1)
    k: Dim = k_sym[0] if k_sym is not None and len(k_sym) == 1 else None
    if isinstance(k, int) and isinstance(t.shape[axis], int) and not 0 <= k <= t.shape[axis]:
        raise InferenceError(f"k = {k} is outside [0, {t.shape[axis]}] (axis {axis})")
    shape = tuple(k if i == axis else d for i, d in enumerate(t.shape))
    return [TensorType(t.dtype, shape), TensorType("int64", shape)]
