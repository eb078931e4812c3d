"""ONNX -> claw: data movement ops.

Older opsets pass slice bounds, axes, pads and split sizes as attributes; their handlers turn them into int64
constants so every opset maps onto the one claw form that takes them as inputs.
"""
from __future__ import annotations

import numpy as np

from ..builder import Unsupported


def _int64(b, values, hint: str) -> str:
    return b.const(np.asarray(values, dtype=np.int64).reshape(-1), hint, "int64")


def _trim(ins: list[str]) -> list[str]:
    """Drop trailing omitted ("") inputs; omitted ones in the middle stay as placeholders."""
    ins = list(ins)
    while ins and not ins[-1]:
        ins.pop()
    return ins


def _inputs(n, count: int) -> list[str]:
    return _trim([n.input(i) for i in range(count)])


def identity(b, n):
    b.alias(n.input(0), n.outputs[0])


def reshape(b, n):
    b.emit("reshape", [n.input(0), n.input(1)], n.outputs, allowzero=bool(n.attr("allowzero", 0)))


def _flatten_target(shape, axis: int) -> list[int] | None:
    """A reshape target for Flatten: each side's static product, or -1 for (at most) one dynamic side."""
    sides = [shape[:axis], shape[axis:]]
    target = [int(np.prod(s, dtype=np.int64)) if all(isinstance(d, int) for d in s) else -1 for s in sides]
    return None if target == [-1, -1] else target


def flatten(b, n):
    x, axis = n.input(0), n.attr("axis", 1)
    shape = b.shape(x)
    if shape is not None:
        target = _flatten_target(shape, axis + len(shape) if axis < 0 else axis)
        if target is not None:
            # allowzero: a static product of 0 is a literal empty dim, not "copy".
            b.emit("reshape", [x, _int64(b, target, "flatten_shape")], n.outputs, allowzero=True)
            return
    b.emit("flatten", [x], n.outputs, axis=axis)


def transpose(b, n):
    b.emit("transpose", [n.input(0)], n.outputs, perm=list(n.attr("perm", [])))


def concat(b, n):
    b.emit("concat", [i for i in n.inputs if i], n.outputs, axis=n.attr("axis", 0))


def _emit_split(b, n, sizes: str):
    """sizes: the name of an int64 sizes tensor, or "" for near-equal parts, one per output."""
    b.emit("split", _trim([n.input(0), sizes]), n.outputs, axis=n.attr("axis", 0))


def split_v2(b, n):
    """Split 2..12: sizes in the `split` attribute."""
    sizes = n.attr("split")
    _emit_split(b, n, _int64(b, sizes, "split_sizes") if sizes else "")


def split_v13(b, n):
    """Split 13+: sizes as input 1; 18 adds num_outputs, which must equal the output count anyway."""
    k = n.attr("num_outputs")
    if k is not None and k != len(n.outputs):
        raise Unsupported(f"num_outputs={k} but the node has {len(n.outputs)} outputs")
    _emit_split(b, n, n.input(1))


def slice_v1(b, n):
    starts, ends = n.attr("starts"), n.attr("ends")
    axes = n.attr("axes", list(range(len(starts))))
    ins = [n.input(0), _int64(b, starts, "starts"), _int64(b, ends, "ends"), _int64(b, axes, "axes")]
    b.emit("slice", ins, n.outputs)


def slice_v10(b, n):
    b.emit("slice", _inputs(n, 5), n.outputs)


def squeeze_v1(b, n):
    axes = n.attr("axes")
    b.emit("squeeze", [n.input(0)] + ([_int64(b, axes, "axes")] if axes else []), n.outputs)


def squeeze_v13(b, n):
    b.emit("squeeze", _inputs(n, 2), n.outputs)


def unsqueeze_v1(b, n):
    b.emit("unsqueeze", [n.input(0), _int64(b, n.attr("axes"), "axes")], n.outputs)


def unsqueeze_v13(b, n):
    b.emit("unsqueeze", [n.input(0), n.input(1)], n.outputs)


def expand(b, n):
    b.emit("expand", [n.input(0), n.input(1)], n.outputs)


def tile(b, n):
    b.emit("tile", [n.input(0), n.input(1)], n.outputs)


def _pad_value(b, x: str, value) -> str:
    return b.const(np.asarray(value, dtype=b.dtype(x)).reshape(()), "pad_value")


def pad_v2(b, n):
    """Pad 2..10: pads and value are attributes."""
    x = n.input(0)
    ins = [x, _int64(b, n.attr("pads"), "pads"), _pad_value(b, x, n.attr("value", 0.0))]
    b.emit("pad", ins, n.outputs, mode=n.attr("mode", "constant"))


