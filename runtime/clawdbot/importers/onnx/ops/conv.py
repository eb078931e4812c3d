"""ONNX -> claw: Conv and ConvTranspose (all opsets: auto_pad, kernel_shape and the defaults are normalised
here; auto_pad is resolved to explicit pads when the input's spatial sizes are known)."""
from __future__ import annotations

from ....ir.ops._shapes import window_pads
from ....ir.ops.conv import transpose_pads
from ..builder import Unsupported


def spatial_sizes(b, x: str, n_spatial: int) -> list:
    shape = b.shape(x)
    if shape is None:
        return [None] * n_spatial
    if len(shape) != n_spatial + 2:
        raise Unsupported(f"input rank {len(shape)} does not match a {n_spatial}-D window")
    return list(shape[2:])


def window_attrs(n, kernel: list[int], sizes: list) -> dict:
    """strides / dilations / pads / auto_pad of an ONNX conv or pool node, auto_pad resolved when possible."""
    k = len(kernel)
    strides = [int(s) for s in n.attr("strides", None) or [1] * k]
    dilations = [int(d) for d in n.attr("dilations", None) or [1] * k]
    pads = [int(p) for p in n.attr("pads", None) or [0] * (2 * k)]
    mode = n.attr("auto_pad", "NOTSET") or "NOTSET"
    if len(strides) != k or len(dilations) != k or len(pads) != 2 * k:
        raise Unsupported(f"strides {strides} / dilations {dilations} / pads {pads} do not fit a {k}-D window")
    if mode not in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
        raise Unsupported(f"auto_pad {mode!r}")
    resolved = window_pads(sizes, kernel, strides, dilations, pads, mode)
    if resolved is not None:
        pads, mode = resolved, "NOTSET"
    return {"strides": strides, "dilations": dilations, "pads": pads, "auto_pad": mode}


def _kernel_of(b, n, w: str) -> list[int]:
    shape = b.shape(w)
    if shape is None or len(shape) < 3 or not all(isinstance(d, int) for d in shape[2:]):
        given = n.attr("kernel_shape")
        if shape is not None and given and len(given) == len(shape) - 2:
            return [int(k) for k in given]
        raise Unsupported(f"weight {w!r} needs a known rank and kernel size")
    kernel = [int(d) for d in shape[2:]]
    given = n.attr("kernel_shape")
    if given and [int(k) for k in given] != kernel:
        raise Unsupported(f"kernel_shape {list(given)} differs from the weight's {kernel}")
    return kernel


def _inputs(n) -> list[str]:
    return [n.input(0), n.input(1)] + ([n.input(2)] if n.has_input(2) else [])


def conv(b, n):
    kernel = _kernel_of(b, n, n.input(1))
    attrs = window_attrs(n, kernel, spatial_sizes(b, n.input(0), len(kernel)))
    b.emit("conv", _inputs(n), n.outputs, group=int(n.attr("group", 1)), **attrs)


def conv_transpose(b, n):
    kernel = _kernel_of(b, n, n.input(1))
    k = len(kernel)
    sizes = spatial_sizes(b, n.input(0), k)
    output_shape = [int(s) for s in n.attr("output_shape", None) or []]
    if len(output_shape) == k + 2:  # some exporters give the full [N, C, *spatial] shape
        output_shape = output_shape[2:]
    attrs = {"strides": [int(s) for s in n.attr("strides", None) or [1] * k],
             "dilations": [int(d) for d in n.attr("dilations", None) or [1] * k],
             "pads": [int(p) for p in n.attr("pads", None) or [0] * (2 * k)],
             "auto_pad": n.attr("auto_pad", "NOTSET") or "NOTSET",
             "output_padding": [int(p) for p in n.attr("output_padding", None) or [0] * k],
             "output_shape": output_shape}
    pads = transpose_pads(sizes, kernel, attrs)
    if pads is not None:  # sizes known (or nothing to derive): make the pads explicit
        attrs.update(pads=pads, auto_pad="NOTSET", output_shape=[])
    b.emit("conv_transpose", _inputs(n), n.outputs, group=int(n.attr("group", 1)), **attrs)


def register(reg):
    reg.insert("Conv", conv, since=1)
    reg.insert("ConvTranspose", conv_transpose, since=1)
