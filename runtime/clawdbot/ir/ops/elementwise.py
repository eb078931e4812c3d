"""claw ops: elementwise arithmetic, comparison and logic with numpy broadcasting.

Operands of every binary op share one dtype (importers insert `cast` where a framework promotes); comparisons
and logic produce bool. Besides types, inference propagates the *symbolic values* of small integer tensors
through the arithmetic that shape-computing subgraphs use (Shape -> Gather -> Mul -> Concat -> Reshape), so a
reshape behind such a chain stays inferable.
"""
from __future__ import annotations

from typing import Callable

from ..dtypes import DTYPES, FLOAT_TYPES, INT_TYPES, NUMERIC_TYPES
from ..graph import Dim, TensorType
from . import _shapes
from ._shapes import broadcast
from .registry import Attr, InferenceError, register

_SIGNED = frozenset({"int8", "int16", "int32", "int64"})


# -- helpers ---------------------------------------------------------------------------------------------------
def _check_dtype(ctx, i: int, allowed: frozenset[str], what: str) -> str:
    dt = ctx.dtype(i)
    if dt not in allowed:
        raise InferenceError(f"{what} does not take {dt} (input {i}); it takes {', '.join(sorted(allowed))}")
    return dt


def _same_dtype(ctx, indices, allowed: frozenset[str] | None = None) -> str:
    dts = [ctx.dtype(i) for i in indices]
    if len(set(dts)) != 1:
        raise InferenceError(f"operand dtypes differ: {' vs '.join(dts)}")
    if allowed is not None:
        _check_dtype(ctx, indices[0], allowed, ctx.node.op)
    return dts[0]


def _binary(ctx, allowed: frozenset[str] | None, out_dtype: str | None = None) -> list[TensorType]:
    dt = _same_dtype(ctx, (0, 1), allowed)
    return [TensorType(out_dtype or dt, broadcast(ctx.shape(0), ctx.shape(1)))]


def _unary(ctx, allowed: frozenset[str] | None, out_dtype: str | None = None) -> list[TensorType]:
    if allowed is not None:
        _check_dtype(ctx, 0, allowed, ctx.node.op)
    t = ctx.type(0)
    return [TensorType(out_dtype or t.dtype, t.shape)]


def _sym_binary(ctx, fn: Callable[[Dim, Dim], Dim]) -> None:
    """Record the symbolic value of an integer op on two 0-D/1-D symbolic operands (broadcasting 1 to n)."""
    if ctx.dtype(0) not in INT_TYPES:
        return
    a, b = ctx.sym(0), ctx.sym(1)
    if a is None or b is None or (len(a) != len(b) and 1 not in (len(a), len(b))):
        return
    n = max(len(a), len(b))
    a, b = (a * n if len(a) == 1 else a), (b * n if len(b) == 1 else b)
    # A 0-D result stays 0-D: its symbolic value is still a one-entry list.
    ctx.set_sym(0, [fn(x, y) for x, y in zip(a, b)])


def _sym_sub(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int):
        return a - b
    return a if b == 0 else None


def _sym_div(a: Dim, b: Dim) -> Dim:
    if isinstance(a, int) and isinstance(b, int) and b != 0:
        q = abs(a) // abs(b)
        return q if (a >= 0) == (b > 0) else -q  # integer division truncates toward zero
    return a if b == 1 else None


def _sym_int(fn: Callable[[int, int], int]) -> Callable[[Dim, Dim], Dim]:
    return lambda a, b: fn(a, b) if isinstance(a, int) and isinstance(b, int) else None


def _sym_equal(a: Dim, b: Dim) -> Dim:
    """1/0 when decidable. A named dim equals itself, and never a negative number: exported graphs test shape
    entries against -1 (Expand/Reshape helpers), which must stay decidable with a symbolic batch dim."""
    if isinstance(a, int) and isinstance(b, int):
        return int(a == b)
    if isinstance(a, str) and a == b:
        return 1
    if (isinstance(a, str) and isinstance(b, int) and b < 0) or (isinstance(b, str) and isinstance(a, int) and a < 0):
        return 0
    return None


# -- arithmetic ------------------------------------------------------------------------------------------------
@register("add", "elementwise", "y = a + b (broadcasting).", inputs=(2, 2))
def _add(ctx):
    out = _binary(ctx, NUMERIC_TYPES)
    _sym_binary(ctx, _shapes.add)
    return out


