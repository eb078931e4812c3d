"""ONNX -> claw: elementwise ops.

Most ONNX elementwise ops map one-to-one (the claw op broadcasts the same way). The translations worth knowing:
- variadic Sum/Mean/Max/Min become a chain of binary claw ops (Mean divides the sum by the input count);
- Pow may raise a tensor to an exponent of another dtype: both are cast to the more precise of the two (float64
  for an integer base with a float exponent) and the result back to the base's dtype;
- Clip before opset 11 takes its bounds as attributes: they become constant inputs;
- Cast/CastLike to a dtype clawdbot has no kernel type for (string, bfloat16, float8, int4, ...) is
  Unsupported at import. `saturate` and `round_mode` only concern float8 targets, so they are ignored.
"""
from __future__ import annotations

import numpy as np

from ....ir.dtypes import DTYPES
from ..builder import Unsupported

try:
    from onnx import TensorProto, helper
except ImportError:  # pragma: no cover - the importer refuses to run without onnx anyway
    TensorProto = helper = None


def onnx_dtype(elem_type: int, what: str) -> str:
    """The claw dtype for an ONNX TensorProto element type, or Unsupported naming it."""
    try:
        name = np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except Exception:  # noqa: BLE001 - onnx raises KeyError/ValueError/TypeError by version
        name = None
    if name not in DTYPES:
        label = TensorProto.DataType.Name(elem_type) if elem_type in TensorProto.DataType.values() else elem_type
        raise Unsupported(f"{what} element type {label} is not supported (clawdbot dtypes: {', '.join(DTYPES)})")
    return name


# -- one-to-one ----------------------------------------------------------------------------------------------
def _direct(op: str):
    """A handler that emits claw op `op` on the node's inputs (same order, same meaning)."""
    def handler(b, n):
        b.emit(op, n.inputs, n.outputs)
    handler.__name__ = f"onnx_to_{op}"
    return handler


_BINARY = {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "Equal": "equal", "Less": "less",
           "Greater": "greater", "LessOrEqual": "less_equal", "GreaterOrEqual": "greater_equal",
           "And": "and", "Or": "or", "Xor": "xor", "BitwiseAnd": "bitwise_and", "BitwiseOr": "bitwise_or",
           "BitwiseXor": "bitwise_xor", "Where": "where"}
_UNARY = {"Neg": "neg", "Abs": "abs", "Sqrt": "sqrt", "Exp": "exp", "Log": "log", "Reciprocal": "reciprocal",
          "Floor": "floor", "Ceil": "ceil", "Round": "round", "Sign": "sign", "Sin": "sin", "Cos": "cos",
          "Tan": "tan", "Asin": "asin", "Acos": "acos", "Atan": "atan", "Sinh": "sinh", "Cosh": "cosh",
          "Asinh": "asinh", "Acosh": "acosh", "Atanh": "atanh", "Erf": "erf", "IsNaN": "isnan", "Not": "not",
          "BitwiseNot": "bitwise_not"}
# The opset that introduced each op (those not listed date from opset 1); later versions only added types.
_SINCE = {"LessOrEqual": 12, "GreaterOrEqual": 12, "BitwiseAnd": 18, "BitwiseOr": 18, "BitwiseXor": 18,
          "BitwiseNot": 18, "Where": 9, "Round": 11, "Sign": 9, "Sin": 7, "Cos": 7, "Tan": 7, "Asin": 7,
          "Acos": 7, "Atan": 7, "Sinh": 9, "Cosh": 9, "Asinh": 9, "Acosh": 9, "Atanh": 9, "Erf": 9, "IsNaN": 9}


# -- arithmetic with a twist ---------------------------------------------------------------------------------
def cast_to(b, name: str, dtype: str) -> str:
    """`name` as `dtype`, emitting a cast only when needed."""
    return name if b.dtype(name) == dtype else b.emit1("cast", [name], to=dtype)


_FLOAT_RANK = {"float16": 1, "float32": 2, "float64": 3}


