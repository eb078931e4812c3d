"""claw ops: convolution (conv) and its transpose (conv_transpose), 1-D/2-D/3-D, grouped, dilated.

Window geometry follows ONNX: `pads` is [begin_0, begin_1, ..., end_0, end_1, ...]; empty `strides`,
`dilations`, `pads` mean all 1 / 1 / 0. `auto_pad` is "NOTSET" when `pads` are explicit; importers resolve
SAME_UPPER / SAME_LOWER / VALID to explicit pads when the spatial sizes are known, otherwise the attribute
stays and the kernel resolves it per call. The pool family shares these helpers.
"""
from __future__ import annotations

from typing import Sequence

from ..graph import Dim, TensorType
from ._shapes import sliding_out, window_pads
from .registry import Attr, InferenceError, register

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")

WINDOW_ATTRS = {
    "strides": Attr(list, [], "per spatial axis; empty: all 1"),
    "dilations": Attr(list, [], "per spatial axis; empty: all 1"),
    "pads": Attr(list, [], "[begin..., end...]; empty: all 0"),
    "auto_pad": Attr(str, "NOTSET", "NOTSET (use pads), SAME_UPPER, SAME_LOWER or VALID"),
}


def window_params(attrs: dict, n: int) -> tuple[list[int], list[int], list[int]]:
    """(strides, dilations, pads) for `n` spatial axes with the empty-list defaults filled in."""
    strides = list(attrs["strides"]) or [1] * n
    dilations = list(attrs["dilations"]) or [1] * n
    pads = list(attrs["pads"]) or [0] * (2 * n)
    if len(strides) != n or len(dilations) != n or len(pads) != 2 * n:
        raise InferenceError(f"strides {strides}, dilations {dilations} and pads {pads} do not fit "
                             f"{n} spatial axes")
    if min(strides + dilations, default=1) < 1:
        raise InferenceError(f"strides {strides} and dilations {dilations} must be >= 1")
    if attrs["auto_pad"] not in AUTO_PADS:
        raise InferenceError(f"auto_pad {attrs['auto_pad']!r} is not one of {AUTO_PADS}")
    return strides, dilations, pads


def window_out(sizes: Sequence[Dim], kernel: Sequence[int], attrs: dict, ceil_mode: bool = False
               ) -> list[Dim]:
    """Output spatial sizes of a conv/pool window sliding over `sizes`."""
    strides, dilations, pads = window_params(attrs, len(kernel))
    pads = window_pads(sizes, kernel, strides, dilations, pads, attrs["auto_pad"])
    if pads is None:
        return [None] * len(kernel)
    n = len(kernel)
    return [sliding_out(sz, k, s, pads[i], pads[n + i], d, ceil_mode)
            for i, (sz, k, s, d) in enumerate(zip(sizes, kernel, strides, dilations))]