@register("sub", "elementwise", "y = a - b (broadcasting).", inputs=(2, 2))
def _sub(ctx):
    out = _binary(ctx, NUMERIC_TYPES)
    _sym_binary(ctx, _sym_sub)
    return out


@register("mul", "elementwise", "y = a * b (broadcasting).", inputs=(2, 2))
def _mul(ctx):
    out = _binary(ctx, NUMERIC_TYPES)
    _sym_binary(ctx, _shapes.mul)
    return out


@register("div", "elementwise", "y = a / b (broadcasting). Integer division truncates toward zero (C, ONNX); "
          "an integer divided by zero gives 0.", inputs=(2, 2))
def _div(ctx):
    out = _binary(ctx, NUMERIC_TYPES)
    _sym_binary(ctx, _sym_div)
    return out


@register("pow", "elementwise", "y = a ** b (broadcasting). For integers a negative exponent gives the "
          "truncated real result (1 for a = 1, ±1 for a = -1, else 0).", inputs=(2, 2))
def _pow(ctx):
    return _binary(ctx, NUMERIC_TYPES)


@register("mod", "elementwise", "Remainder of a / b (broadcasting). fmod=False: floored, sign of b (Python %); "
          "fmod=True: truncated, sign of a (C fmod).", inputs=(2, 2),
          attrs={"fmod": Attr(bool, False, "truncate the quotient instead of flooring it")})
def _mod(ctx):
    return _binary(ctx, NUMERIC_TYPES)


@register("min", "elementwise", "y = min(a, b) (broadcasting); NaN propagates.", inputs=(2, 2))
def _min(ctx):
    out = _binary(ctx, NUMERIC_TYPES)
    _sym_binary(ctx, _sym_int(min))
    return out


@register("max", "elementwise", "y = max(a, b) (broadcasting); NaN propagates.", inputs=(2, 2))
def _max(ctx):
    out = _binary(ctx, NUMERIC_TYPES)
    _sym_binary(ctx, _sym_int(max))
    return out


@register("clip", "elementwise", "y = min(max(x, lo), hi); lo and hi are optional 0-D inputs of x's dtype "
          "(an omitted bound does not clip). When lo > hi every element becomes hi.", inputs=(1, 3))
def _clip(ctx):
    dt = _check_dtype(ctx, 0, NUMERIC_TYPES, "clip")
    for i in (1, 2):
        if ctx.has_input(i):
            if ctx.dtype(i) != dt:
                raise InferenceError(f"bound {i} has dtype {ctx.dtype(i)}, x has {dt}")
            if ctx.shape(i) is not None and _shapes.prod(ctx.shape(i)) not in (1, None):
                raise InferenceError(f"bound {i} must hold one value, has shape {list(ctx.shape(i))}")
    return [ctx.type(0)]


# -- unary math ------------------------------------------------------------------------------------------------
def _unary_op(name: str, doc: str, allowed: frozenset[str]) -> None:
    register(name, "elementwise", doc)(lambda ctx: _unary(ctx, allowed))


_SIGNED_NUMERIC = FLOAT_TYPES | _SIGNED
_unary_op("neg", "y = -x.", _SIGNED_NUMERIC)
_unary_op("abs", "y = |x|.", NUMERIC_TYPES)
_unary_op("sign", "y = -1, 0 or 1 by the sign of x (NaN stays NaN).", NUMERIC_TYPES)
_unary_op("sqrt", "y = sqrt(x); NaN for x < 0.", FLOAT_TYPES)
_unary_op("exp", "y = e ** x.", FLOAT_TYPES)
_unary_op("log", "y = ln(x); -inf at 0, NaN below.", FLOAT_TYPES)
_unary_op("reciprocal", "y = 1 / x.", FLOAT_TYPES)
_unary_op("floor", "y = largest integer <= x.", FLOAT_TYPES)
_unary_op("ceil", "y = smallest integer >= x.", FLOAT_TYPES)
_unary_op("round", "y = x rounded to the nearest integer, halves to even.", FLOAT_TYPES)
_unary_op("erf", "y = erf(x), the Gauss error function.", FLOAT_TYPES)
for _name in ("sin", "cos", "tan", "asin", "acos", "atan", "sinh", "cosh", "asinh", "acosh", "atanh"):
    _unary_op(_name, f"y = {_name}(x) (radians).", FLOAT_TYPES)


@register("isnan", "elementwise", "y = (x is NaN), bool.")
def _isnan(ctx):
    return _unary(ctx, FLOAT_TYPES, "bool")


