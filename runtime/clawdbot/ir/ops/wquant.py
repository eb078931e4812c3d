"""claw ops: compute with weight-only quantized constants (made by quant/rewrite.py from fp32 matmul, gemm,
conv and gather nodes).

Every quantized weight is a *row-quantized matrix* [R, C]: each row is cut into groups of `group_size`
consecutive columns, and each group has a float32 scale and, for asymmetric int4, a zero point:
    W[r, c] = (q[r, c] - zero_point[r, c // group_size]) * scale[r, c // group_size]
`bits` = 8: q is int8 [R, C], symmetric (no zero point input). `bits` = 4: q holds two 4-bit values per
byte, uint8 [R, ceil(C / 2)], column 2i in the low nibble and 2i+1 in the high one; zero points are uint8
[R, C / group_size] in 0..15. A row of the matrix is what one output needs (an output channel, a token's
embedding), so kernels can dequantize a block of rows at a time and never hold a whole fp32 weight.
"""
from __future__ import annotations

from ..graph import TensorType
from .conv import WINDOW_ATTRS, window_out
from .registry import Attr, InferenceError, register

_Q_ATTRS = {
    "bits": Attr(int, 8, "8 (int8, symmetric) or 4 (packed uint4, asymmetric)"),
    "group_size": Attr(int, 0, "columns per scale; 0: one group per row"),
    "cols": Attr(int, 0, "C, the logical row length (int4 packing rounds it up to even)"),
}


def _check_weight(ctx, q: int, scale: int, zp: int | None) -> tuple[int, int]:
    """(R, C) of the quantized matrix at inputs q/scale/zp, checking dtypes and shapes."""
    bits, cols = ctx.attr("bits"), ctx.attr("cols")
    group = ctx.attr("group_size") or cols
    want = {8: "int8", 4: "uint8"}.get(bits)
    if want is None:
        raise InferenceError(f"bits must be 8 or 4, got {bits}")
    if cols < 1 or cols % group:
        raise InferenceError(f"cols {cols} is not a positive multiple of group_size {group}")
    qt, st = ctx.type(q), ctx.type(scale)
    if qt.dtype != want or st.dtype != "float32":
        raise InferenceError(f"{bits}-bit weights are {want} with float32 scales, got {qt.dtype} and {st.dtype}")
    if qt.shape is None or len(qt.shape) != 2 or st.shape is None or len(st.shape) != 2:
        raise InferenceError(f"quantized weight and scale must be 2-D, got {qt} and {st}")
    rows = qt.shape[0]
    packed = cols if bits == 8 else (cols + 1) // 2
    if qt.shape[1] != packed or tuple(st.shape) != (rows, cols // group):
        raise InferenceError(f"a [{rows}, {cols}] {bits}-bit matrix in groups of {group} needs q [{rows}, "
                             f"{packed}] and scale [{rows}, {cols // group}], got {qt} and {st}")
    has_zp = zp is not None and ctx.has_input(zp)
    if (bits == 4) != has_zp:
        raise InferenceError("4-bit weights take a zero point input, 8-bit weights none")
    if has_zp and (ctx.dtype(zp) != "uint8" or tuple(ctx.shape(zp) or ()) != tuple(st.shape)):
        raise InferenceError(f"zero point must be uint8 shaped like the scale {st}, got {ctx.type(zp)}")
    return rows, cols


@register("matmul_wq", "quant",
          "y = x @ W.T with W [N, K] row-quantized (see the family doc): x [..., K] -> y [..., N]. Inputs: x, "
          "q, scale, optional zero point (4-bit). activations='int8' (8-bit, one group per row): x is "
          "quantized on the fly, per row of x, to uint8 with its own scale and zero point, and the product "
          "is accumulated in int32 (dynamic quantization).", inputs=(3, 4),
          attrs={**_Q_ATTRS, "activations": Attr(str, "float", "float (dequantize the weight) or int8 (dynamic)")})
def _matmul_wq(ctx):
    n, k = _check_weight(ctx, 1, 2, 3)
    if ctx.attr("activations") not in ("float", "int8"):
        raise InferenceError(f"activations must be float or int8, got {ctx.attr('activations')!r}")
    if ctx.attr("activations") == "int8" and (ctx.attr("bits") != 8 or (ctx.attr("group_size") or k) != k):
        raise InferenceError("int8 activations need 8-bit weights with one group per row")
    x = ctx.type(0)
    if x.dtype != "float32":
        raise InferenceError(f"x must be float32, got {x.dtype}")
    if x.shape is None:
        return [TensorType("float32", None)]
    if not x.shape or (isinstance(x.shape[-1], int) and x.shape[-1] != k):
        raise InferenceError(f"x {x} does not end in K = {k}")
    return [TensorType("float32", (*x.shape[:-1], n))]


@register("conv_wq", "quant",
          "conv with its weight [M, C/group, *kernel] stored row-quantized as [M, C/group * prod(kernel)]. "
          "Inputs: x, q, scale, zero point ('' for 8-bit), optional bias [M]. activations='int8' (8-bit, one "
          "group per row, group 1): each image is quantized on the fly to uint8 with its own scale and zero "
          "point, and the product accumulated in int32.", inputs=(4, 5),
          attrs={**WINDOW_ATTRS, "group": Attr(int, 1), "kernel_shape": Attr(list, [], "the weight's spatial dims"),
                 **_Q_ATTRS, "activations": Attr(str, "float", "float (dequantize the weight) or int8 (dynamic)")})
def _conv_wq(ctx):
    m, k = _check_weight(ctx, 1, 2, 3)
    if ctx.attr("activations") not in ("float", "int8"):
        raise InferenceError(f"activations must be float or int8, got {ctx.attr('activations')!r}")
    if ctx.attr("activations") == "int8" and (ctx.attr("bits") != 8 or (ctx.attr("group_size") or k) != k
                                              or ctx.attr("group") != 1):
        raise InferenceError("int8 activations need 8-bit weights with one group per row, and conv group 1")
    x, kernel, group = ctx.type(0), list(ctx.attr("kernel_shape")), ctx.attr("group")
    if x.dtype != "float32":
        raise InferenceError(f"x must be float32, got {x.dtype}")
    if not kernel or group < 1 or m % group:
        raise InferenceError(f"kernel_shape {kernel} and group {group} do not fit {m} output channels")
    per = k
    for d in kernel:
        if per % d:
            raise InferenceError(f"cols {k} is not C/group x kernel {kernel}")
        per //= d
    if x.shape is None:
        return [TensorType("float32", None)]
    if len(x.shape) != 2 + len(kernel):
        raise InferenceError(f"x {x} does not have {2 + len(kernel)} dims for kernel {kernel}")
    if isinstance(x.shape[1], int) and x.shape[1] != per * group:
        raise InferenceError(f"x has {x.shape[1]} channels, the weight takes {per * group}")
    return [TensorType("float32", (x.shape[0], m, *window_out(list(x.shape[2:]), kernel, ctx.attrs)))]


@register("gather_wq", "quant",
          "rows of a row-quantized table [V, D], dequantized: y = table[indices] -> [*indices.shape, D]. "
          "Inputs: q, scale, zero point ('' for 8-bit), indices.", inputs=(4, 4), attrs=dict(_Q_ATTRS))
def _gather_wq(ctx):
    _, d = _check_weight(ctx, 0, 1, 2)
    idx = ctx.type(3)
    if idx.dtype not in ("int32", "int64"):
        raise InferenceError(f"indices must be int32 or int64, got {idx.dtype}")
    return [TensorType("float32", None if idx.shape is None else (*idx.shape, d))]
