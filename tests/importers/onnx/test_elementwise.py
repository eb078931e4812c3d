"""ONNX elementwise ops through clawdbot, compared with onnxruntime on one-node models.

Covers broadcasting (incl. 0-D and size-1 axes), the dtypes ONNX allows for each op, attribute variants and the
opset-dependent forms (Clip bounds as attributes before opset 11, Pow with a differently typed exponent).
conftest.py sets CLAWDBOT_CHECK=1, so every kernel's output dtype/shape is checked against inference.
"""
from __future__ import annotations

import math
from functools import partial

import numpy as np
import pytest
from claw_testing import assert_matches_ort, one_node_model, rand
from onnx import TensorProto, helper

import clawdbot
from clawdbot.errors import UnsupportedOpsError

RNG = np.random.default_rng(0)
BROADCAST_SHAPES = [((3, 4), (3, 4)), ((2, 3, 5), (5,)), ((4, 1), (1, 3)), ((), (2, 3)), ((2, 1, 5), (3, 1)),
                    ((7,), ())]
model = partial(one_node_model, opset=18)
check = partial(assert_matches_ort, rtol=1e-6, atol=1e-6)


def tol(dtype) -> dict:
    return {"rtol": 2e-3, "atol": 2e-3} if np.dtype(dtype) == np.float16 else {"rtol": 1e-5, "atol": 1e-6}


# -- binary arithmetic ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES)
@pytest.mark.parametrize("op", ["Add", "Sub", "Mul", "Div"])
@pytest.mark.parametrize("dtype", ["float32", "float64", "int32", "int64", "int8", "uint8"])
def test_arithmetic(op, dtype, shapes):
    lo = 0 if op == "Sub" and dtype == "uint8" else -9  # keep unsigned results in range
    a = rand(RNG, shapes[0], dtype, lo, 9)
    b = rand(RNG, shapes[1], dtype, 1 if lo == 0 else -9, 9, nonzero=True)
    check(model(op, {"a": a, "b": b}), {"a": a, "b": b})


def test_integer_division_truncates_toward_zero():
    a = np.array([7, -7, 7, -7, 0, 6, -6], dtype=np.int32)
    b = np.array([2, 2, -2, -2, 3, -4, 4], dtype=np.int32)
    check(model("Div", {"a": a, "b": b}), {"a": a, "b": b})


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_float16_and_friends_arithmetic(dtype):
    a, b = rand(RNG, (3, 5), dtype, -5, 5), rand(RNG, (5,), dtype, -5, 5, nonzero=True)
    for op in ("Add", "Sub", "Mul", "Div"):
        check(model(op, {"a": a, "b": b}), {"a": a, "b": b}, **tol(dtype))


# onnxruntime implements fmod=0 for integers only (floats with fmod=0 arrived in opset 28).
@pytest.mark.parametrize("dtype,fmod", [(t, f) for t in ("int32", "int64", "int8", "uint16") for f in (0, 1)]
                         + [("float32", 1), ("float64", 1), ("float16", 1)])
def test_mod(dtype, fmod):
    a, b = rand(RNG, (4, 6), dtype, -20, 20), rand(RNG, (6,), dtype, -7, 7, nonzero=True)
    check(model("Mod", {"a": a, "b": b}, fmod=fmod), {"a": a, "b": b})


@pytest.mark.parametrize("base,exp", [("float32", "float32"), ("float64", "float64"), ("float32", "int64"),
                                      ("float32", "int32"), ("int64", "float32"), ("int32", "float32"),
                                      ("int64", "int64"), ("int32", "int32"), ("float64", "float32"),
                                      ("float16", "float32"), ("float32", "float64"), ("int64", "int32")])
@pytest.mark.parametrize("opset", [12, 15])
def test_pow_mixed_types(base, exp, opset):
    # Integer bases >= 1: 0 ** -x is inf, whose conversion to an integer is undefined.
    a = rand(RNG, (3, 4), base, 1, 5) if base.startswith("int") else rand(RNG, (3, 4), base, 0.1, 3)
    b = rand(RNG, (4,), exp, 0, 3) if exp.startswith("int") else rand(RNG, (4,), exp, -2, 2.5)
    check(model("Pow", {"a": a, "b": b}, opset=opset), {"a": a, "b": b}, rtol=1e-5)


