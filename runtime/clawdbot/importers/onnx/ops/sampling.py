"""ONNX -> claw: GridSample (opsets 16, 20, 22), AffineGrid, RoiAlign (opsets 10, 16), MaxUnpool, DeformConv.

Opset history folded into one claw form:
- GridSample-16 names its modes bilinear / nearest / bicubic, 20+ linear / nearest / cubic (and allows N-D
  inputs); the claw op uses the later names.
- RoiAlign-10 has no coordinate_transformation_mode: it behaves as output_half_pixel; 16+ defaults to
  half_pixel.
- The grid keeps its own float dtype (it holds coordinates, not operands of x's arithmetic).
- MaxUnpool's output_shape input is cast to int64 when needed.
"""
from __future__ import annotations

from ....ir.dtypes import FLOAT_TYPES
from ..builder import Unsupported
from .elementwise import cast_to

_MODE_16 = {"bilinear": "linear", "nearest": "nearest", "bicubic": "cubic"}


def _text(v, default: str) -> str:
    if v is None:
        return default
    return v.decode() if isinstance(v, bytes) else str(v)


def _grid_sample(b, n, mode: str):
    x, grid = n.input(0), n.input(1)
    if b.dtype(x) not in FLOAT_TYPES and mode != "nearest":
        raise Unsupported(f"{mode} sampling of {b.dtype(x)} input (only nearest samples non-float tensors)")
    padding = _text(n.attr("padding_mode"), "zeros")
    if padding not in ("zeros", "border", "reflection"):
        raise Unsupported(f"padding_mode {padding!r}")
    b.emit("grid_sample", [x, grid], n.outputs, mode=mode, padding_mode=padding,
           align_corners=bool(n.attr("align_corners", 0)))


def grid_sample_16(b, n):
    mode = _text(n.attr("mode"), "bilinear")
    if mode not in _MODE_16:
        raise Unsupported(f"GridSample-16 mode {mode!r}")
    _grid_sample(b, n, _MODE_16[mode])


def grid_sample_20(b, n):
    mode = _text(n.attr("mode"), "linear")
    if mode not in ("linear", "nearest", "cubic"):
        raise Unsupported(f"GridSample mode {mode!r}")
    _grid_sample(b, n, mode)


def affine_grid(b, n):
    b.emit("affine_grid", [n.input(0), cast_to(b, n.input(1), "int64")], n.outputs,
           align_corners=bool(n.attr("align_corners", 0)))


def _roi_align(b, n, default_mode: str):
    b.emit("roi_align", [n.input(0), n.input(1), cast_to(b, n.input(2), "int64")], n.outputs,
           mode=_text(n.attr("mode"), "avg"), output_height=int(n.attr("output_height", 1)),
           output_width=int(n.attr("output_width", 1)), sampling_ratio=int(n.attr("sampling_ratio", 0)),
           spatial_scale=float(n.attr("spatial_scale", 1.0)),
           coordinate_transformation_mode=_text(n.attr("coordinate_transformation_mode"), default_mode))


def roi_align_10(b, n):
    _roi_align(b, n, "output_half_pixel")


def roi_align_16(b, n):
    _roi_align(b, n, "half_pixel")


def max_unpool(b, n):
    kernel = [int(k) for k in n.attr("kernel_shape", None) or []]
    if not kernel:
        raise Unsupported("kernel_shape is required")
    ins = [n.input(0), cast_to(b, n.input(1), "int64")]
    if n.has_input(2):
        ins.append(cast_to(b, n.input(2), "int64"))
    b.emit("max_unpool", ins, n.outputs, kernel_shape=kernel,
           strides=[int(s) for s in n.attr("strides", None) or [1] * len(kernel)],
           pads=[int(p) for p in n.attr("pads", None) or [0] * (2 * len(kernel))])


def deform_conv(b, n):
    w = b.shape(n.input(1))
    if w is None or len(w) < 3 or not all(isinstance(d, int) for d in w[2:]):
        raise Unsupported(f"weight {n.input(1)!r} needs a known rank and kernel size")
    given = n.attr("kernel_shape")
    if given and [int(k) for k in given] != list(w[2:]):
        raise Unsupported(f"kernel_shape {list(given)} differs from the weight's {list(w[2:])}")
    k = len(w) - 2
    b.emit("deform_conv", [n.input(i) for i in range(min(len(n.inputs), 5))], n.outputs,
           strides=[int(s) for s in n.attr("strides", None) or [1] * k],
           dilations=[int(d) for d in n.attr("dilations", None) or [1] * k],
           pads=[int(p) for p in n.attr("pads", None) or [0] * (2 * k)],
           group=int(n.attr("group", 1)), offset_group=int(n.attr("offset_group", 1)))


def register(reg):
    reg.insert("GridSample", grid_sample_16, since=16)
    reg.insert("GridSample", grid_sample_20, since=20)
    reg.insert("AffineGrid", affine_grid, since=20)
    reg.insert("RoiAlign", roi_align_10, since=10)
    reg.insert("RoiAlign", roi_align_16, since=16)
    reg.insert("MaxUnpool", max_unpool, since=9)
    reg.insert("DeformConv", deform_conv, since=19)
