"""claw ops: pooling over the spatial axes of [N, C, *spatial] tensors — windowed max/avg/lp and their global
forms. Window attributes are the conv family's (see conv.py)."""
from __future__ import annotations

from ..graph import TensorType
from ..dtypes import FLOAT_TYPES
from .conv import WINDOW_ATTRS, window_out
from .registry import Attr, InferenceError, register

_POOL_ATTRS = {**WINDOW_ATTRS, "kernel_shape": Attr(list), "ceil_mode": Attr(bool, False)}


def _pooled(ctx, dtype: str | None = None) -> TensorType:
    x = ctx.type(0)
    kernel = list(ctx.attr("kernel_shape"))
    if not kernel or min(kernel) < 1:
        raise InferenceError(f"kernel_shape {kernel} must be non-empty and positive")
    if x.shape is None:
        return TensorType(dtype or x.dtype, None)
    if len(x.shape) != len(kernel) + 2:
        raise InferenceError(f"input rank {len(x.shape)} does not match a {len(kernel)}-D window")
    out = window_out(list(x.shape[2:]), kernel, ctx.attrs, ctx.attr("ceil_mode"))
    return TensorType(dtype or x.dtype, (*x.shape[:2], *out))


def _require_float(ctx, what: str) -> None:
    if ctx.dtype(0) not in FLOAT_TYPES:
        raise InferenceError(f"{what} needs a float input, got {ctx.dtype(0)}")


@register("max_pool", "pool", "Windowed max. The optional second output holds each max's int64 index into "
          "the flattened input (row-major over N, C and the spatial axes; storage_order 1: the spatial axes "
          "column-major). Padding never wins.", outputs=(1, 2),
          attrs={**_POOL_ATTRS, "storage_order": Attr(int, 0, "0 row-major, 1 column-major indices")})
def _max_pool(ctx):
    y = _pooled(ctx)
    return [y, TensorType("int64", y.shape)]


@register("avg_pool", "pool", "Windowed mean; count_include_pad counts the declared padding in the divisor "
          "(never the overrun of a ceil_mode window).",
          attrs={**_POOL_ATTRS, "count_include_pad": Attr(bool, False)})
def _avg_pool(ctx):
    _require_float(ctx, "avg_pool")
    return [_pooled(ctx)]


@register("lp_pool", "pool", "Windowed p-norm: (sum |x|^p)^(1/p); padding contributes zeros.",
          attrs={**_POOL_ATTRS, "p": Attr(int, 2)})
def _lp_pool(ctx):
    _require_float(ctx, "lp_pool")
    return [_pooled(ctx)]


def _global(ctx) -> list[TensorType]:
    x = ctx.type(0)
    if x.shape is not None and len(x.shape) < 2:
        raise InferenceError(f"global pooling needs rank >= 2, got {len(x.shape)}")
    shape = None if x.shape is None else (*x.shape[:2], *([1] * (len(x.shape) - 2)))
    return [TensorType(x.dtype, shape)]


@register("global_avg_pool", "pool", "Mean over all spatial axes of [N, C, *spatial] (kept as size 1).")
def _global_avg_pool(ctx):
    _require_float(ctx, "global_avg_pool")
    return _global(ctx)


@register("global_max_pool", "pool", "Max over all spatial axes of [N, C, *spatial] (kept as size 1).")
def _global_max_pool(ctx):
    return _global(ctx)


@register("global_lp_pool", "pool", "p-norm over all spatial axes of [N, C, *spatial] (kept as size 1).",
          attrs={"p": Attr(int, 2)})
def _global_lp_pool(ctx):
    _require_float(ctx, "global_lp_pool")
    return _global(ctx)
