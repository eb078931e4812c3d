"""claw ops: affine quantization, real = (q - zero_point) * scale.

Scale and zero point are inputs (so a graph can compute them, as DynamicQuantizeLinear does) and come in three
granularities, told apart by the scale's rank: a scalar or one-element vector (per tensor), a vector along
`axis` (per channel), or a tensor of x's rank whose `axis` dim is ceil(dim / block_size) (blocked).

The integer ops (matmul_integer, conv_integer) multiply 8-bit operands less their zero points and accumulate in
int32 exactly; the qlinear ops then requantize the accumulator to 8 bits:
y = saturate(round_half_even(acc * (scale_a * scale_b / scale_y)) + zero_point_y), the multiplier in float32.
"""
from __future__ import annotations

from ..dtypes import FLOAT_TYPES
from ..graph import TensorType
from ._shapes import norm_axis
from .conv import WINDOW_ATTRS, window_out
from .linalg import matmul_shape
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


# -- integer matmul / conv and their requantizing forms --------------------------------------------------------
INT8_TYPES = ("int8", "uint8")
_ZP_DOC = ("zero points: a scalar (per tensor), or a vector per row of a / per column of b ([M] / [N], or "
           "[..., M, 1] / [..., 1, N])")


def _int8_operand(ctx, i: int, what: str) -> str:
    dtype = ctx.dtype(i)
    if dtype not in INT8_TYPES:
        raise InferenceError(f"{what} must be int8 or uint8, got {dtype}")
    return dtype


def _zero_point_of(ctx, i: int, operand: int, what: str) -> None:
    """Optional input i is the zero point of input `operand`: same dtype."""
    if ctx.has_input(i) and ctx.dtype(i) != ctx.dtype(operand):
        raise InferenceError(f"{what} zero point is {ctx.dtype(i)}, its operand is {ctx.dtype(operand)}")


def _float_scales(ctx, *idx: int) -> None:
    for i in idx:
        if ctx.dtype(i) not in FLOAT_TYPES:
            raise InferenceError(f"scale (input {i}) must be a float tensor, got {ctx.dtype(i)}")


@register("matmul_integer", "quant", "y = (a - a_zero_point) @ (b - b_zero_point) in int32, exactly (matmul "
          "semantics). Inputs: a, b (int8/uint8), optional " + _ZP_DOC + ".", inputs=(2, 4))
def _matmul_integer(ctx):
    _int8_operand(ctx, 0, "a")
    _int8_operand(ctx, 1, "b")
    _zero_point_of(ctx, 2, 0, "a")
    _zero_point_of(ctx, 3, 1, "b")
    return [TensorType("int32", matmul_shape(ctx.shape(0), ctx.shape(1)))]


@register("qlinear_matmul", "quant", "Quantized matmul: the int32 accumulator of (a - a_zero_point) @ (b - "
          "b_zero_point) requantized to y_zero_point's dtype with scale a_scale * b_scale / y_scale. Inputs: a, "
          "a_scale, a_zero_point, b, b_scale, b_zero_point, y_scale, y_zero_point; scales and " + _ZP_DOC + ".",
          inputs=(8, 8))
def _qlinear_matmul(ctx):
    _int8_operand(ctx, 0, "a")
    _int8_operand(ctx, 3, "b")
    _zero_point_of(ctx, 2, 0, "a")
    _zero_point_of(ctx, 5, 3, "b")
    _float_scales(ctx, 1, 4, 6)
    return [TensorType(_int8_operand(ctx, 7, "y_zero_point"), matmul_shape(ctx.shape(0), ctx.shape(3)))]


def _conv_out_shape(ctx, x_i: int, w_i: int):
    """[N, M, *out] of a convolution of input x_i with weight w_i (conv's window attributes)."""
    x, w = ctx.shape(x_i), ctx.shape(w_i)
    if w is None or len(w) < 3 or not all(isinstance(d, int) for d in w[2:]):
        raise InferenceError(f"weight shape {w} must be [M, C/group, k...] with known k")
    kernel = list(w[2:])
    if x is not None and len(x) != len(kernel) + 2:
        raise InferenceError(f"input rank {len(x)} does not match a {len(kernel)}-D kernel")
    group = ctx.attr("group")
    if group < 1 or (isinstance(w[0], int) and w[0] % group):
        raise InferenceError(f"{w[0]} output channels do not split into {group} groups")
    if x is not None and isinstance(x[1], int) and isinstance(w[1], int) and x[1] != w[1] * group:
        raise InferenceError(f"input channels {x[1]} != {w[1]} x group {group}")
    spatial = [None] * len(kernel) if x is None else list(x[2:])
    return (None if x is None else x[0], w[0], *window_out(spatial, kernel, ctx.attrs))


_CONV_ATTRS = {**WINDOW_ATTRS, "group": Attr(int, 1)}


@register("conv_integer", "quant", "y = conv(x - x_zero_point, w - w_zero_point) in int32, exactly (conv's "
          "window attributes). Inputs: x, w (int8/uint8), optional zero points: x's a scalar, w's a scalar or "
          "one per output channel [M].", inputs=(2, 4), attrs=_CONV_ATTRS)
def _conv_integer(ctx):
    _int8_operand(ctx, 0, "x")
    _int8_operand(ctx, 1, "w")
    _zero_point_of(ctx, 2, 0, "x")
    _zero_point_of(ctx, 3, 1, "w")
    return [TensorType("int32", _conv_out_shape(ctx, 0, 1))]


@register("qlinear_conv", "quant", "Quantized convolution: the int32 accumulator of conv(x - x_zero_point, w - "
          "w_zero_point) plus bias (int32 [M], optional) requantized to y_zero_point's dtype with scale x_scale "
          "* w_scale / y_scale. Inputs: x, x_scale, x_zero_point, w, w_scale, w_zero_point, y_scale, "
          "y_zero_point, bias; w's scale and zero point are scalars or one per output channel [M].",
          inputs=(8, 9), attrs=_CONV_ATTRS)
def _qlinear_conv(ctx):
    _int8_operand(ctx, 0, "x")
    _int8_operand(ctx, 3, "w")
    _zero_point_of(ctx, 2, 0, "x")
    _zero_point_of(ctx, 5, 3, "w")
    _float_scales(ctx, 1, 4, 6)
    if ctx.has_input(8) and ctx.dtype(8) != "int32":
        raise InferenceError(f"bias must be int32, got {ctx.dtype(8)}")
    return [TensorType(_int8_operand(ctx, 7, "y_zero_point"), _conv_out_shape(ctx, 0, 3))]
