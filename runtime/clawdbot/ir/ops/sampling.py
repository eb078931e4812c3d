"""claw ops: sampling at computed positions, for vision post-processing — grid_sample and the affine_grid that
feeds it, roi_align, max_unpool and deformable convolution.

Tensors are [N, C, *spatial] like the conv family's. Normalised coordinates (grid_sample, affine_grid) run
from -1 to 1 across an axis and list the axes innermost first (x, y[, z]), as ONNX and PyTorch do; with
`align_corners` -1 and 1 are the centres of the corner pixels, without it their outer edges.
"""
from __future__ import annotations

from ..dtypes import FLOAT_TYPES, NUMERIC_TYPES
from ..graph import Dim, TensorType
from .conv import window_out
from .registry import Attr, InferenceError, register

GRID_MODES = ("linear", "nearest", "cubic")
PADDING_MODES = ("zeros", "border", "reflection")
ROI_COORDINATE_MODES = ("half_pixel", "output_half_pixel")


def _agree(a: Dim, b: Dim, what: str) -> Dim:
    if isinstance(a, int) and isinstance(b, int) and a != b:
        raise InferenceError(f"{what}: {a} != {b}")
    return a if a is not None else b


def _float(ctx, i: int, what: str) -> str:
    if ctx.dtype(i) not in FLOAT_TYPES:
        raise InferenceError(f"{what} must be a float tensor, got {ctx.dtype(i)}")
    return ctx.dtype(i)


# -- grid_sample / affine_grid ----------------------------------------------------------------------------------
@register("grid_sample", "sampling", "y[n, c, *o] = x[n, c] sampled at grid[n, *o] (normalised coordinates, "
          "x first). x is [N, C, *in] with 1 to 3 spatial axes, grid [N, *out, r]; y is [N, C, *out]. mode: "
          "linear, nearest (half to even) or cubic (Keys, a = -0.75); padding_mode: what taps outside the input "
          "read — zeros, the border pixel, or the input reflected at its edges. grid is float; x is float, or "
          "any numeric type for nearest.", inputs=(2, 2),
          attrs={"mode": Attr(str, "linear", "linear, nearest or cubic"),
                 "padding_mode": Attr(str, "zeros", "zeros, border or reflection"),
                 "align_corners": Attr(bool, False, "-1 and 1 are corner pixel centres (else their edges)")})
def _grid_sample(ctx):
    mode, padding = ctx.attr("mode"), ctx.attr("padding_mode")
    if mode not in GRID_MODES or padding not in PADDING_MODES:
        raise InferenceError(f"mode {mode!r} / padding_mode {padding!r}; supported {GRID_MODES} / {PADDING_MODES}")
    x, grid = ctx.type(0), ctx.type(1)
    _float(ctx, 1, "grid")
    if x.dtype not in FLOAT_TYPES and (mode != "nearest" or x.dtype not in NUMERIC_TYPES):
        raise InferenceError(f"{mode} sampling needs a float x, got {x.dtype}")
    if x.shape is not None and not 3 <= len(x.shape) <= 5:
        raise InferenceError(f"x must be [N, C, *spatial] with 1 to 3 spatial axes, got rank {len(x.shape)}")
    if x.shape is None or grid.shape is None:
        return [TensorType(x.dtype, None)]
    r = len(x.shape) - 2
    if len(grid.shape) != r + 2:
        raise InferenceError(f"grid must have rank {r + 2} for {r} spatial axes, got {len(grid.shape)}")
    _agree(grid.shape[-1], r, "grid's last axis vs spatial rank")
    n = _agree(x.shape[0], grid.shape[0], "batch of x vs grid")
    return [TensorType(x.dtype, (n, x.shape[1], *grid.shape[1:-1]))]


@register("affine_grid", "sampling", "The grid [N, *spatial, r] of normalised coordinates that grid_sample "
          "needs to apply the affine maps theta [N, r, r + 1] (r = 2 or 3) to an output of size (input 1: "
          "int64 [N, C, *spatial]).", inputs=(2, 2), attrs={"align_corners": Attr(bool, False)})
