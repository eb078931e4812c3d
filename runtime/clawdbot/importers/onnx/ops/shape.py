"""ONNX -> claw: shape queries and generators (Shape, Size, ConstantOfShape, Range, EyeLike)."""
from __future__ import annotations

import numpy as np
import onnx

from ....ir.dtypes import DTYPES
from ....ir.ops.shape import INT64_MAX
from ..builder import Unsupported


def onnx_dtype(code: int, what: str) -> str:
    """The claw dtype of an ONNX TensorProto element type code; Unsupported when claw has none."""
    try:
        name = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(code)).name
    except Exception:  # codes with no numpy equivalent (bfloat16, float8, int4, strings)
        name = onnx.TensorProto.DataType.Name(code)
    if name not in DTYPES:
        raise Unsupported(f"{what} {name} is not supported")
    return name


def shape(b, n):
    b.emit("shape", [n.input(0)], n.outputs, start=n.attr("start", 0), end=n.attr("end", INT64_MAX))


def size(b, n):
    b.emit("size", [n.input(0)], n.outputs)


def constant_of_shape(b, n):
    value = n.attr("value")
    value = np.zeros((), np.float32) if value is None else np.asarray(value).reshape(())
    b.emit("constant_of_shape", [n.input(0), b.const(value, "fill")], n.outputs)


def range_(b, n):
    b.emit("range", n.inputs[:3], n.outputs)


def eye_like(b, n):
    code = n.attr("dtype")
    dtype = onnx_dtype(code, "EyeLike dtype") if code else ""
    b.emit("eye_like", [n.input(0)], n.outputs, k=n.attr("k", 0), dtype=dtype)


def register(reg):
    reg.insert("Shape", shape)
    reg.insert("Size", size)
    reg.insert("ConstantOfShape", constant_of_shape, since=9)
    reg.insert("Range", range_, since=11)
    reg.insert("EyeLike", eye_like, since=9)
