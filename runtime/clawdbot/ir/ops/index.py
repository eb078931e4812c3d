"""claw ops: indexing — gathers, scatters (incl. the KV-cache tensor_scatter), one_hot, non_zero, trilu, unique,
non_max_suppression.

Index inputs are int32 or int64 and may be negative (counting from the end of their axis). `gather` on a
1-D integer tensor with known indices also propagates symbolic values: it is how shape-computing subgraphs
pick single dims (Shape -> Gather -> Unsqueeze -> Concat).
"""
from __future__ import annotations

from ..dtypes import INT_TYPES, NUMERIC_TYPES
from ..graph import Dim, TensorType
from ._shapes import known_ints, norm_axis
from .registry import Attr, InferenceError, register

INDEX_TYPES = frozenset({"int32", "int64"})
REDUCTIONS = ("none", "add", "mul", "max", "min")


def _index_dtype(ctx, i: int) -> None:
    if ctx.dtype(i) not in INDEX_TYPES:
        raise InferenceError(f"indices must be int32 or int64, got {ctx.dtype(i)}")


def _reduction(ctx) -> None:
    if ctx.attr("reduction") not in REDUCTIONS:
        raise InferenceError(f"reduction {ctx.attr('reduction')!r}; supported: {', '.join(REDUCTIONS)}")


def _gather_sym(ctx, axis: int) -> None:
    """data is a 1-D int vector with a symbolic value and indices are known: pick the entries."""
    data, idx = ctx.sym(0), known_ints(ctx, 1)
    if data is None or idx is None or ctx.dtype(0) not in INT_TYPES or axis != 0:
        return
    if all(-len(data) <= i < len(data) for i in idx):
        ctx.set_sym(0, [data[i] for i in idx])


@register("gather", "index", "y = x taken at `indices` (input 1) along `axis`; y's rank is r + q - 1.",
          inputs=(2, 2), attrs={"axis": Attr(int, 0)})
def _gather(ctx):
    _index_dtype(ctx, 1)
    x, idx = ctx.type(0), ctx.type(1)
    if x.shape is None or idx.shape is None:
        return [TensorType(x.dtype, None)]
    axis = norm_axis(ctx.attr("axis"), len(x.shape))
    if len(x.shape) == 1:
        _gather_sym(ctx, axis)
    return [TensorType(x.dtype, x.shape[:axis] + idx.shape + x.shape[axis + 1:])]


@register("gather_elements", "index",
          "y[i][j][k] = x[idx[i][j][k]][j][k] along `axis` (here 0); y has the indices' shape.", inputs=(2, 2),
          attrs={"axis": Attr(int, 0)})
def _gather_elements(ctx):
    _index_dtype(ctx, 1)
    x, idx = ctx.type(0), ctx.type(1)
    if x.shape is not None and idx.shape is not None:
        if len(x.shape) != len(idx.shape):
            raise InferenceError(f"data rank {len(x.shape)} != indices rank {len(idx.shape)}")
        norm_axis(ctx.attr("axis"), len(x.shape))
    return [TensorType(x.dtype, idx.shape)]


@register("gather_nd", "index",
          "y = x indexed by the last dim of `indices` (tuples of k leading coordinates after the first "
          "`batch_dims` dims, which x and indices share).", inputs=(2, 2), attrs={"batch_dims": Attr(int, 0)})
def _gather_nd(ctx):
    _index_dtype(ctx, 1)
    x, idx = ctx.type(0), ctx.type(1)
    bd = ctx.attr("batch_dims")
    if x.shape is None or idx.shape is None or not isinstance(idx.shape[-1], int):
        return [TensorType(x.dtype, None)]
    k = idx.shape[-1]
    if bd + k > len(x.shape):
        raise InferenceError(f"index tuples of {k} after {bd} batch dims exceed data rank {len(x.shape)}")
    return [TensorType(x.dtype, idx.shape[:-1] + x.shape[bd + k:])]


@register("scatter_elements", "index",
          "y = x with updates written (or combined by `reduction`) at `indices` along `axis`; indices and "
          "updates share a shape.", inputs=(3, 3),
          attrs={"axis": Attr(int, 0), "reduction": Attr(str, "none", "none, add, mul, max or min")})
def _scatter_elements(ctx):
    _index_dtype(ctx, 1)
    _reduction(ctx)
    x = ctx.type(0)
    if ctx.dtype(2) != x.dtype:
        raise InferenceError(f"updates are {ctx.dtype(2)}, data is {x.dtype}")
    if x.shape is not None:
        norm_axis(ctx.attr("axis"), len(x.shape))
    return [x]