def _affine_grid(ctx):
    dtype = _float(ctx, 0, "theta")
    if ctx.dtype(1) != "int64":
        raise InferenceError(f"size must be int64, got {ctx.dtype(1)}")
    theta = ctx.shape(0)
    if theta is not None and (len(theta) != 3 or theta[1] not in (2, 3, None)):
        raise InferenceError(f"theta must be [N, 2, 3] or [N, 3, 4], got {list(theta)}")
    size = ctx.sym(1)
    if size is None:
        size_shape = ctx.shape(1)
        rank = size_shape[0] if size_shape is not None and isinstance(size_shape[0], int) else None
        # [N, C, *spatial] sizes give a grid [N, *spatial, r]: as many axes as size has entries.
        return [TensorType(dtype, None if rank is None else (None,) * rank)]
    r = len(size) - 2
    if r not in (2, 3):
        raise InferenceError(f"size must be [N, C, H, W] or [N, C, D, H, W], got {len(size)} entries")
    if theta is not None:
        _agree(theta[1], r, "theta rows vs spatial rank")
        _agree(theta[2], r + 1, "theta columns vs spatial rank + 1")
    n = _agree(size[0], None if theta is None else theta[0], "batch of size vs theta")
    return [TensorType(dtype, (n, *size[2:], r))]


# -- roi_align --------------------------------------------------------------------------------------------------
@register("roi_align", "sampling", "Pools each region of interest (rois [R, 4]: x1, y1, x2, y2 in input "
          "coordinates times spatial_scale; batch_indices [R] int64 names its image) of x [N, C, H, W] into "
          "[output_height, output_width] bins, averaging (or taking the max of the weighted corners of) "
          "bilinear samples on a sampling_ratio² grid per bin (0: ceil(bin size) per axis). half_pixel shifts "
          "the ROI by -0.5 px; output_half_pixel keeps it and stretches ROIs below 1 px to 1 px. y [R, C, oh, "
          "ow].", inputs=(3, 3),
          attrs={"mode": Attr(str, "avg", "avg or max"), "output_height": Attr(int, 1),
                 "output_width": Attr(int, 1), "sampling_ratio": Attr(int, 0),
                 "spatial_scale": Attr(float, 1.0),
                 "coordinate_transformation_mode": Attr(str, "half_pixel", "half_pixel or output_half_pixel")})
def _roi_align(ctx):
    dtype = _float(ctx, 0, "x")
    if ctx.dtype(1) != dtype:
        raise InferenceError(f"rois dtype {ctx.dtype(1)} differs from x's {dtype}")
    if ctx.dtype(2) != "int64":
        raise InferenceError(f"batch_indices must be int64, got {ctx.dtype(2)}")
    if ctx.attr("mode") not in ("avg", "max"):
        raise InferenceError(f"mode {ctx.attr('mode')!r} is not avg or max")
    if ctx.attr("coordinate_transformation_mode") not in ROI_COORDINATE_MODES:
        raise InferenceError(f"coordinate_transformation_mode {ctx.attr('coordinate_transformation_mode')!r}")
    oh, ow = ctx.attr("output_height"), ctx.attr("output_width")
    if oh < 1 or ow < 1 or ctx.attr("sampling_ratio") < 0:
        raise InferenceError(f"output size {oh}x{ow} and sampling_ratio {ctx.attr('sampling_ratio')} are invalid")
    x, rois, idx = ctx.shape(0), ctx.shape(1), ctx.shape(2)
    if x is not None and len(x) != 4:
        raise InferenceError(f"x must be [N, C, H, W], got rank {len(x)}")
    if rois is not None and (len(rois) != 2 or rois[1] not in (4, None)):
        raise InferenceError(f"rois must be [R, 4], got {list(rois)}")
    if idx is not None and len(idx) != 1:
        raise InferenceError(f"batch_indices must be 1-D, got rank {len(idx)}")
    r = _agree(None if rois is None else rois[0], None if idx is None else idx[0], "rois vs batch_indices")
    return [TensorType(dtype, (r, None if x is None else x[1], oh, ow))]


# -- max_unpool -------------------------------------------------------------------------------------------------
def unpool_shape(in_shape, kernel, strides, pads) -> tuple[Dim, ...]:
    """The output shape MaxUnpool infers: the input size of a max pool that gives `in_shape`."""
    n = len(kernel)
    spatial = [(s - 1) * st - pads[i] - pads[n + i] + k if isinstance(s, int) else None
               for i, (s, k, st) in enumerate(zip(in_shape[2:], kernel, strides))]
    return (*in_shape[:2], *spatial)