def pow_(b, n):
    """Pow(X: T, Y: T1) -> T. The power is computed in the most precise dtype of the two (float64 for an integer
    base with a float exponent, so 2 ** 0.5 does not become 2 ** 0) and cast back to X's dtype."""
    base, exp = n.inputs[:2]
    bt, et = b.dtype(base), b.dtype(exp)
    if bt not in _FLOAT_RANK:
        work = "float64" if et in _FLOAT_RANK else bt
    elif et in _FLOAT_RANK and _FLOAT_RANK[et] > _FLOAT_RANK[bt]:
        work = et
    else:
        work = bt
    if work == bt:
        b.emit("pow", [base, cast_to(b, exp, bt)], n.outputs)
    else:
        r = b.emit1("pow", [cast_to(b, base, work), cast_to(b, exp, work)])
        b.emit("cast", [r], n.outputs, to=bt)


def mod(b, n):
    b.emit("mod", n.inputs, n.outputs, fmod=bool(n.attr("fmod", 0)))


def _fold(b, op: str, inputs: list[str], output: str | None = None) -> str:
    """Left fold of binary claw op `op` over `inputs`; the last node writes `output` (fresh when None)."""
    acc = inputs[0]
    for k, x in enumerate(inputs[1:], start=2):
        acc = b.emit1(op, [acc, x], output if k == len(inputs) else None)
    return acc


def _chain(op: str):
    """Variadic ONNX op (Sum, Max, Min) -> a chain of binary claw ops; one input is an alias."""
    def handler(b, n):
        ins = [i for i in n.inputs if i]
        if len(ins) == 1:
            b.alias(ins[0], n.outputs[0])
        else:
            _fold(b, op, ins, n.outputs[0])
    handler.__name__ = f"onnx_to_{op}_chain"
    return handler


def mean(b, n):
    ins = [i for i in n.inputs if i]
    if len(ins) == 1:
        b.alias(ins[0], n.outputs[0])
        return
    count = b.const(np.array(len(ins), dtype=b.dtype(ins[0])), "count")
    b.emit("div", [_fold(b, "add", ins), count], n.outputs)


def isinf(b, n):
    b.emit("isinf", n.inputs, n.outputs, detect_negative=bool(n.attr("detect_negative", 1)),
           detect_positive=bool(n.attr("detect_positive", 1)))


def bit_shift(b, n):
    direction = str(n.attr("direction", "")).lower()
    if direction not in ("left", "right"):
        raise Unsupported(f"BitShift direction {n.attr('direction')!r} (expected LEFT or RIGHT)")
    b.emit("bit_shift", n.inputs, n.outputs, direction=direction)


# -- clip ----------------------------------------------------------------------------------------------------
def clip_6(b, n):
    """Clip-6: bounds are float attributes; an absent one does not clip."""
    x = n.inputs[0]
    dt = b.dtype(x)
    bounds = [b.const(np.array(n.attr(k), dtype=dt), k) if n.attr(k) is not None else ""
              for k in ("min", "max")]
    b.emit("clip", [x, *bounds], n.outputs)


def clip_11(b, n):
    b.emit("clip", [n.input(0), n.input(1), n.input(2)], n.outputs)


# -- casts ---------------------------------------------------------------------------------------------------
def cast(b, n):
    to = onnx_dtype(int(n.attr("to")), "Cast target")
    b.emit("cast", n.inputs[:1], n.outputs, to=to)


def cast_like(b, n):
    like = n.inputs[1]
    if like not in b.graph.types:  # an initializer of a dtype clawdbot cannot hold was refused at load
        raise Unsupported(f"CastLike target {like!r} has an element type clawdbot does not support")
    b.emit("cast", n.inputs[:1], n.outputs, to=b.dtype(like))


def register(reg):
    for onnx_op, op in {**_BINARY, **_UNARY}.items():
        reg.insert(onnx_op, _direct(op), since=_SINCE.get(onnx_op, 1))
    reg.insert("Pow", pow_)
    reg.insert("Mod", mod, since=10)
    reg.insert("Sum", _chain("add"))
    reg.insert("Max", _chain("max"))
    reg.insert("Min", _chain("min"))
    reg.insert("Mean", mean)
    reg.insert("IsInf", isinf, since=10)
    reg.insert("BitShift", bit_shift, since=11)
    reg.insert("Clip", clip_6)
    reg.insert("Clip", clip_11, since=11)
    reg.insert("Cast", cast)
    reg.insert("CastLike", cast_like, since=15)
