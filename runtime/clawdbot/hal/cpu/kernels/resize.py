"""CPU kernels: resize, as separable 1-D passes.

For every resized axis a plan is computed once per (input shape, scales/sizes/roi values): for each output
index, the input taps it reads and their weights (nearest: one tap, weight 1; linear: 2 taps; cubic: 4;
antialias widens both filters by 1/scale when downsampling). Applying an axis is then a few `np.take`s and
multiply-adds over the whole tensor, so there is no per-pixel Python. The tap rules follow the ONNX Resize
reference: taps outside the input repeat the edge pixel (or get weight 0 with exclude_outside), and
tf_crop_and_resize writes extrapolation_value where the source coordinate leaves the input.
"""
from __future__ import annotations

import math

import numpy as np

from ....ir.ops.resize import output_size, resolved_axes
from .conv import window_cache
from .registry import kernel_factory


def source_coords(mode: str, out_len: int, in_len: int, scale: float, roi: tuple[float, float] | None):
    """Input coordinate of each output index, and the mask of those outside the input (tf_crop_and_resize
    only, else None).

    The arithmetic is float32, as in onnxruntime: where a coordinate lands exactly on a rounding boundary
    (nearest mode, the edge of the input) float32 and float64 can disagree, and models are validated against
    onnxruntime. The lengths follow the ONNX reference: `width` is the unrounded in_len * scale.
    """
    x, outside = _coords(mode, np.arange(out_len, dtype=np.float32), np.float32(in_len), np.float32(scale),
                         None if roi is None else (np.float32(roi[0]), np.float32(roi[1])))
    return x.astype(np.float64), outside


def _coords(mode, y, in_len, scale, roi):
    width = scale * in_len
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5, None
    if mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - np.float32(len(y)) / width)
        return offset + (y + 0.5) / scale - 0.5, None
    if mode == "pytorch_half_pixel":
        return ((y + 0.5) / scale - 0.5) if width != 1 else np.full_like(y, -0.5), None
    if mode == "align_corners":
        return (y * (in_len - 1) / (width - 1)) if width != 1 else np.zeros_like(y), None
    if mode == "asymmetric":
        return y / scale, None
    if mode == "tf_half_pixel_for_nn":
        return (y + 0.5) / scale, None
    if mode == "tf_crop_and_resize":
        start, end = roi
        if width != 1:
            x = start * (in_len - 1) + y * (end - start) * (in_len - 1) / (width - 1)
        else:
            x = np.full_like(y, start * (in_len - 1) + (end - start) * (in_len - 1) / 2)
        return x, (x < 0) | (x > in_len - 1)
    raise ValueError(f"unknown coordinate_transformation_mode {mode!r}")


def nearest_taps(x, nearest_mode: str, scale: float):
    """Index of the input pixel each output takes (before clamping to the input)."""
    floor = np.floor(x)
    frac = x - floor
    if nearest_mode == "round_prefer_floor":
        up = frac > 0.5
    elif nearest_mode == "round_prefer_ceil":
        up = frac >= 0.5
    elif nearest_mode == "floor":
        up = np.zeros_like(frac, dtype=bool)
    elif nearest_mode == "ceil":
        up = frac > 0
    else:  # "simple" (Resize-10, Upsample): floor when upsampling, ceil when downsampling
        up = frac > 0 if scale < 1 else np.zeros_like(frac, dtype=bool)
    return (floor + up).astype(np.intp)


def cubic_kernel(s, a: float):
    s = np.abs(s)
    near = ((a + 2) * s - (a + 3)) * s * s + 1
    far = ((a * s - 5 * a) * s + 8 * a) * s - 4 * a
    return np.where(s <= 1, near, np.where(s < 2, far, 0.0))


