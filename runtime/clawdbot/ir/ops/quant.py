"""claw ops: affine quantization, real = (q - zero_point) * scale.

Scale and zero point are inputs (so a graph can compute them, as DynamicQuantizeLinear does) and come in three
granularities, told apart by the scale's rank: a scalar or one-element vector (per tensor), a vector along
`axis` (per channel), or a tensor of x's rank whose `axis` dim is ceil(dim / block_size) (blocked).
"""
from __future__ import annotations

from ..dtypes import FLOAT_TYPES
from ..graph import TensorType
from ._shapes import norm_axis
from .registry import Attr, InferenceError, register

QUANT_TYPES = ("int8", "uint8", "int16", "uint16", "int32")

_AXIS = Attr(int, 1, "the per-channel / blocked axis of x; ignored for a per-tensor scale")
_BLOCK = Attr(int, 0, "> 0: blocked quantization, `block_size` consecutive elements along `axis` share a scale")


def _check_params(ctx, q_dtype: str) -> None:
    """Validate scale/zero point against x: the zero point's dtype, and the scale's granularity."""
    x, scale = ctx.type(0), ctx.type(1)
    if scale.dtype not in FLOAT_TYPES:
        raise InferenceError(f"scale must be a float tensor, got {scale.dtype}")
    if ctx.has_input(2) and ctx.dtype(2) != q_dtype:
        raise InferenceError(f"zero point is {ctx.dtype(2)}, quantized dtype is {q_dtype}")
    if ctx.has_input(2) and scale.shape is not None and ctx.shape(2) is not None \
            and len(scale.shape) != len(ctx.shape(2)):
        raise InferenceError(f"scale {scale} and zero point {ctx.type(2)} differ in rank")
    if x.shape is None or scale.shape is None:
        return
    block = ctx.attr("block_size")
    if block > 0:
        if len(scale.shape) != len(x.shape):
            raise InferenceError(f"blocked scale must have x's rank {len(x.shape)}, got {scale}")
        norm_axis(ctx.attr("axis"), len(x.shape))
    elif len(scale.shape) == 1 and scale.shape[0] != 1:
        axis = norm_axis(ctx.attr("axis"), len(x.shape))
        dim = x.shape[axis]
        if isinstance(dim, int) and isinstance(scale.shape[0], int) and dim != scale.shape[0]:
            raise InferenceError(f"per-axis scale has {scale.shape[0]} entries for axis {axis} of size {dim}")
    elif len(scale.shape) > 1:
        raise InferenceError(f"scale {scale} is neither per-tensor, per-axis nor blocked (block_size 0)")


@register("quantize_linear", "quant",
          "q = saturate(round_half_even(x / scale) + zero_point) in `dtype`. Inputs: x (float or int32), scale, "
          "optional zero point (of `dtype`; default 0).", inputs=(2, 3),
          attrs={"axis": _AXIS, "block_size": _BLOCK, "dtype": Attr(str, "uint8", ", ".join(QUANT_TYPES))})
def _quantize_linear(ctx):
    dtype = ctx.attr("dtype")
    if dtype not in QUANT_TYPES:
        raise InferenceError(f"quantized dtype {dtype!r}; supported: {', '.join(QUANT_TYPES)}")
    if ctx.dtype(0) not in FLOAT_TYPES | {"int32"}:
        raise InferenceError(f"x must be float or int32, got {ctx.dtype(0)}")
    _check_params(ctx, dtype)
    return [TensorType(dtype, ctx.shape(0))]


@register("dequantize_linear", "quant",
          "y = (q - zero_point) * scale as `dtype`. Inputs: q (an integer dtype), scale, optional zero point "
          "(q's dtype; default 0).", inputs=(2, 3),
          attrs={"axis": _AXIS, "block_size": _BLOCK, "dtype": Attr(str, "float32", "output float dtype")})
def _dequantize_linear(ctx):
    if ctx.dtype(0) not in QUANT_TYPES:
        raise InferenceError(f"quantized input is {ctx.dtype(0)}; supported: {', '.join(QUANT_TYPES)}")
    if ctx.attr("dtype") not in FLOAT_TYPES:
        raise InferenceError(f"output dtype {ctx.attr('dtype')!r} is not a float dtype")
    _check_params(ctx, ctx.dtype(0))
    return [TensorType(ctx.attr("dtype"), ctx.shape(0))]


@register("dynamic_quantize_linear", "quant",
          "uint8 quantization of float32 x with scale and zero point from its range (widened to include 0): "
          "outputs q, scale (float32 scalar), zero point (uint8 scalar).", outputs=(3, 3))
def _dynamic_quantize_linear(ctx):
    if ctx.dtype(0) != "float32":
        raise InferenceError(f"x must be float32, got {ctx.dtype(0)}")
    return [TensorType("uint8", ctx.shape(0)), TensorType("float32", ()), TensorType("uint8", ())]