def pad_v11(b, n):
    """Pad 11+: pads, constant_value and (18+) axes are inputs."""
    b.emit("pad", _inputs(n, 4), n.outputs, mode=n.attr("mode", "constant"))


def depth_to_space(b, n):
    b.emit("depth_to_space", [n.input(0)], n.outputs, blocksize=n.attr("blocksize"),
           mode=n.attr("mode", "DCR"))


def space_to_depth(b, n):
    b.emit("space_to_depth", [n.input(0)], n.outputs, blocksize=n.attr("blocksize"),
           mode=n.attr("mode", "DCR"))


def _emit_mask(b, x: str, mask: str, dtype: str) -> None:
    """Dropout's mask at inference: all ones (every element kept), shaped like x."""
    shape = b.emit1("shape", [x])
    one = b.const(np.ones((), dtype=dtype), "mask_one")
    b.emit("constant_of_shape", [shape, one], [mask])


def _dropout(b, n, mask_dtype: str) -> None:
    b.alias(n.input(0), n.outputs[0])
    if len(n.outputs) > 1 and n.outputs[1]:
        _emit_mask(b, n.input(0), n.outputs[1], mask_dtype)


def dropout_v7(b, n):
    """Dropout 7..9: the mask has x's dtype; inference never drops."""
    _dropout(b, n, b.dtype(n.input(0)))


def dropout_v10(b, n):
    _dropout(b, n, "bool")


def dropout_v12(b, n):
    """Dropout 12+: training_mode (input 2) turns dropping on; only a known false, or ratio 0, is inference."""
    if n.input(2):
        training = b.value(n.input(2))
        ratio = b.value(n.input(1)) if n.input(1) else np.float32(0.5)
        if training is None:
            raise Unsupported("Dropout training_mode must be known at conversion time")
        if bool(training.reshape(-1)[0]) and (ratio is None or float(ratio.reshape(-1)[0]) != 0.0):
            raise Unsupported("Dropout in training mode drops at random; clawdbot runs inference only")
    _dropout(b, n, "bool")


def reverse_sequence(b, n):
    b.emit("reverse_sequence", [n.input(0), n.input(1)], n.outputs, batch_axis=n.attr("batch_axis", 1),
           time_axis=n.attr("time_axis", 0))


def center_crop_pad(b, n):
    b.emit("center_crop_pad", [n.input(0), n.input(1)], n.outputs, axes=list(n.attr("axes", [])))


def compress(b, n):
    x, axis = n.input(0), n.attr("axis")
    if axis is None:  # no axis: select from the flattened input
        x = b.emit1("reshape", [x, _int64(b, [-1], "flat")])
        axis = 0
    b.emit("compress", [x, n.input(1)], n.outputs, axis=axis)


def col2im(b, n):
    b.emit("col2im", [n.input(0), n.input(1), n.input(2)], n.outputs, strides=list(n.attr("strides", [])),
           dilations=list(n.attr("dilations", [])), pads=list(n.attr("pads", [])))


def register(reg):
    reg.insert("Identity", identity)
    reg.insert("Reshape", reshape, since=5)
    reg.insert("Flatten", flatten)
    reg.insert("Transpose", transpose)
    reg.insert("Concat", concat)
    reg.insert("Split", split_v2, since=2)
    reg.insert("Split", split_v13, since=13)
    reg.insert("Slice", slice_v1)
    reg.insert("Slice", slice_v10, since=10)
    reg.insert("Squeeze", squeeze_v1)
    reg.insert("Squeeze", squeeze_v13, since=13)
    reg.insert("Unsqueeze", unsqueeze_v1)
    reg.insert("Unsqueeze", unsqueeze_v13, since=13)
    reg.insert("Expand", expand, since=8)
    reg.insert("Tile", tile, since=6)
    reg.insert("Pad", pad_v2, since=2)
    reg.insert("Pad", pad_v11, since=11)
    reg.insert("DepthToSpace", depth_to_space)
    reg.insert("SpaceToDepth", space_to_depth)
    reg.insert("Dropout", dropout_v7, since=7)
    reg.insert("Dropout", dropout_v10, since=10)
    reg.insert("Dropout", dropout_v12, since=12)
    reg.insert("ReverseSequence", reverse_sequence, since=10)
    reg.insert("CenterCropPad", center_crop_pad, since=18)
    reg.insert("Compress", compress, since=9)
    reg.insert("Col2Im", col2im, since=18)