def filter_taps(x, in_len: int, scale: float, *, cubic: bool, a: float, antialias: bool,
                exclude_outside: bool):
    """(taps [out, n], weights [out, n]) of linear or cubic interpolation at coordinates x; the taps are not
    yet clamped to the input."""
    support = 2.0 if cubic else 1.0
    # Antialiasing stretches the filter by 1/scale when downsampling, so each output averages more inputs.
    stretch = min(scale, 1.0) if antialias else 1.0
    half = -math.floor(-support / stretch)           # taps on each side of x: ceil(support / stretch)
    n = 2 * half
    floor = np.floor(x)
    # The window of n taps around x; at an exact integer x it leans left (the reference's tie rule).
    start = floor - half + np.where(x == floor, 0, 1)
    taps = start[:, None] + np.arange(n)[None, :]
    dist = (taps - x[:, None]) * stretch
    w = cubic_kernel(dist, a) if cubic else np.clip(1 - np.abs(dist), 0, 1)
    if antialias:
        w /= w.sum(axis=1, keepdims=True)
    if exclude_outside:
        w = np.where((taps < 0) | (taps >= in_len), 0.0, w)
        total = w.sum(axis=1, keepdims=True)
        w /= np.where(total == 0, 1.0, total)
    return taps.astype(np.intp), w


class AxisPlan:
    """How one axis is resized: output i reads input taps[i, j] (clamped to the input, i.e. edge pixels
    repeat) with weights[i, j] (None: nearest, one tap). `outside` masks outputs that get the
    extrapolation value. `period` is set when the output is a whole multiple s of the input and output
    s*q + r reads input q + offsets[r, j] with weights[r, j] for every q: then slices replace gathers."""

    __slots__ = ("axis", "taps", "weights", "outside", "period")

    def __init__(self, axis, taps, weights, outside, in_len):
        self.axis, self.weights, self.outside = axis, weights, outside
        self.period = periodic(taps, weights, in_len) if outside is None else None
        self.taps = np.clip(taps, 0, in_len - 1)