def transpose_pads(sizes: Sequence[Dim], kernel: Sequence[int], attrs: dict) -> list[int] | None:
    """Explicit pads of conv_transpose, derived from output_shape / auto_pad when those are set.

    The full (unpadded) output of axis i is s*(in-1) + output_padding + (k-1)*d + 1; padding crops it to the
    target size (output_shape, or in*stride for auto_pad SAME_*). As the ONNX spec says, SAME_UPPER crops the
    odd pixel at the end and the other modes at the beginning; a target larger than the full output (a
    negative total) extends the end with zeros, as onnxruntime does.
    """
    n = len(kernel)
    strides, dilations, pads = window_params(attrs, n)
    out_pad = list(attrs["output_padding"]) or [0] * n
    targets = list(attrs["output_shape"])
    mode = attrs["auto_pad"]
    if not targets and mode in ("NOTSET", "VALID"):
        return pads if mode == "NOTSET" else [0] * (2 * n)
    if any(not isinstance(s, int) for s in sizes):
        return None
    begin, end = [], []
    for i in range(n):
        full = strides[i] * (sizes[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
        target = targets[i] if targets else sizes[i] * strides[i]
        total = full - target
        if total < 0:
            b = 0
        elif mode == "SAME_UPPER":
            b = total // 2
        else:
            b = total - total // 2
        begin.append(b)
        end.append(total - b)
    return begin + end


def transpose_out(sizes: Sequence[Dim], kernel: Sequence[int], attrs: dict) -> list[Dim]:
    n = len(kernel)
    if attrs["output_shape"]:
        return list(attrs["output_shape"])
    strides, dilations, _ = window_params(attrs, n)
    out_pad = list(attrs["output_padding"]) or [0] * n
    pads = transpose_pads(sizes, kernel, attrs)
    out: list[Dim] = []
    for i in range(n):
        if pads is None or not isinstance(sizes[i], int):
            out.append(None)
            continue
        full = strides[i] * (sizes[i] - 1) + out_pad[i] + (kernel[i] - 1) * dilations[i] + 1
        out.append(full - pads[i] - pads[n + i])
    return out


def _check_channels(have: Dim, want: Dim, what: str) -> None:
    if isinstance(have, int) and isinstance(want, int) and have != want:
        raise InferenceError(f"{what}: {have} != {want}")


def _conv_common(ctx):
    x, w = ctx.type(0), ctx.type(1)
    if x.dtype != w.dtype or (ctx.has_input(2) and ctx.dtype(2) != x.dtype):
        raise InferenceError("conv operands must share one dtype")
    if w.shape is None:
        raise InferenceError("conv weight rank must be known")
    if len(w.shape) < 3 or not all(isinstance(d, int) for d in w.shape[2:]):
        raise InferenceError(f"conv weight shape {w.shape} must be [M, C/group, k...] with known k")
    n = len(w.shape) - 2
    if x.shape is not None and len(x.shape) != n + 2:
        raise InferenceError(f"input rank {len(x.shape)} does not match a {n}-D kernel")
    group = ctx.attr("group")
    if group < 1:
        raise InferenceError(f"group {group} must be >= 1")
    spatial = [None] * n if x.shape is None else list(x.shape[2:])
    batch = None if x.shape is None else x.shape[0]
    channels = None if x.shape is None else x.shape[1]
    return x, w, n, group, spatial, batch, channels


@register("conv", "conv", "N-D convolution (cross-correlation) of x [N, C, *in] with w [M, C/group, *k], plus "
          "bias [M] when given.", inputs=(2, 3),
          attrs={**WINDOW_ATTRS, "group": Attr(int, 1)})
def _conv(ctx):
    x, w, n, group, spatial, batch, channels = _conv_common(ctx)
    m, cg = w.shape[0], w.shape[1]
    _check_channels(channels, cg * group if isinstance(cg, int) else None, "input channels vs weight")
    if isinstance(m, int) and m % group:
        raise InferenceError(f"{m} output channels do not split into {group} groups")
    out = window_out(spatial, list(w.shape[2:]), ctx.attrs)
    return [TensorType(x.dtype, (batch, m, *out))]


@register("conv_transpose", "conv", "N-D transposed convolution of x [N, C, *in] with w [C, M/group, *k] (plus "
          "bias [M]); output_shape, when set, fixes the output size and the pads are derived from it.",
          inputs=(2, 3),
          attrs={**WINDOW_ATTRS, "group": Attr(int, 1),
                 "output_padding": Attr(list, [], "extra size at the end of each axis; empty: 0"),
                 "output_shape": Attr(list, [], "spatial output sizes; empty: derived from pads")})
def _conv_transpose(ctx):
    x, w, n, group, spatial, batch, channels = _conv_common(ctx)
    _check_channels(channels, w.shape[0], "input channels vs weight")
    for name in ("output_padding", "output_shape"):
        if ctx.attr(name) and len(ctx.attr(name)) != n:
            raise InferenceError(f"{name} {ctx.attr(name)} does not fit {n} spatial axes")
    m = w.shape[1] * group if isinstance(w.shape[1], int) else None
    out = transpose_out(spatial, list(w.shape[2:]), ctx.attrs)
    return [TensorType(x.dtype, (batch, m, *out))]
