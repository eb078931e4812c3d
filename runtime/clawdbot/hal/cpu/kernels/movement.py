"""CPU kernels: data movement. Reshape-likes return views where numpy can.

Views are safe because kernels never write into their inputs; ops that must build new data (concat, pad,
tile, depth/space rearrangements) copy exactly once.
"""
from __future__ import annotations

import numpy as np

from ....ir.ops.movement import split_sizes
from .registry import kernel, kernel_factory


def _ints(a) -> list[int]:
    return [int(v) for v in np.asarray(a).reshape(-1)]


@kernel("identity", view_of=0)
def identity(x):
    return x


@kernel("reshape", view_of=0)
def reshape(x, shape, allowzero=False):
    target = _ints(shape)
    if not allowzero:
        target = [x.shape[i] if d == 0 else d for i, d in enumerate(target)]
    return x.reshape(target)


@kernel("flatten", view_of=0)
def flatten(x, axis=1):
    axis = axis + x.ndim if axis < 0 else axis
    outer = int(np.prod(x.shape[:axis], dtype=np.int64))
    return x.reshape(outer, int(np.prod(x.shape[axis:], dtype=np.int64)))


@kernel("transpose", out=True)
def transpose(x, perm=(), out=None):
    if out is None:
        return np.transpose(x, perm or None)
    np.copyto(out, np.transpose(x, perm or None))
    return out


@kernel("concat", out=True)
def concat(*xs, axis=0, out=None):
    return np.concatenate(xs, axis=axis, out=out)


@kernel_factory("split")
def split(node, in_types, out_types):
    axis, n = node.attrs["axis"], len(node.outputs)

    def run(x, sizes=None):
        sizes = _ints(sizes) if sizes is not None else split_sizes(x.shape[axis], n)
        return tuple(np.split(x, np.cumsum(sizes)[:-1], axis=axis))
    return run


@kernel("slice", out=True)
def slice_(x, starts, ends, axes=None, steps=None, out=None):
    starts, ends = _ints(starts), _ints(ends)
    axes = _ints(axes) if axes is not None else range(len(starts))
    steps = _ints(steps) if steps is not None else [1] * len(starts)
    index = [slice(None)] * x.ndim
    # Python slice bounds clamp exactly as ONNX specifies, for both step signs.
    for a, s, e, st in zip(axes, starts, ends, steps):
        index[a] = slice(s, e, st)
    if out is None:
        return x[tuple(index)]
    np.copyto(out, x[tuple(index)])
    return out


@kernel("squeeze", view_of=0)
def squeeze(x, axes=None):
    return np.squeeze(x, axis=None if axes is None else tuple(_ints(axes)))


@kernel("unsqueeze", view_of=0)
def unsqueeze(x, axes):
    return np.expand_dims(x, tuple(_ints(axes)))


@kernel("expand")
def expand(x, shape):
    target = np.broadcast_shapes(x.shape, tuple(_ints(shape)))
    # broadcast_to gives a read-only view with zero strides; consumers only read it.
    return np.broadcast_to(x, target)


@kernel("tile")
def tile(x, repeats):
    return np.tile(x, _ints(repeats))


_NP_PAD_MODE = {"constant": "constant", "reflect": "reflect", "edge": "edge", "wrap": "wrap"}


@kernel("pad")
def pad(x, pads, value=None, axes=None, mode="constant"):
    pads = _ints(pads)
    axes = _ints(axes) if axes is not None else range(x.ndim)
    n = len(pads) // 2
    widths = [[0, 0] for _ in range(x.ndim)]
    for k, a in enumerate(axes):
        widths[a] = [pads[k], pads[k + n]]
    # Negative pads crop: pad with the positive parts, then slice the negative ones off.
    grow = [[max(b, 0), max(e, 0)] for b, e in widths]
    kw = {"constant_values": value.reshape(()) if value is not None else 0} if mode == "constant" else {}
    y = np.pad(x, grow, mode=_NP_PAD_MODE[mode], **kw) if any(b or e for b, e in grow) else x
    crop = tuple(slice(-min(b, 0), y.shape[k] + min(e, 0)) for k, (b, e) in enumerate(widths))
    return y[crop]


@kernel("depth_to_space")
def depth_to_space(x, blocksize, mode="DCR"):
    n, c, h, w = x.shape
    b = blocksize
    if mode == "DCR":
        t = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        t = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return t.reshape(n, c // (b * b), h * b, w * b)


@kernel("space_to_depth")
def space_to_depth(x, blocksize, mode="DCR"):
    n, c, h, w = x.shape
    b = blocksize
    t = x.reshape(n, c, h // b, b, w // b, b)
    t = t.transpose(0, 3, 5, 1, 2, 4) if mode == "DCR" else t.transpose(0, 1, 3, 5, 2, 4)
    return t.reshape(n, c * b * b, h // b, w // b)


@kernel("reverse_sequence")
def reverse_sequence(x, lens, batch_axis=1, time_axis=0):
    y = x.copy()
    for i, n in enumerate(_ints(lens)):
        src = [slice(None)] * x.ndim
        src[batch_axis], src[time_axis] = i, slice(n - 1, None, -1) if n > 0 else slice(0, 0)
        dst = list(src)
        dst[time_axis] = slice(0, n)
        y[tuple(dst)] = x[tuple(src)]
    return y


@kernel("center_crop_pad")
def center_crop_pad(x, shape, axes=()):
    axes = [a % x.ndim for a in axes] if axes else range(x.ndim)
    out_shape = list(x.shape)
    src = [slice(None)] * x.ndim
    dst = [slice(None)] * x.ndim
    for a, size in zip(axes, _ints(shape)):
        diff = x.shape[a] - size
        out_shape[a] = size
        if diff > 0:    # crop: the extra element of an odd difference is dropped at the end
            src[a] = slice(diff // 2, diff // 2 + size)
        elif diff < 0:  # pad: the extra element of an odd difference goes at the end
            dst[a] = slice(-diff // 2, -diff // 2 + x.shape[a])
    y = np.zeros(out_shape, dtype=x.dtype)
    y[tuple(dst)] = x[tuple(src)]
    return y


@kernel("compress")
def compress(x, condition, axis=0):
    cond = condition.reshape(-1)
    return np.compress(cond, x, axis=axis)


@kernel("col2im")
def col2im(x, image_shape, block_shape, strides=(), dilations=(), pads=()):
    image, block = _ints(image_shape), _ints(block_shape)
    d = len(image)
    strides, dilations = list(strides) or [1] * d, list(dilations) or [1] * d
    pads = list(pads) or [0] * (2 * d)
    n, cols, _ = x.shape
    c = cols // int(np.prod(block))
    padded = [image[k] + pads[k] + pads[k + d] for k in range(d)]
    counts = [(padded[k] - dilations[k] * (block[k] - 1) - 1) // strides[k] + 1 for k in range(d)]
    y = np.zeros([n, c, *padded], dtype=x.dtype)
    blocks = x.reshape(n, c, *block, *counts)
    # Every kernel tap adds its column values to one strided window of the padded image.
    for tap in np.ndindex(*block):
        window = tuple(slice(t * dl, t * dl + (m - 1) * s + 1, s)
                       for t, dl, m, s in zip(tap, dilations, counts, strides))
        y[(slice(None), slice(None)) + window] += blocks[(slice(None), slice(None)) + tap]
    crop = tuple(slice(pads[k], pads[k] + image[k]) for k in range(d))
    return np.ascontiguousarray(y[(slice(None), slice(None)) + crop])
