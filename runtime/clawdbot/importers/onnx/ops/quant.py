"""ONNX -> claw: QuantizeLinear, DequantizeLinear (opsets 10..24) and DynamicQuantizeLinear.

QuantizeLinear's output dtype comes from the zero point, else the `output_dtype` attribute (21+), else uint8.
DequantizeLinear's comes from `output_dtype` (23+), else the scale (19+; float32 before). Float8/int4/int2
types are rejected, at the importer's value-type check or here.
"""
from __future__ import annotations

from ....ir.ops.quant import QUANT_TYPES
from ..builder import Unsupported
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


def register(reg):
    reg.insert("QuantizeLinear", quantize_linear, since=10)
    reg.insert("DequantizeLinear", dequantize_linear, since=10)
    reg.insert("DynamicQuantizeLinear", dynamic_quantize_linear, since=11)
