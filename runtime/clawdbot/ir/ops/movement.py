"""claw ops: data movement (identity, reshape, transpose, concat, slicing, padding, …).

Shape-like parameters (target shapes, slice bounds, axes, pads, repeats) are int64 *inputs*, read with
`ctx.sym`/`ctx.value` so inference stays static when they are known. The ops that shape-computing subgraphs
route small integer tensors through (identity, reshape, squeeze, unsqueeze, concat, split, slice) also
propagate those tensors' symbolic values, so `Shape -> Slice -> Concat -> Reshape` keeps a dynamic batch dim.
"""
from __future__ import annotations

from collections import Counter

from ..dtypes import INT_TYPES
from ..graph import Dim, TensorType
from . import _shapes
from ._shapes import known_ints, norm_axis
from .registry import Attr, InferenceError, register

# ONNX's "to the end" slice bound; any end at least this large keeps a whole (possibly symbolic) axis.
_BIG = 2**31 - 1


# -- helpers ---------------------------------------------------------------------------------------------------
def _pass_sym(ctx, src: int = 0) -> None:
    """Forward the symbolic value of an integer input whose entries the op does not change (only its shape)."""
    s = ctx.sym(src)
    if s is not None and ctx.dtype(src) in INT_TYPES:
        ctx.set_sym(0, s)


def _unknown_like(dtype: str, rank: int | None) -> TensorType:
    return TensorType(dtype, None if rank is None else (None,) * rank)


def _vector_len(ctx, i: int) -> int | None:
    """Static length of 1-D input i (a shape/axes vector), or None."""
    shape = ctx.shape(i) if ctx.has_input(i) else None
    if shape is None or len(shape) != 1 or not isinstance(shape[0], int):
        return None
    return shape[0]


def _norm_axes(axes, rank: int, what: str = "axis") -> list[int]:
    out = [norm_axis(a, rank, what) for a in axes]
    if len(set(out)) != len(out):
        raise InferenceError(f"repeated {what} in {list(axes)}")
    return out


def _same_dtypes(ctx, indices) -> str:
    dts = {ctx.dtype(i) for i in indices}
    if len(dts) != 1:
        raise InferenceError(f"operand dtypes differ: {sorted(dts)}")
    return dts.pop()


# -- identity / reshape / flatten ------------------------------------------------------------------------------
@register("identity", "movement", "y = x. Importers use it to alias a value; passes remove it.")
def _identity(ctx):
    _pass_sym(ctx)
    return [ctx.type(0)]


def _resolve_minus_one(in_dims, others) -> Dim:
    """The dim a reshape's -1 stands for: numel(input) / prod(other target dims), symbolically when possible.

    Symbolic dims that appear on both sides cancel (e.g. [batch, 128, 384] -> [batch, -1, 32] gives 1536);
    one symbolic dim left on the input side with matching int products becomes the result.
    """
    if any(d is None for d in (*in_dims, *others)):
        return None
    left = Counter(d for d in in_dims if isinstance(d, str))
    right = Counter(d for d in others if isinstance(d, str))
    common = left & right
    left, right = left - common, right - common
    p_in = _shapes.prod([d for d in in_dims if isinstance(d, int)])
    p_out = _shapes.prod([d for d in others if isinstance(d, int)])
    if right:
        return None
    if not left:
        if p_out == 0 or p_in % p_out:
            raise InferenceError(f"cannot reshape {list(in_dims)} into {list(others)} plus one inferred dim")
        return p_in // p_out
    if sum(left.values()) == 1 and p_in == p_out:
        return next(iter(left))
    return None


@register("reshape", "movement",
          "y = x viewed with the shape in input 1 (int64). -1 marks the one dim inferred from the element count; "
          "0 copies the input's dim at that index unless `allowzero`, which makes 0 a literal zero.",
          inputs=(2, 2), attrs={"allowzero": Attr(bool, False, "0 in the shape is a literal 0, not 'copy'")})
def _reshape(ctx):
    x = ctx.type(0)
    target = ctx.sym(1)
    if target is None:
        return [_unknown_like(x.dtype, _vector_len(ctx, 1))]
    dims: list[Dim] = []
    for i, d in enumerate(target):
        if d == 0 and not ctx.attr("allowzero"):
            if x.shape is not None and i >= len(x.shape):
                raise InferenceError(f"shape entry {i} is 0 (copy) but the input has rank {len(x.shape)}")
            d = None if x.shape is None else x.shape[i]
        dims.append(d)
    if dims.count(-1) > 1:
        raise InferenceError(f"shape {target} has more than one -1")
    if -1 in dims:
        k = dims.index(-1)
        others = dims[:k] + dims[k + 1:]
        dims[k] = None if x.shape is None else _resolve_minus_one(x.shape, others)
    elif x.is_static and all(isinstance(d, int) for d in dims) and _shapes.prod(dims) != x.numel():
        raise InferenceError(f"cannot reshape {list(x.shape)} ({x.numel()} elements) into {dims}")
    if len(dims) <= 1:
        _pass_sym(ctx)
    return [TensorType(x.dtype, tuple(dims))]