def periodic(taps, weights, in_len: int):
    """(s, offsets [s, n], weights [s, n] or None) for a whole-multiple upsampling whose taps and weights
    repeat every s outputs (shifted by one input each time), else None."""
    out_len = taps.shape[0]
    if in_len == 0 or out_len % in_len or out_len // in_len < 2:
        return None
    s = out_len // in_len
    rel = (taps - (np.arange(out_len) // s)[:, None]).reshape(in_len, s, -1)
    if not (rel == rel[0]).all():
        return None
    if weights is None:
        return s, rel[0], None
    w = weights.reshape(in_len, s, -1)
    # float32 coordinates can wobble in the last bit from one period to the next; that is not a pattern change.
    if not np.allclose(w, w[0], rtol=0, atol=1e-6):
        return None
    return s, rel[0], w[0]


def plan_axes(attrs, shape, scales, sizes, roi, work) -> list[AxisPlan]:
    rank = len(shape)
    axes = resolved_axes(attrs["axes"], rank)
    out, factors = output_size(shape, axes, scales, sizes, attrs["keep_aspect_ratio_policy"])
    ctm = attrs["coordinate_transformation_mode"]
    plans = []
    for k, ax in enumerate(axes):
        crop = None
        if ctm == "tf_crop_and_resize":
            crop = (float(roi[k]), float(roi[len(axes) + k])) if roi is not None else (0.0, 1.0)
        if out[ax] == shape[ax] and math.isclose(factors[ax], 1.0) and crop in (None, (0.0, 1.0)):
            continue  # identity along this axis
        if out[ax] == 0 or shape[ax] == 0:
            plans.append(AxisPlan(ax, np.zeros((out[ax], 1), np.intp), None, None, shape[ax]))
            continue
        x, outside = source_coords(ctm, out[ax], shape[ax], factors[ax], crop)
        if attrs["mode"] == "nearest":
            taps, w = nearest_taps(x, attrs["nearest_mode"], factors[ax])[:, None], None
        else:
            taps, w = filter_taps(x, shape[ax], factors[ax], cubic=attrs["mode"] == "cubic",
                                  a=attrs["cubic_coeff_a"], antialias=attrs["antialias"],
                                  exclude_outside=attrs["exclude_outside"])
            w = w.astype(work)
        plans.append(AxisPlan(ax, taps, w, outside if outside is not None and outside.any() else None,
                              shape[ax]))
    # Resizing is separable, so the axes can go in any order. Passes over the innermost axis are the slow
    # ones (gathers / strided writes), so that axis goes first when it grows, last when it shrinks: it is
    # then resized while the tensor is smallest.
    inner = [p for p in plans if p.axis == rank - 1]
    if inner and inner[0].taps.shape[0] > shape[-1]:
        plans = inner + [p for p in plans if p.axis != rank - 1]
    return plans


def _along(ax: int, ndim: int, index) -> tuple:
    return (slice(None),) * ax + (index,) + (slice(None),) * (ndim - ax - 1)


def apply_periodic(y, plan: AxisPlan):
    """Whole-multiple upsampling with slices: output phase r (every s-th output) is a weighted sum of
    shifted copies of the input, which is edge-padded so the shifts never leave it."""
    ax, (s, offsets, weights) = plan.axis, plan.period
    n_in = y.shape[ax]
    lo, hi = max(0, -int(offsets.min())), max(0, int(offsets.max()))
    if lo or hi:
        pad = [(0, 0)] * y.ndim
        pad[ax] = (lo, hi)
        y = np.pad(y, pad, mode="edge")
    shape = list(y.shape)
    shape[ax] = n_in * s
    out = np.empty(shape, dtype=y.dtype)
    for r in range(s):
        phase = None
        for j, off in enumerate(offsets[r]):
            src = y[_along(ax, y.ndim, slice(lo + off, lo + off + n_in))]
            if weights is None:          # nearest: one tap, copied as is
                phase = src
            elif weights[r, j] == 0:
                continue
            elif phase is None:
                phase = src * weights[r, j]
            else:
                phase += src * weights[r, j]
        # Writing every s-th element of the innermost axis is slow for arithmetic but fine for a copy, so
        # the phase is computed contiguously first.
        out[_along(ax, y.ndim, slice(r, None, s))] = 0 if phase is None else phase
    return out


def apply_axis(y, plan: AxisPlan, fill):
    ax = plan.axis
    if plan.period is not None:
        return apply_periodic(y, plan)
    if plan.weights is None:
        out = np.take(y, plan.taps[:, 0], axis=ax)
    else:
        bshape = [1] * y.ndim
        bshape[ax] = -1
        out = None
        for j in range(plan.taps.shape[1]):
            term = np.take(y, plan.taps[:, j], axis=ax)
            term *= plan.weights[:, j].reshape(bshape)
            out = term if out is None else np.add(out, term, out=out)
    if plan.outside is not None:
        index = [slice(None)] * y.ndim
        index[ax] = plan.outside
        out[tuple(index)] = fill
    return out


def _values(a):
    """scales/sizes/roi as a hashable tuple of Python numbers (None when omitted)."""
    return None if a is None else tuple(a.reshape(-1).tolist())


@kernel_factory("resize")
def resize_factory(node, in_types, out_types):
    attrs = node.attrs
    out_dtype = np.dtype(out_types[0].dtype)
    interpolates = attrs["mode"] != "nearest"

    plans_for = window_cache(lambda *key: plan_axes(attrs, *key))

    def run(x, scales=None, sizes=None, roi=None):
        if scales is not None and scales.size == 0:
            scales = None
        # Nearest copies pixels in the input dtype; interpolation runs in float32 for float32/float16 inputs
        # and float64 otherwise (integers are rounded back).
        if not interpolates:
            work = x.dtype
        else:
            work = np.dtype(np.float32) if x.dtype in (np.float32, np.float16) else np.dtype(np.float64)
        plans = plans_for(x.shape, _values(scales), _values(sizes), _values(roi), work)
        y = x.astype(work, copy=False)
        for plan in plans:
            y = apply_axis(y, plan, attrs["extrapolation_value"])
        if y is x:
            return x.copy()
        if out_dtype.kind in "iu" and y.dtype.kind == "f":
            info = np.iinfo(out_dtype)
            # Round to nearest like the ONNX reference (onnxruntime truncates its fixed-point result, so the
            # two can differ by one).
            y = np.clip(np.rint(y), info.min, info.max)
        return y.astype(out_dtype, copy=False)
    return run
