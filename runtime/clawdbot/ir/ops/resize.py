"""claw ops: resize — separable N-D interpolation (nearest / linear / cubic) with ONNX Resize's coordinate
conventions.

Inputs: x, scales (float32, one per resized axis), sizes (int64, one per resized axis), roi (float32,
[starts..., ends...] per resized axis; only tf_crop_and_resize reads it). Exactly one of scales/sizes is
given. `axes` lists the resized axes (empty: all, in order). These stay inputs because models compute them
at run time (e.g. from a Shape), so the kernel derives the output size per call.
"""
from __future__ import annotations

import math

import numpy as np

from ..graph import Dim, TensorType
from ._shapes import norm_axis
from .registry import Attr, InferenceError, register

MODES = ("nearest", "linear", "cubic")
COORDINATE_MODES = ("half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
                    "tf_half_pixel_for_nn", "tf_crop_and_resize")
# "simple" is ONNX Resize-10 / Upsample nearest: floor when upsampling, ceil when downsampling.
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil", "simple")
ASPECT_POLICIES = ("stretch", "not_larger", "not_smaller")


def output_size(in_shape, axes, scales=None, sizes=None, policy: str = "stretch"
                ) -> tuple[list[int], list[float]]:
    """Output shape and per-axis scale factors (over all axes) from scales or sizes, as ONNX Resize
    defines them: sizes give scale = out / in (one common scale with a keep-aspect-ratio policy); scales
    give out = floor(in * scale)."""
    rank = len(in_shape)
    out = [int(d) for d in in_shape]
    factors = [1.0] * rank
    if sizes is not None:
        ratios = [float(s) / in_shape[a] if in_shape[a] else 1.0 for a, s in zip(axes, sizes)]
        if policy != "stretch":
            common = min(ratios) if policy == "not_larger" else max(ratios)
            for a in axes:
                factors[a] = common
                out[a] = int(math.floor(common * in_shape[a] + 0.5))
        else:
            for a, s, r in zip(axes, sizes, ratios):
                out[a], factors[a] = int(s), r
    else:
        for a, s in zip(axes, scales):
            factors[a] = float(s)
            out[a] = int(math.floor(np.float64(s) * in_shape[a]))
    return out, factors


def resolved_axes(attr_axes, rank: int) -> list[int]:
    return [norm_axis(a, rank, "axes entry") for a in attr_axes] if attr_axes else list(range(rank))


@register("resize", "resize", "Resize x by scales or to sizes over `axes` with nearest/linear/cubic "
          "interpolation; coordinate_transformation_mode maps output to input coordinates as in ONNX Resize.",
          inputs=(2, 4),
          attrs={"mode": Attr(str, "nearest", "nearest, linear or cubic"),
                 "coordinate_transformation_mode": Attr(str, "half_pixel"),
                 "nearest_mode": Attr(str, "round_prefer_floor"),
                 "cubic_coeff_a": Attr(float, -0.75),
                 "exclude_outside": Attr(bool, False, "zero the weights of taps outside the input"),
                 "extrapolation_value": Attr(float, 0.0, "tf_crop_and_resize value outside the input"),
                 "antialias": Attr(bool, False, "widen linear/cubic filters when downsampling"),
                 "axes": Attr(list, [], "resized axes; empty: all"),
                 "keep_aspect_ratio_policy": Attr(str, "stretch", "with sizes: stretch, not_larger or "
                                                  "not_smaller")})
def _resize(ctx):
    a = ctx.attrs
    for name, allowed in (("mode", MODES), ("coordinate_transformation_mode", COORDINATE_MODES),
                          ("nearest_mode", NEAREST_MODES), ("keep_aspect_ratio_policy", ASPECT_POLICIES)):
        if a[name] not in allowed:
            raise InferenceError(f"{name} {a[name]!r} is not one of {allowed}")
    if ctx.has_input(1) == ctx.has_input(2):
        raise InferenceError("exactly one of scales (input 1) and sizes (input 2) must be given")
    if ctx.has_input(1) and ctx.dtype(1) != "float32":
        raise InferenceError(f"scales must be float32, got {ctx.dtype(1)}")
    if ctx.has_input(2) and ctx.dtype(2) != "int64":
        raise InferenceError(f"sizes must be int64, got {ctx.dtype(2)}")
    x = ctx.type(0)
    if x.shape is None:
        return [TensorType(x.dtype, None)]
    axes = resolved_axes(a["axes"], len(x.shape))
    given = 1 if ctx.has_input(1) else 2
    value = ctx.value(given)
    n_given = ctx.shape(given)
    if n_given is not None and len(n_given) == 1 and isinstance(n_given[0], int) and n_given[0] != len(axes):
        raise InferenceError(f"{'scales' if given == 1 else 'sizes'} has {n_given[0]} entries for "
                             f"{len(axes)} resized axes")
    dims: list[Dim] = list(x.shape)
    if value is not None and all(isinstance(x.shape[i], int) for i in axes):
        out, _ = output_size(x.shape, axes, value if given == 1 else None, value if given == 2 else None,
                             a["keep_aspect_ratio_policy"])
        for i in axes:
            dims[i] = out[i]
    else:
        for i in axes:
            dims[i] = None
    return [TensorType(x.dtype, tuple(dims))]