@register("flatten", "movement",
          "y = x as 2-D [prod(dims[:axis]), prod(dims[axis:])]. Importers prefer `reshape`; this form remains for "
          "inputs whose rank or dims make a reshape target inexpressible.",
          attrs={"axis": Attr(int, 1, "first dim of the second output dim; negative counts from the end")})
def _flatten(ctx):
    x = ctx.type(0)
    if x.shape is None:
        return [_unknown_like(x.dtype, 2)]
    r = len(x.shape)
    axis = ctx.attr("axis")
    if not -r <= axis <= r:
        raise InferenceError(f"axis {axis} out of range for rank {r}")
    axis = axis + r if axis < 0 else axis
    return [TensorType(x.dtype, (_shapes.prod(x.shape[:axis]), _shapes.prod(x.shape[axis:])))]


# -- transpose / concat / split --------------------------------------------------------------------------------
@register("transpose", "movement", "y = x with its dims permuted by `perm` (empty: reversed).",
          attrs={"perm": Attr(list, [], "output dim i is input dim perm[i]; [] reverses the dims")})
def _transpose(ctx):
    x = ctx.type(0)
    perm = ctx.attr("perm")
    if x.shape is None:
        return [_unknown_like(x.dtype, len(perm) if perm else None)]
    r = len(x.shape)
    perm = _norm_axes(perm, r, "perm entry") if perm else list(range(r - 1, -1, -1))
    if len(perm) != r:
        raise InferenceError(f"perm {ctx.attr('perm')} is not a permutation of rank {r}")
    return [TensorType(x.dtype, tuple(x.shape[p] for p in perm))]


def _merge_dims(dims) -> Dim:
    """One dim that several inputs must agree on: a static one wins over symbolic/unknown ones."""
    ints = {d for d in dims if isinstance(d, int)}
    if len(ints) > 1:
        raise InferenceError(f"dims {list(dims)} must be equal")
    if ints:
        return ints.pop()
    names = {d for d in dims if d is not None}
    return names.pop() if len(names) == 1 else None


@register("concat", "movement", "y = the inputs joined along `axis` (all other dims equal).", inputs=(1, -1),
          attrs={"axis": Attr(int, 0, "negative counts from the end")})
def _concat(ctx):
    dtype = _same_dtypes(ctx, range(len(ctx.in_types)))
    shapes = [ctx.shape(i) for i in range(len(ctx.in_types))]
    known = [s for s in shapes if s is not None]
    if not known:
        return [TensorType(dtype, None)]
    r = len(known[0])
    if any(len(s) != r for s in known):
        raise InferenceError(f"inputs have different ranks: {[list(s) for s in known]}")
    if r == 0:
        raise InferenceError("cannot concatenate 0-D tensors")
    axis = norm_axis(ctx.attr("axis"), r)
    out: list[Dim] = []
    for k in range(r):
        if k == axis:
            total: Dim = 0
            for s in shapes:
                total = None if s is None else _shapes.add(total, s[k])
            out.append(total)
        else:
            out.append(_merge_dims([s[k] for s in known]))
    syms = [ctx.sym(i) for i in range(len(ctx.in_types))]
    if r == 1 and dtype in INT_TYPES and all(s is not None for s in syms):
        ctx.set_sym(0, [d for s in syms for d in s])
    return [TensorType(dtype, tuple(out))]