def test_pow_integer_negative_exponent_truncates():
    a = np.array([1, -1, -1, 2, -3, 0, 5], dtype=np.int64)
    b = np.array([-3, -2, -3, -1, -2, 2, 0], dtype=np.int64)
    sess = clawdbot.load(model("Pow", {"a": a, "b": b}))
    expected = np.array([int(math.trunc(float(x) ** float(y))) if x else 0 for x, y in zip(a, b)])
    np.testing.assert_array_equal(sess.run({"a": a, "b": b})["y"], expected)


@pytest.mark.parametrize("op", ["Sum", "Mean", "Max", "Min"])
@pytest.mark.parametrize("shapes", [[(3, 4)], [(3, 4), (4,)], [(2, 1, 4), (3, 1), (1,)]])
def test_variadic(op, shapes):
    xs = {f"x{i}": rand(RNG, s, "float32", -5, 5) for i, s in enumerate(shapes)}
    check(model(op, xs, opset=13), xs)


@pytest.mark.parametrize("dtype", ["int8", "uint32", "int64", "float16", "float64"])
def test_max_min_dtypes(dtype):
    xs = {"a": rand(RNG, (2, 3), dtype, -5, 5), "b": rand(RNG, (3,), dtype, -5, 5)}
    for op in ("Max", "Min"):
        check(model(op, xs, opset=13), xs)


def test_max_propagates_nan():
    xs = {"a": np.array([1, np.nan, 3], np.float32), "b": np.array([np.nan, 2, 1], np.float32)}
    check(model("Max", xs, opset=13), xs)


# -- unary -----------------------------------------------------------------------------------------------------
UNARY = {"Neg": (-5, 5), "Abs": (-5, 5), "Sqrt": (0, 9), "Exp": (-5, 5), "Log": (0.01, 9),
         "Reciprocal": (0.5, 4), "Floor": (-5, 5), "Ceil": (-5, 5), "Sign": (-2, 2), "Sin": (-4, 4),
         "Cos": (-4, 4), "Tan": (-1.4, 1.4), "Asin": (-1, 1), "Acos": (-1, 1), "Atan": (-9, 9),
         "Sinh": (-4, 4), "Cosh": (-4, 4), "Asinh": (-9, 9), "Acosh": (1, 9), "Atanh": (-0.99, 0.99),
         "Erf": (-4, 4)}


ORT_FLOAT32_ONLY = {"Tan", "Asin", "Acos", "Atan", "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Erf"}


@pytest.mark.parametrize("op", sorted(UNARY))
@pytest.mark.parametrize("dtype", ["float32", "float64", "float16"])
def test_unary_math(op, dtype):
    lo, hi = UNARY[op]
    x = rand(RNG, (3, 7), dtype, lo, hi)
    if op in ("Erf", "Sign", "Abs", "Neg"):
        x[0, :3] = 0
    # onnxruntime has no float64 kernel for some: the oracle runs those in float32.
    cast = ("float64", "float32") if dtype == "float64" and op in ORT_FLOAT32_ONLY else None
    check(model(op, {"x": x}, opset=13), {"x": x}, cast_for_ort=cast, **tol(dtype))


def test_unary_on_scalar_and_empty():
    for x in (np.array(0.7, np.float32), np.zeros((0, 3), np.float32)):
        for op in ("Exp", "Neg", "Erf", "Round"):
            check(model(op, {"x": x}, opset=13), {"x": x})


def test_round_half_to_even():
    x = np.array([-2.5, -1.5, -0.5, 0.5, 1.5, 2.5, 2.4, -2.6], np.float32)
    check(model("Round", {"x": x}), {"x": x})


@pytest.mark.parametrize("dtype", ["int32", "int8", "int64"])
def test_integer_unary(dtype):
    x = rand(RNG, (4, 5), dtype, -9, 9)
    for op in ("Neg", "Abs", "Sign"):
        check(model(op, {"x": x}, opset=13), {"x": x})