@register("isinf", "elementwise", "y = (x is an infinity of a detected sign), bool.",
          attrs={"detect_negative": Attr(bool, True, "map -inf to true"),
                 "detect_positive": Attr(bool, True, "map +inf to true")})
def _isinf(ctx):
    return _unary(ctx, FLOAT_TYPES, "bool")


# -- comparison and logic --------------------------------------------------------------------------------------
_COMPARABLE = NUMERIC_TYPES | {"bool"}


@register("equal", "elementwise", "y = a == b (broadcasting), bool.", inputs=(2, 2))
def _equal(ctx):
    out = _binary(ctx, _COMPARABLE, "bool")
    _sym_binary(ctx, _sym_equal)
    return out


for _name, _fn in (("less", "<"), ("greater", ">"), ("less_equal", "<="), ("greater_equal", ">=")):
    register(_name, "elementwise", f"y = a {_fn} b (broadcasting), bool.", inputs=(2, 2))(
        lambda ctx: _binary(ctx, _COMPARABLE, "bool"))

_BOOL = frozenset({"bool"})
for _name in ("and", "or", "xor"):
    register(_name, "elementwise", f"y = a {_name} b on bool tensors (broadcasting).", inputs=(2, 2))(
        lambda ctx: _binary(ctx, _BOOL))


@register("not", "elementwise", "y = not x on a bool tensor.")
def _not(ctx):
    return _unary(ctx, _BOOL)


# -- bitwise ---------------------------------------------------------------------------------------------------
for _name, _doc in (("bitwise_and", "a & b"), ("bitwise_or", "a | b"), ("bitwise_xor", "a ^ b")):
    register(_name, "elementwise", f"y = {_doc} on integers (broadcasting).", inputs=(2, 2))(
        lambda ctx: _binary(ctx, INT_TYPES))


@register("bitwise_not", "elementwise", "y = ~x on integers.")
def _bitwise_not(ctx):
    return _unary(ctx, INT_TYPES)


@register("bit_shift", "elementwise", "y = a << b or a >> b (broadcasting). Right shifts of signed integers "
          "are arithmetic; a shift that is negative or not below the bit width leaves only the sign fill "
          "(-1 for a right shift of a negative a, else 0).", inputs=(2, 2),
          attrs={"direction": Attr(str, doc='"left" or "right"')})
def _bit_shift(ctx):
    if ctx.attr("direction") not in ("left", "right"):
        raise InferenceError(f"direction must be 'left' or 'right', got {ctx.attr('direction')!r}")
    return _binary(ctx, INT_TYPES)


# -- selection and conversion ----------------------------------------------------------------------------------
@register("where", "elementwise", "y = a where cond else b (broadcasting all three; cond is bool).",
          inputs=(3, 3))
def _where(ctx):
    if ctx.dtype(0) != "bool":
        raise InferenceError(f"condition must be bool, got {ctx.dtype(0)}")
    dt = _same_dtype(ctx, (1, 2))
    _sym_where(ctx)
    return [TensorType(dt, broadcast(ctx.shape(0), ctx.shape(1), ctx.shape(2)))]


def _sym_where(ctx) -> None:
    """Pick symbolic entries of a/b by a condition whose entries are all decided (a shape-helper pattern)."""
    cond, a, b = ctx.sym(0), ctx.sym(1), ctx.sym(2)
    if cond is None or a is None or b is None or ctx.dtype(1) not in INT_TYPES or None in cond:
        return
    n = max(len(cond), len(a), len(b))
    if any(len(s) not in (1, n) for s in (cond, a, b)):
        return
    cond, a, b = (s * n if len(s) == 1 else s for s in (cond, a, b))
    ctx.set_sym(0, [x if c else y for c, x, y in zip(cond, a, b)])


@register("cast", "elementwise", "y = x converted to dtype `to` (C conversion: floats truncate toward zero "
          "when cast to integers; nonzero -> true for bool).",
          attrs={"to": Attr(str, doc="target claw dtype")})
def _cast(ctx):
    to = ctx.attr("to")
    if to not in DTYPES:
        raise InferenceError(f"cannot cast to {to!r}; claw dtypes are {', '.join(DTYPES)}")
    t = ctx.type(0)
    # Integer -> integer casts of shape values keep their symbolic value (when it fits the target).
    s = ctx.sym(0)
    if s is not None and t.dtype in INT_TYPES and to in ("int32", "int64"):
        ctx.set_sym(0, s)
    return [TensorType(to, t.shape)]
