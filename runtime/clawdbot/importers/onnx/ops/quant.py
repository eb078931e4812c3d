"""ONNX -> claw: QuantizeLinear, DequantizeLinear (opsets 10..24), DynamicQuantizeLinear, and the integer ops
MatMulInteger, ConvInteger, QLinearMatMul (opsets 10, 21) and QLinearConv.

QuantizeLinear's output dtype comes from the zero point, else the `output_dtype` attribute (21+), else uint8.
DequantizeLinear's comes from `output_dtype` (23+), else the scale (19+; float32 before). Float8/int4/int2
types are rejected, at the importer's value-type check or here.
The integer ops take int8/uint8 operands; ConvInteger/QLinearConv share Conv's window normalisation.
"""
from __future__ import annotations

from ....ir.ops.quant import INT8_TYPES, QUANT_TYPES
from ..builder import Unsupported
from .conv import spatial_sizes, window_attrs
from .shape import onnx_dtype


def _check(dtype: str, what: str) -> str:
    if dtype not in QUANT_TYPES:
        raise Unsupported(f"{what} {dtype} is not supported (supported: {', '.join(QUANT_TYPES)})")
    return dtype


def _params(n) -> list[str]:
    return [n.input(0), n.input(1)] + ([n.input(2)] if n.input(2) else [])


def _granularity(n) -> dict:
    return {"axis": n.attr("axis", 1), "block_size": n.attr("block_size", 0)}


def quantize_linear(b, n):
    if n.attr("saturate", 1) == 0:
        raise Unsupported("QuantizeLinear saturate=0 applies to float8 outputs only")
    if n.input(2):
        dtype = b.dtype(n.input(2))
    elif n.attr("output_dtype"):
        dtype = onnx_dtype(n.attr("output_dtype"), "QuantizeLinear output dtype")
    else:
        dtype = "uint8"
    b.emit("quantize_linear", _params(n), n.outputs, dtype=_check(dtype, "QuantizeLinear output"),
           **_granularity(n))


def dequantize_linear(b, n):
    _check(b.dtype(n.input(0)), "DequantizeLinear input")
    code = n.attr("output_dtype")
    dtype = onnx_dtype(code, "DequantizeLinear output dtype") if code else b.dtype(n.input(1))
    b.emit("dequantize_linear", _params(n), n.outputs, dtype=dtype, **_granularity(n))


def dynamic_quantize_linear(b, n):
    b.emit("dynamic_quantize_linear", [n.input(0)], n.outputs)


def _int8(b, name: str, what: str) -> str:
    if b.dtype(name) not in INT8_TYPES:
        raise Unsupported(f"{what} {b.dtype(name)} (the integer ops take int8/uint8)")
    return name


def _optional(n, first: int, last: int) -> list[str]:
    """Inputs first..last, trailing omitted ones left off."""
    ins = [n.input(i) for i in range(first, last + 1)]
    while ins and not ins[-1]:
        ins.pop()
    return ins


def matmul_integer(b, n):
    _int8(b, n.input(0), "A")
    _int8(b, n.input(1), "B")
    b.emit("matmul_integer", _optional(n, 0, 3), n.outputs)


def qlinear_matmul(b, n):
    for i, what in ((0, "a"), (3, "b"), (7, "y_zero_point")):
        _int8(b, n.input(i), what)
    b.emit("qlinear_matmul", [n.input(i) for i in range(8)], n.outputs)


def _conv_window(b, n, x: str, w: str) -> dict:
    shape = b.shape(w)
    if shape is None or len(shape) < 3 or not all(isinstance(d, int) for d in shape[2:]):
        raise Unsupported(f"weight {w!r} needs a known rank and kernel size")
    kernel = [int(d) for d in shape[2:]]
    given = n.attr("kernel_shape")
    if given and [int(k) for k in given] != kernel:
        raise Unsupported(f"kernel_shape {list(given)} differs from the weight's {kernel}")
    attrs = window_attrs(n, kernel, spatial_sizes(b, x, len(kernel)))
    return {"group": int(n.attr("group", 1)), **attrs}


def conv_integer(b, n):
    _int8(b, n.input(0), "x")
    _int8(b, n.input(1), "w")
    b.emit("conv_integer", _optional(n, 0, 3), n.outputs, **_conv_window(b, n, n.input(0), n.input(1)))


def qlinear_conv(b, n):
    for i, what in ((0, "x"), (3, "w"), (7, "y_zero_point")):
        _int8(b, n.input(i), what)
    b.emit("qlinear_conv", _optional(n, 0, 8), n.outputs, **_conv_window(b, n, n.input(0), n.input(3)))


def register(reg):
    reg.insert("QuantizeLinear", quantize_linear, since=10)
    reg.insert("DequantizeLinear", dequantize_linear, since=10)
    reg.insert("DynamicQuantizeLinear", dynamic_quantize_linear, since=11)
    reg.insert("MatMulInteger", matmul_integer, since=10)
    reg.insert("ConvInteger", conv_integer, since=10)
    reg.insert("QLinearMatMul", qlinear_matmul, since=10)
    reg.insert("QLinearConv", qlinear_conv, since=10)