@register("scatter_nd", "index",
          "y = x with slices updates[i…] written (or combined by `reduction`) at the coordinates indices[i…, :].",
          inputs=(3, 3), attrs={"reduction": Attr(str, "none", "none, add, mul, max or min")})
def _scatter_nd(ctx):
    _index_dtype(ctx, 1)
    _reduction(ctx)
    x = ctx.type(0)
    if ctx.dtype(2) != x.dtype:
        raise InferenceError(f"updates are {ctx.dtype(2)}, data is {x.dtype}")
    return [x]


@register("one_hot", "index",
          "y = values[1] where the index (input 0, any numeric dtype; negative counts from depth) equals the "
          "position along the new `axis` of size depth (input 1, a scalar), values[0] elsewhere.",
          inputs=(3, 3), attrs={"axis": Attr(int, -1, "where the depth dim goes in the output")})
def _one_hot(ctx):
    idx, values = ctx.type(0), ctx.type(2)
    if idx.dtype not in NUMERIC_TYPES:
        raise InferenceError(f"indices must be numeric, got {idx.dtype}")
    depth_v = ctx.value(1)
    depth: Dim = None if depth_v is None else int(depth_v.reshape(-1)[0])
    if idx.shape is None:
        return [TensorType(values.dtype, None)]
    r = len(idx.shape) + 1
    axis = norm_axis(ctx.attr("axis"), r)
    return [TensorType(values.dtype, idx.shape[:axis] + (depth,) + idx.shape[axis:])]


@register("non_zero", "index", "y = the coordinates of x's non-zero entries, int64 [rank, count].")
def _non_zero(ctx):
    shape = ctx.shape(0)
    return [TensorType("int64", (None if shape is None else len(shape), None))]


@register("trilu", "index",
          "y = the upper (or lower) triangle of the last two dims of x, from diagonal k (input 1, int64 scalar, "
          "default 0) on; the rest is zero.", inputs=(1, 2), attrs={"upper": Attr(bool, True)})
def _trilu(ctx):
    x = ctx.type(0)
    if x.shape is not None and len(x.shape) < 2:
        raise InferenceError(f"input must have rank >= 2, got {len(x.shape)}")
    return [x]


@register("unique", "index",
          "Unique slices of x along `axis`: y, the index of each one's first occurrence, the inverse indices "
          "(for every input slice, its position in y) and the counts; sorted ascending or in order of first "
          "occurrence.", outputs=(1, 4),
          attrs={"axis": Attr(int, 0), "sorted": Attr(bool, True)})
def _unique(ctx):
    x = ctx.type(0)
    if x.shape is None:
        return [TensorType(x.dtype, None)] + [TensorType("int64", (None,))] * 3
    axis = norm_axis(ctx.attr("axis"), len(x.shape))
    y = TensorType(x.dtype, x.shape[:axis] + (None,) + x.shape[axis + 1:])
    return [y, TensorType("int64", (None,)), TensorType("int64", (x.shape[axis],)), TensorType("int64", (None,))]


@register("non_max_suppression", "index",
          "Greedy non-maximum suppression per batch and class: boxes [b, n, 4], scores [b, c, n]; optional "
          "scalars max_output_boxes_per_class (int64), iou_threshold and score_threshold (float32). y = "
          "[selected, 3] int64 rows (batch, class, box).", inputs=(2, 5),
          attrs={"center_point_box": Attr(bool, False, "boxes are (cx, cy, w, h) instead of corner pairs")})
def _non_max_suppression(ctx):
    if ctx.dtype(0) != "float32" or ctx.dtype(1) != "float32":
        raise InferenceError("boxes and scores must be float32")
    return [TensorType("int64", (None, 3))]


@register("tensor_scatter", "index",
          "KV-cache update: y = past with update written along `axis` (the sequence axis) starting, for each "
          "batch entry b (dim 0), at write_indices[b] (input 2, default 0); `mode` circular wraps positions "
          "modulo the axis length.", inputs=(2, 3),
          attrs={"axis": Attr(int, -2, "the sequence axis; not the batch axis 0"),
                 "mode": Attr(str, "linear", "linear or circular")})
def _tensor_scatter(ctx):
    past, update = ctx.type(0), ctx.type(1)
    if update.dtype != past.dtype:
        raise InferenceError(f"update is {update.dtype}, cache is {past.dtype}")
    if ctx.attr("mode") not in ("linear", "circular"):
        raise InferenceError(f"mode {ctx.attr('mode')!r}; supported: linear, circular")
    if ctx.has_input(2):
        _index_dtype(ctx, 2)
    if past.shape is not None and norm_axis(ctx.attr("axis"), len(past.shape)) == 0:
        raise InferenceError("axis must not be the batch axis 0")
    return [past]
