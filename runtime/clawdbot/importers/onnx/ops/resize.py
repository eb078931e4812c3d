"""ONNX -> claw: Resize (opsets 10, 11, 13, 18, 19) and Upsample (7, 9), all onto the claw `resize` op.

Resize-10 and Upsample predate coordinate_transformation_mode: they map output x to input x / scale
(asymmetric) and pick nearest pixels like onnxruntime does for them (nearest_mode "simple").
"""
from __future__ import annotations

import numpy as np

from ..builder import Unsupported

_MODES = {"nearest": "nearest", "linear": "linear", "bilinear": "linear", "cubic": "cubic"}


def _given(b, name: str) -> str:
    """`name` unless it is omitted or known to be empty (Resize-11 passes an empty scales with sizes)."""
    if not name:
        return ""
    shape = b.shape(name)
    if shape is not None and any(d == 0 for d in shape):
        return ""
    value = b.value(name)
    return "" if value is not None and value.size == 0 else name


def _mode(n) -> str:
    mode = n.attr("mode", "nearest")
    if mode not in _MODES:
        raise Unsupported(f"mode {mode!r}")
    return _MODES[mode]


def _float32_scales(b, name: str) -> str:
    if not name or b.dtype(name) == "float32":
        return name
    value = b.value(name)
    if value is None:
        raise Unsupported(f"scales {name!r} of dtype {b.dtype(name)}")
    return b.const(value.astype(np.float32), "scales")


def _emit(b, n, scales: str, sizes: str, roi: str, **attrs) -> None:
    inputs = [n.input(0), scales, sizes, roi]
    while inputs[-1] == "":
        inputs.pop()
    b.emit("resize", inputs, n.outputs, **attrs)


def resize(b, n):
    scales, sizes = _given(b, n.input(2)), _given(b, n.input(3))
    if bool(scales) == bool(sizes):
        raise Unsupported("exactly one of scales and sizes must be given (and known to be non-empty)")
    ctm = n.attr("coordinate_transformation_mode", "half_pixel")
    roi = _given(b, n.input(1)) if ctm == "tf_crop_and_resize" else ""
    axes = [int(a) for a in n.attr("axes", None) or []]
    _emit(b, n, _float32_scales(b, scales), sizes, roi, mode=_mode(n), coordinate_transformation_mode=ctm,
          nearest_mode=n.attr("nearest_mode", "round_prefer_floor"),
          cubic_coeff_a=float(n.attr("cubic_coeff_a", -0.75)),
          exclude_outside=bool(n.attr("exclude_outside", 0)),
          extrapolation_value=float(n.attr("extrapolation_value", 0.0)),
          antialias=bool(n.attr("antialias", 0)), axes=axes,
          keep_aspect_ratio_policy=n.attr("keep_aspect_ratio_policy", "stretch"))


def _legacy(b, n, scales: str) -> None:
    mode = _mode(n)
    if mode == "cubic":
        raise Unsupported("cubic mode needs Resize-11 or later")
    _emit(b, n, _float32_scales(b, scales), "", "", mode=mode, coordinate_transformation_mode="asymmetric",
          nearest_mode="simple")


def resize_10(b, n):
    _legacy(b, n, n.input(1))


def upsample_7(b, n):
    scales = n.attr("scales")
    if not scales:
        raise Unsupported("Upsample without scales")
    _legacy(b, n, b.const(np.asarray(scales, dtype=np.float32), "scales"))


def upsample_9(b, n):
    _legacy(b, n, n.input(1))


def register(reg):
    reg.insert("Resize", resize_10, since=10)
    # 13 made roi/scales optional, 18 added axes/antialias/keep_aspect_ratio_policy, 19 half_pixel_symmetric:
    # all read with defaults by the one handler.
    reg.insert("Resize", resize, since=11)
    reg.insert("Upsample", upsample_7, since=7)
    reg.insert("Upsample", upsample_9, since=9)