def test_erf_fallback_without_scipy():
    from clawdbot.hal.cpu.kernels import elementwise as k
    x = np.concatenate([np.linspace(-7, 7, 2001), [0.0, 1e-30, -1e-12, 3e-8]])
    ref = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(k._erf_fallback(x), ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(k._erf_fallback(x.astype(np.float32)).astype(np.float32), ref, rtol=1e-6,
                               atol=1e-7)


@pytest.mark.parametrize("neg,pos", [(1, 1), (0, 1), (1, 0), (0, 0)])
def test_isinf_isnan(neg, pos):
    x = np.array([1.0, np.inf, -np.inf, np.nan, 0.0, -3.0], np.float32)
    check(model("IsInf", {"x": x}, detect_negative=neg, detect_positive=pos), {"x": x})
    check(model("IsNaN", {"x": x.astype(np.float16)}), {"x": x.astype(np.float16)})


# -- comparison, logic, bitwise -------------------------------------------------------------------------------
@pytest.mark.parametrize("op", ["Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"])
@pytest.mark.parametrize("dtype", ["float32", "int64", "int8", "uint16", "float16"])
def test_comparison(op, dtype):
    a, b = rand(RNG, (3, 4), dtype, -3, 3), rand(RNG, (4,), dtype, -3, 3)
    check(model(op, {"a": a, "b": b}), {"a": a, "b": b})


def test_equal_on_bool():
    a, b = rand(RNG, (3, 4), "bool"), rand(RNG, (1, 4), "bool")
    check(model("Equal", {"a": a, "b": b}), {"a": a, "b": b})


@pytest.mark.parametrize("op", ["And", "Or", "Xor"])
@pytest.mark.parametrize("shapes", BROADCAST_SHAPES[:4])
def test_logic(op, shapes):
    a, b = rand(RNG, shapes[0], "bool"), rand(RNG, shapes[1], "bool")
    check(model(op, {"a": a, "b": b}), {"a": a, "b": b})
    check(model("Not", {"x": a}), {"x": a})


@pytest.mark.parametrize("op", ["BitwiseAnd", "BitwiseOr", "BitwiseXor"])
@pytest.mark.parametrize("dtype", ["int32", "uint8", "int16", "uint64"])
def test_bitwise(op, dtype):
    a, b = rand(RNG, (3, 4), dtype, -100, 100), rand(RNG, (4,), dtype, -100, 100)
    check(model(op, {"a": a, "b": b}), {"a": a, "b": b})
    check(model("BitwiseNot", {"x": a}), {"x": a})


@pytest.mark.parametrize("direction", ["LEFT", "RIGHT"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "uint32", "uint64"])
def test_bit_shift(direction, dtype):
    bits = np.dtype(dtype).itemsize * 8
    a = rand(RNG, (2, 5), dtype, 0, 200)
    b = np.array([0, 1, 3, bits - 1, 2], dtype=dtype)
    check(model("BitShift", {"a": a, "b": b}, direction=direction), {"a": a, "b": b})


# -- where, clip, cast -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float32", "int64", "int32", "uint8"])
def test_where(dtype):
    c, a, b = rand(RNG, (3, 1, 4), "bool"), rand(RNG, (2, 4), dtype, -5, 5), rand(RNG, (), dtype, -5, 5)
    check(model("Where", {"c": c, "a": a, "b": b}), {"c": c, "a": a, "b": b})


CLIP_BOUNDS = [(-1.0, 2.0), (None, 0.5), (-0.5, None), (None, None)]


# onnxruntime's Clip-6 rejects min > max, so that case runs with bounds as inputs only.
@pytest.mark.parametrize("opset,bounds", [(o, bd) for o in (10, 11, 13) for bd in CLIP_BOUNDS]
                         + [(11, (2.0, -1.0)), (13, (2.0, -1.0))])
def test_clip(bounds, opset):
    x = rand(RNG, (3, 4), "float32", -4, 4)
    lo, hi = bounds
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        check(model("Clip", {"x": x}, opset=opset, **attrs), {"x": x})
    else:
        consts = {k: np.array(v, np.float32) for k, v in (("lo", lo), ("hi", hi)) if v is not None}
        if hi is not None and lo is None:
            # An omitted min is an empty input name before max.
            m = model("Clip", {"x": x, "lo": None}, opset=opset, consts=consts)
        else:
            m = model("Clip", {"x": x}, opset=opset, consts=consts)
        check(m, {"x": x})


def test_clip_integers_with_runtime_bounds():
    x, lo, hi = rand(RNG, (5, 3), "int8", -100, 100), np.array(-20, np.int8), np.array(30, np.int8)
    check(model("Clip", {"x": x, "lo": lo, "hi": hi}, opset=13), {"x": x, "lo": lo, "hi": hi})


CAST_TYPES = ["float32", "float64", "float16", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
              "uint64", "bool"]


@pytest.mark.parametrize("src", CAST_TYPES)
def test_cast_between_all_claw_dtypes(src):
    x = rand(RNG, (3, 4), src, 0, 100)  # in range of every target type
    if np.dtype(src).kind == "f":
        x[0, :2] = [2.7, 99.9]  # truncation toward zero
    for to in CAST_TYPES:
        elem = helper.np_dtype_to_tensor_dtype(np.dtype(to))
        check(model("Cast", {"x": x}, opset=13, to=elem), {"x": x})
        check(model("CastLike", {"x": x}, opset=15, consts={"like": np.zeros((1,), to)}), {"x": x})


def test_cast_negative_float_to_signed_int_truncates():
    x = np.array([-2.7, -0.5, 0.5, 3.99], np.float32)
    check(model("Cast", {"x": x}, to=TensorProto.INT32), {"x": x})


@pytest.mark.parametrize("to", [TensorProto.STRING, TensorProto.BFLOAT16, TensorProto.FLOAT8E4M3FN])
def test_cast_to_unsupported_type_is_reported_at_conversion(to):
    m = model("Cast", {"x": np.zeros((2,), np.float32)}, opset=19, to=to)
    with pytest.raises(UnsupportedOpsError) as info:
        clawdbot.load(m)
    assert "cast_node" in str(info.value) and "Cast" in info.value.unsupported
    assert TensorProto.DataType.Name(to) in str(info.value)


def test_shape_arithmetic_keeps_symbolic_values():
    """Integer arithmetic on shape values stays known to inference (shape subgraphs feeding Reshape rely on
    it), including named symbolic dims multiplied by 1 or offset by 0."""
    from clawdbot.ir.graph import Node, TensorType
    from clawdbot.ir.infer import infer_node
    consts = {"a": np.array([2, 3], np.int64), "b": np.array(4, np.int64), "one": np.array([1], np.int64)}
    types = {k: TensorType.of(v) for k, v in consts.items()} | {"n": TensorType("int64", (2,))}
    syms = {"n": ["batch", 5]}
    consts["minus1"] = np.array([-1, 5], np.int64)
    types["minus1"] = TensorType.of(consts["minus1"])
    for node in (Node("mul", ["a", "b"], ["m"]), Node("div", ["m", "a"], ["d"]), Node("sub", ["d", "b"], ["s"]),
                 Node("mul", ["n", "one"], ["n1"]), Node("cast", ["n1"], ["n2"], {"to": "int32"}),
                 Node("equal", ["n", "minus1"], ["eq"]), Node("where", ["eq", "a", "n"], ["w"])):
        for name, t in zip(node.outputs, infer_node(node, types, consts, syms)):
            types[name] = t
    assert (syms["m"], syms["d"], syms["s"]) == ([8, 12], [4, 4], [0, 0])
    assert syms["n1"] == ["batch", 5] and syms["n2"] == ["batch", 5]
    # A named dim is never -1: the Expand-helper pattern where(shape == -1, ones, shape) stays symbolic.
    assert syms["eq"] == [0, 1] and syms["w"] == ["batch", 3]