def unpool_params(attrs) -> tuple[list[int], list[int], list[int]]:
    kernel = list(attrs["kernel_shape"])
    strides = list(attrs["strides"]) or [1] * len(kernel)
    pads = list(attrs["pads"]) or [0] * (2 * len(kernel))
    if not kernel or len(strides) != len(kernel) or len(pads) != 2 * len(kernel):
        raise InferenceError(f"kernel_shape {kernel}, strides {strides} and pads {pads} do not fit")
    return kernel, strides, pads


@register("max_unpool", "sampling", "The partial inverse of max_pool: y is zeros of the output shape with "
          "x[i] written at the flat index indices[i] (int64, max_pool's second output; row-major over the "
          "whole output). The shape is input 2 (optional int64 [rank]), else the input size of a max pool with "
          "this window that gives x.", inputs=(2, 3),
          attrs={"kernel_shape": Attr(list), "strides": Attr(list, [], "empty: all 1"),
                 "pads": Attr(list, [], "[begin..., end...]; empty: all 0")})
def _max_unpool(ctx):
    x = ctx.type(0)
    if ctx.dtype(1) != "int64":
        raise InferenceError(f"indices must be int64, got {ctx.dtype(1)}")
    kernel, strides, pads = unpool_params(ctx.attrs)
    if x.shape is not None and len(x.shape) != len(kernel) + 2:
        raise InferenceError(f"input rank {len(x.shape)} does not match a {len(kernel)}-D window")
    if ctx.has_input(2):
        if ctx.dtype(2) != "int64":
            raise InferenceError(f"output_shape must be int64, got {ctx.dtype(2)}")
        dims = ctx.sym(2)
        if dims is None:
            return [TensorType(x.dtype, None if x.shape is None else (None,) * len(x.shape))]
        return [TensorType(x.dtype, tuple(dims))]
    return [TensorType(x.dtype, None if x.shape is None else unpool_shape(x.shape, kernel, strides, pads))]


# -- deform_conv ------------------------------------------------------------------------------------------------
@register("deform_conv", "sampling", "Deformable convolution: conv of x [N, C, *in] with w [M, C/group, *k] "
          "where each kernel tap reads x at its regular position plus a learned offset (offset [N, "
          "offset_group * prod(k) * r, *out], r offsets per tap, bilinear sampling, zeros outside), scaled by "
          "mask [N, offset_group * prod(k), *out] when given; plus bias [M]. Inputs: x, w, offset, bias "
          "(optional), mask (optional).", inputs=(3, 5),
          attrs={"strides": Attr(list, [], "empty: all 1"), "dilations": Attr(list, [], "empty: all 1"),
                 "pads": Attr(list, [], "[begin..., end...]; empty: all 0"), "group": Attr(int, 1),
                 "offset_group": Attr(int, 1)})
def _deform_conv(ctx):
    dtype = _float(ctx, 0, "x")
    for i in range(1, 5):
        if ctx.has_input(i) and ctx.dtype(i) != dtype:
            raise InferenceError(f"input {i} is {ctx.dtype(i)}, x is {dtype}")
    x, w = ctx.shape(0), ctx.shape(1)
    if w is None or len(w) < 3 or not all(isinstance(d, int) for d in w[2:]):
        raise InferenceError(f"weight shape {w} must be [M, C/group, k...] with known k")
    kernel = list(w[2:])
    if x is not None and len(x) != len(kernel) + 2:
        raise InferenceError(f"input rank {len(x)} does not match a {len(kernel)}-D kernel")
    if ctx.attr("group") < 1 or ctx.attr("offset_group") < 1:
        raise InferenceError("group and offset_group must be >= 1")
    spatial = [None] * len(kernel) if x is None else list(x[2:])
    out = window_out(spatial, kernel, {**ctx.attrs, "auto_pad": "NOTSET"})
    offset = ctx.shape(2)
    if offset is not None:
        if len(offset) != len(kernel) + 2:
            raise InferenceError(f"offset must have rank {len(kernel) + 2}, got {len(offset)}")
        out = [_agree(o, s, "offset spatial size vs output size") for o, s in zip(out, offset[2:])]
    return [TensorType(dtype, (None if x is None else x[0], w[0], *out))]