def split_sizes(dim: int, n: int) -> list[int]:
    """Sizes of `n` near-equal parts of `dim`: ceil(dim / n) each, the last one smaller (ONNX Split-18)."""
    part = -(-dim // n)
    sizes = [min(part, max(dim - k * part, 0)) for k in range(n)]
    return sizes


@register("split", "movement",
          "ys = x cut along `axis` into parts of the sizes in input 1 (int64), or, without it, into as many "
          "near-equal parts as the node has outputs (ceil-sized, the last one smaller).",
          inputs=(1, 2), outputs=(1, -1), attrs={"axis": Attr(int, 0, "negative counts from the end")})
def _split(ctx):
    x = ctx.type(0)
    n = len(ctx.node.outputs)
    if x.shape is None:
        return [TensorType(x.dtype, None)] * n
    axis = norm_axis(ctx.attr("axis"), len(x.shape))
    dim = x.shape[axis]
    sizes: list[Dim] | None = known_ints(ctx, 1)
    if sizes is not None:
        if len(sizes) != n:
            raise InferenceError(f"{len(sizes)} split sizes for {n} outputs")
        if isinstance(dim, int) and sum(sizes) != dim:
            raise InferenceError(f"split sizes {sizes} do not add up to dim {dim}")
    elif ctx.has_input(1):
        sizes = [None] * n
    elif isinstance(dim, int):
        sizes = split_sizes(dim, n)
    else:
        sizes = [dim if n == 1 else None] * n
    s = ctx.sym(0)
    if s is not None and len(x.shape) == 1 and x.dtype in INT_TYPES and all(isinstance(k, int) for k in sizes):
        start = 0
        for k, size in enumerate(sizes):
            ctx.set_sym(k, s[start:start + size])
            start += size
    return [TensorType(x.dtype, x.shape[:axis] + (d,) + x.shape[axis + 1:]) for d in sizes]


# -- slicing and rank changes ----------------------------------------------------------------------------------
def _slice_dim(dim: Dim, start: int, end: int, step: int) -> Dim:
    if isinstance(dim, int):
        return _shapes.clamp_slice(dim, start, end, step)
    # A whole symbolic axis, forwards or backwards, keeps its name.
    if step == 1 and start == 0 and end >= _BIG:
        return dim
    if step == -1 and start == -1 and end <= -_BIG:
        return dim
    return None


@register("slice", "movement",
          "y = x[starts:ends:steps] along `axes` (inputs 1..4, int64; axes default 0..n-1, steps default 1). "
          "Bounds are clamped like Python slicing; negative steps walk backwards.", inputs=(3, 5))
def _slice(ctx):
    x = ctx.type(0)
    if x.shape is None:
        return [TensorType(x.dtype, None)]
    r = len(x.shape)
    starts, ends = known_ints(ctx, 1), known_ints(ctx, 2)
    n = len(starts) if starts is not None else _vector_len(ctx, 1)
    axes = known_ints(ctx, 3) if ctx.has_input(3) else (list(range(n)) if n is not None else None)
    if axes is None:
        return [_unknown_like(x.dtype, r)]
    axes = _norm_axes(axes, r)
    steps = known_ints(ctx, 4) if ctx.has_input(4) else [1] * len(axes)
    out = list(x.shape)
    if starts is None or ends is None or steps is None:
        for a in axes:
            out[a] = None
        return [TensorType(x.dtype, tuple(out))]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise InferenceError(f"starts/ends/axes/steps lengths differ: {starts}, {ends}, {axes}, {steps}")
    if 0 in steps:
        raise InferenceError("slice step 0")
    for a, s, e, st in zip(axes, starts, ends, steps):
        out[a] = _slice_dim(x.shape[a], s, e, st)
    sym = ctx.sym(0)
    if sym is not None and r == 1 and x.dtype in INT_TYPES:
        ctx.set_sym(0, sym[slice(starts[0], ends[0], steps[0])])
    return [TensorType(x.dtype, tuple(out))]


@register("squeeze", "movement",
          "y = x without the size-1 dims listed in input 1 (int64), or without every size-1 dim when it is "
          "omitted.", inputs=(1, 2))
def _squeeze(ctx):
    x = ctx.type(0)
    _pass_sym(ctx)
    if x.shape is None:
        return [TensorType(x.dtype, None)]
    axes = known_ints(ctx, 1)
    if axes is None and ctx.has_input(1):
        n = _vector_len(ctx, 1)
        return [_unknown_like(x.dtype, None if n is None else len(x.shape) - n)]
    if axes is None:
        if not all(isinstance(d, int) for d in x.shape):
            return [TensorType(x.dtype, None)]  # which symbolic dims are 1 is known only at run time
        return [TensorType(x.dtype, tuple(d for d in x.shape if d != 1))]
    axes = _norm_axes(axes, len(x.shape))
    for a in axes:
        if isinstance(x.shape[a], int) and x.shape[a] != 1:
            raise InferenceError(f"cannot squeeze axis {a} of size {x.shape[a]}")
    return [TensorType(x.dtype, tuple(d for k, d in enumerate(x.shape) if k not in axes))]


@register("unsqueeze", "movement", "y = x with size-1 dims inserted at `axes` (input 1, int64) of the output.",
          inputs=(2, 2))
def _unsqueeze(ctx):
    x = ctx.type(0)
    _pass_sym(ctx)
    axes = known_ints(ctx, 1)
    if x.shape is None or axes is None:
        n = _vector_len(ctx, 1)
        return [_unknown_like(x.dtype, None if x.shape is None or n is None else len(x.shape) + n)]
    r = len(x.shape) + len(axes)
    axes = _norm_axes(axes, r)
    rest = iter(x.shape)
    return [TensorType(x.dtype, tuple(1 if k in axes else next(rest) for k in range(r)))]


# -- expand / tile / pad ---------------------------------------------------------------------------------------
@register("expand", "movement", "y = x broadcast with the shape in input 1 (int64; numpy rules, both ways).",
          inputs=(2, 2))
def _expand(ctx):
    x = ctx.type(0)
    target = ctx.sym(1)
    if target is None:
        n = _vector_len(ctx, 1)
        rank = None if n is None or x.shape is None else max(n, len(x.shape))
        return [_unknown_like(x.dtype, rank)]
    return [TensorType(x.dtype, _shapes.broadcast(x.shape, target))]


@register("tile", "movement", "y = x repeated repeats[i] times along each dim i (input 1, int64).",
          inputs=(2, 2))
def _tile(ctx):
    x = ctx.type(0)
    reps = known_ints(ctx, 1)
    if x.shape is None or reps is None:
        return [_unknown_like(x.dtype, None if x.shape is None else len(x.shape))]
    if len(reps) != len(x.shape):
        raise InferenceError(f"{len(reps)} repeats for rank {len(x.shape)}")
    return [TensorType(x.dtype, tuple(_shapes.mul(d, k) for d, k in zip(x.shape, reps)))]


PAD_MODES = ("constant", "reflect", "edge", "wrap")


@register("pad", "movement",
          "y = x padded by pads (input 1, int64: all begins then all ends, for `axes` (input 3, default all); "
          "negative pads crop). `mode` constant fills with input 2 (one element of x's dtype, default 0).",
          inputs=(2, 4), attrs={"mode": Attr(str, "constant", "constant, reflect, edge or wrap")})
def _pad(ctx):
    x = ctx.type(0)
    if ctx.attr("mode") not in PAD_MODES:
        raise InferenceError(f"pad mode {ctx.attr('mode')!r}; supported: {', '.join(PAD_MODES)}")
    if ctx.has_input(2) and ctx.dtype(2) != x.dtype:
        raise InferenceError(f"pad value is {ctx.dtype(2)}, input is {x.dtype}")
    if x.shape is None:
        return [TensorType(x.dtype, None)]
    r = len(x.shape)
    pads = known_ints(ctx, 1)
    axes = known_ints(ctx, 3) if ctx.has_input(3) else list(range(r))
    if axes is None:
        return [_unknown_like(x.dtype, r)]
    axes = _norm_axes(axes, r)
    out = list(x.shape)
    if pads is None:
        for a in axes:
            out[a] = None
        return [TensorType(x.dtype, tuple(out))]
    if len(pads) != 2 * len(axes):
        raise InferenceError(f"{len(pads)} pads for {len(axes)} axes (need begins and ends)")
    for k, a in enumerate(axes):
        out[a] = _shapes.add(_shapes.add(out[a], pads[k]), pads[k + len(axes)])
    return [TensorType(x.dtype, tuple(out))]


# -- space/depth rearrangements --------------------------------------------------------------------------------
_MODE = Attr(str, "DCR", "DCR: depth is (block_y, block_x, channel); CRD: (channel, block_y, block_x)")


def _block_mode(ctx) -> int:
    b = ctx.attr("blocksize")
    if b < 1:
        raise InferenceError(f"blocksize {b} must be >= 1")
    if ctx.attr("mode") not in ("DCR", "CRD"):
        raise InferenceError(f"mode {ctx.attr('mode')!r}; supported: DCR, CRD")
    if ctx.shape(0) is not None and len(ctx.shape(0)) != 4:
        raise InferenceError(f"input must be 4-D NCHW, got rank {len(ctx.shape(0))}")
    return b


def _div(d: Dim, k: int, what: str) -> Dim:
    if not isinstance(d, int):
        return d if k == 1 else None
    if d % k:
        raise InferenceError(f"{what} {d} is not divisible by {k}")
    return d // k


@register("depth_to_space", "movement",
          "NCHW [n, c, h, w] -> [n, c/b², h·b, w·b]: channel blocks become b×b spatial tiles.",
          attrs={"blocksize": Attr(int, doc="b"), "mode": _MODE})
def _depth_to_space(ctx):
    b = _block_mode(ctx)
    x = ctx.type(0)
    if x.shape is None:
        return [_unknown_like(x.dtype, 4)]
    n, c, h, w = x.shape
    return [TensorType(x.dtype, (n, _div(c, b * b, "channels"), _shapes.mul(h, b), _shapes.mul(w, b)))]


@register("space_to_depth", "movement",
          "NCHW [n, c, h, w] -> [n, c·b², h/b, w/b]: b×b spatial tiles become channel blocks.",
          attrs={"blocksize": Attr(int, doc="b"), "mode": _MODE})
def _space_to_depth(ctx):
    b = _block_mode(ctx)
    x = ctx.type(0)
    if x.shape is None:
        return [_unknown_like(x.dtype, 4)]
    n, c, h, w = x.shape
    return [TensorType(x.dtype, (n, _shapes.mul(c, b * b), _div(h, b, "height"), _div(w, b, "width")))]


# -- sequence-wise and selection ops ---------------------------------------------------------------------------
@register("reverse_sequence", "movement",
          "y = x with, for each batch entry i, its first lens[i] steps along `time_axis` reversed (input 1 holds "
          "lens, one per entry of `batch_axis`).", inputs=(2, 2),
          attrs={"batch_axis": Attr(int, 1, "0 or 1"), "time_axis": Attr(int, 0, "0 or 1, not batch_axis")})
def _reverse_sequence(ctx):
    if {ctx.attr("batch_axis"), ctx.attr("time_axis")} != {0, 1}:
        raise InferenceError("batch_axis and time_axis must be 0 and 1 in some order")
    return [ctx.type(0)]


@register("center_crop_pad", "movement",
          "y = x center-cropped or zero-padded to the sizes in input 1 (int64) along `axes` (empty: all). Odd "
          "differences crop the extra element at the end and pad it at the end.", inputs=(2, 2),
          attrs={"axes": Attr(list, [], "axes input 1 refers to; [] means all")})
def _center_crop_pad(ctx):
    x = ctx.type(0)
    if x.shape is None:
        return [TensorType(x.dtype, None)]
    r = len(x.shape)
    axes = _norm_axes(ctx.attr("axes") or range(r), r)
    sizes = ctx.sym(1)
    out = list(x.shape)
    for k, a in enumerate(axes):
        out[a] = None if sizes is None else sizes[k]
    return [TensorType(x.dtype, tuple(out))]


@register("compress", "movement",
          "y = the slices of x along `axis` where the bool condition (input 1) is true; a shorter condition "
          "leaves the remaining slices out.", inputs=(2, 2), attrs={"axis": Attr(int, 0)})
def _compress(ctx):
    x = ctx.type(0)
    if ctx.dtype(1) != "bool":
        raise InferenceError(f"condition must be bool, got {ctx.dtype(1)}")
    if x.shape is None:
        return [TensorType(x.dtype, None)]
    axis = norm_axis(ctx.attr("axis"), len(x.shape))
    cond = ctx.value(1)
    out = list(x.shape)
    out[axis] = None if cond is None else int(cond.reshape(-1).sum())
    return [TensorType(x.dtype, tuple(out))]


@register("col2im", "movement",
          "Inverse of im2col: x [n, c·prod(block), L] column blocks (input 1: image shape, input 2: block shape, "
          "int64) are summed back into an image [n, c, *image_shape].", inputs=(3, 3),
          attrs={"strides": Attr(list, [], "per spatial dim; [] = all 1"),
                 "dilations": Attr(list, [], "per spatial dim; [] = all 1"),
                 "pads": Attr(list, [], "begins then ends; [] = all 0")})
def _col2im(ctx):
    x = ctx.type(0)
    image, block = known_ints(ctx, 1), known_ints(ctx, 2)
    n_sp = len(image) if image is not None else _vector_len(ctx, 1)
    if x.shape is None or n_sp is None:
        return [_unknown_like(x.dtype, None if n_sp is None else n_sp + 2)]
    if len(x.shape) != 3:
        raise InferenceError(f"input must be 3-D [n, c*prod(block), L], got rank {len(x.shape)}")
    c = None if block is None else _div(x.shape[1], _shapes.prod(block), "column dim")
    return [TensorType(x.dtype, (x.shape[0], c, *(image if image is not None else [None] * n_sp)))]
