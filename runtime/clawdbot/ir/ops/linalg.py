"""claw ops: linear algebra — matmul (numpy semantics), gemm (the fully connected layer), einsum and the
determinant."""
from __future__ import annotations

import re

from ..dtypes import FLOAT_TYPES
from ..graph import Dim, TensorType
from ._shapes import broadcast
from .registry import Attr, InferenceError, register


def _same_dtype(ctx, *idx: int) -> str:
    dtypes = {ctx.dtype(i) for i in idx if ctx.has_input(i)}
    if len(dtypes) != 1:
        raise InferenceError(f"operand dtypes differ: {sorted(dtypes)}")
    return dtypes.pop()


def _agree(a: Dim, b: Dim, what: str) -> Dim:
    """Two dims that must be equal: the known one, raising when both are known and differ."""
    if isinstance(a, int) and isinstance(b, int) and a != b:
        raise InferenceError(f"{what}: {a} != {b}")
    return a if isinstance(a, int) or b is None else b


def matmul_shape(a, b) -> tuple[Dim, ...] | None:
    """np.matmul's output shape: 1-D operands are promoted then the added axis dropped, batch dims
    broadcast."""
    if a is None or b is None:
        return None
    if len(a) == 0 or len(b) == 0:
        raise InferenceError("matmul operands must have rank >= 1")
    a2 = (1, a[0]) if len(a) == 1 else tuple(a)
    b2 = (b[0], 1) if len(b) == 1 else tuple(b)
    _agree(a2[-1], b2[-2], "matmul inner dims differ")
    batch = broadcast(a2[:-2], b2[:-2])
    out = list(batch) + ([a2[-2]] if len(a) > 1 else []) + ([b2[-1]] if len(b) > 1 else [])
    return tuple(out)


@register("matmul", "linalg", "y = a @ b with numpy matmul semantics (batched, broadcast batch dims, 1-D "
          "operands promoted and the added axis removed).", inputs=(2, 2))
def _matmul(ctx):
    dtype = _same_dtype(ctx, 0, 1)
    return [TensorType(dtype, matmul_shape(ctx.shape(0), ctx.shape(1)))]


@register("gemm", "linalg", "y = alpha * op(a) @ op(b) + beta * c, op() transposing when trans_a / trans_b; "
          "a and b are 2-D, c (optional) broadcasts to [M, N].", inputs=(2, 3),
          attrs={"alpha": Attr(float, 1.0), "beta": Attr(float, 1.0),
                 "trans_a": Attr(bool, False), "trans_b": Attr(bool, False)})
def _gemm(ctx):
    dtype = _same_dtype(ctx, 0, 1, 2)
    a, b = ctx.shape(0), ctx.shape(1)
    if (a is not None and len(a) != 2) or (b is not None and len(b) != 2):
        raise InferenceError("gemm operands must be 2-D")
    m = None if a is None else a[1 if ctx.attr("trans_a") else 0]
    k_a = None if a is None else a[0 if ctx.attr("trans_a") else 1]
    k_b = None if b is None else b[1 if ctx.attr("trans_b") else 0]
    n = None if b is None else b[0 if ctx.attr("trans_b") else 1]
    _agree(k_a, k_b, "gemm inner dims differ")
    if ctx.has_input(2):
        c = ctx.shape(2)
        if c is not None and len(c) > 2:
            raise InferenceError(f"gemm bias has rank {len(c)} > 2")
        broadcast((m, n), c)  # raises when c does not broadcast to [M, N]
    return [TensorType(dtype, (m, n))]


def parse_einsum(equation: str, n_inputs: int) -> tuple[list[str], str]:
    """Split an einsum equation into input terms and the output term (implicit output made explicit:
    ellipsis first, then letters used once, in alphabetical order — numpy's and ONNX's rule)."""
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != n_inputs:
        raise InferenceError(f"einsum equation {equation!r} has {len(terms)} operands, node has {n_inputs}")
    for t in terms + ([rhs] if arrow else []):
        if t.count("...") > 1 or not re.fullmatch(r"[A-Za-z]*(\.\.\.)?[A-Za-z]*", t):
            raise InferenceError(f"einsum term {t!r} of {equation!r} is malformed")
    if not arrow:
        letters = "".join(terms).replace(".", "")
        once = sorted(c for c in set(letters) if letters.count(c) == 1)
        rhs = ("..." if any("..." in t for t in terms) else "") + "".join(once)
    return terms, rhs


def einsum_shape(terms: list[str], rhs: str, shapes) -> tuple[Dim, ...] | None:
    if any(s is None for s in shapes):
        return None
    sizes: dict[str, Dim] = {}
    ellipses = []
    for term, shape in zip(terms, shapes):
        head, dots, tail = term.partition("...")
        n_ell = len(shape) - len(head) - len(tail)
        if n_ell < 0 or (n_ell > 0 and not dots):
            raise InferenceError(f"einsum term {term!r} does not match an operand of rank {len(shape)}")
        letters = list(zip(head, shape[:len(head)])) + list(zip(tail, shape[len(shape) - len(tail):]))
        for c, d in letters:
            sizes[c] = _agree(sizes.get(c), d, f"einsum label {c!r}") if c in sizes else d
        if dots:
            ellipses.append(tuple(shape[len(head):len(head) + n_ell]))
    ell = broadcast(*ellipses) if ellipses else ()
    head, dots, tail = rhs.partition("...")
    for c in head + tail:
        if c not in sizes:
            raise InferenceError(f"einsum output label {c!r} is not an input label")
    return tuple([sizes[c] for c in head] + (list(ell) if dots else []) + [sizes[c] for c in tail])


@register("einsum", "linalg", "Einstein summation over the inputs (numpy einsum semantics, with ellipsis).",
          inputs=(1, -1), attrs={"equation": Attr(str)})
def _einsum(ctx):
    n = len(ctx.in_types)
    dtype = _same_dtype(ctx, *range(n))
    terms, rhs = parse_einsum(ctx.attr("equation"), n)
    return [TensorType(dtype, einsum_shape(terms, rhs, [ctx.shape(i) for i in range(n)]))]


@register("det", "linalg", "Determinant of each square matrix in x [..., M, M] (float); y has shape [...].")
def _det(ctx):
    t = ctx.type(0)
    if t.dtype not in FLOAT_TYPES:
        raise InferenceError(f"det needs a float input, got {t.dtype}")
    if t.shape is None:
        return [TensorType(t.dtype, None)]
    if len(t.shape) < 2:
        raise InferenceError(f"det needs rank >= 2, got {len(t.shape)}")
    _agree(t.shape[-2], t.shape[-1], "det needs square matrices")
    return [TensorType(t.dtype, tuple(t.shape[:-2]))]
