"""CPU kernels: gathers, scatters and other index-driven ops (numpy advanced indexing and ufunc.at)."""
from __future__ import annotations

import numpy as np

from .registry import kernel

# Unbuffered in-place combiners: repeated indices each contribute, as ONNX's reductions require.
_COMBINE = {"add": np.add.at, "mul": np.multiply.at, "max": np.maximum.at, "min": np.minimum.at}


def _wrap(indices, dim):
    """Negative indices count from the end of their axis."""
    return np.where(indices < 0, indices + dim, indices)


def _scatter(out, where, updates, reduction):
    if reduction == "none":
        out[where] = updates
    else:
        _COMBINE[reduction](out, where, updates)
    return out


@kernel("gather", out=True)
def gather(x, indices, axis=0, out=None):
    if out is None:
        return np.take(x, indices, axis=axis)  # np.take accepts negative indices
    # np.take buffers the whole output when it must raise on a bad index (mode="raise"): check the range
    # here, then gather straight into out (mode="wrap" only maps the valid negative indices).
    n = x.shape[axis]
    if indices.size and (indices.max() >= n or indices.min() < -n):
        raise IndexError(f"gather: index out of range for axis {axis} of size {n}")
    return np.take(x, indices, axis=axis, out=out, mode="wrap")


@kernel("gather_elements")
def gather_elements(x, indices, axis=0):
    return np.take_along_axis(x, _wrap(indices, x.shape[axis]), axis=axis)


@kernel("gather_nd")
def gather_nd(x, indices, batch_dims=0):
    batch = x.shape[:batch_dims]
    k = indices.shape[-1]
    n = int(np.prod(batch, dtype=np.int64))
    xb = x.reshape((n,) + x.shape[batch_dims:])
    ib = indices.reshape(n, -1, k)
    # One advanced index per coordinate, plus the batch number for every tuple.
    coords = tuple(ib[..., j] for j in range(k))
    rows = np.arange(n)[:, None]
    picked = xb[(rows,) + coords]
    return picked.reshape(indices.shape[:-1] + x.shape[batch_dims + k:])


@kernel("scatter_elements")
def scatter_elements(x, indices, updates, axis=0, reduction="none"):
    where = list(np.indices(indices.shape, sparse=True))
    where[axis] = _wrap(indices, x.shape[axis])
    return _scatter(x.copy(), tuple(where), updates, reduction)


@kernel("scatter_nd")
def scatter_nd(x, indices, updates, reduction="none"):
    where = tuple(indices[..., j] for j in range(indices.shape[-1]))
    return _scatter(x.copy(), where, updates, reduction)


@kernel("one_hot")
def one_hot(indices, depth, values, axis=-1):
    depth = int(depth.reshape(-1)[0])
    idx = indices.astype(np.int64)
    idx = np.where(idx < 0, idx + depth, idx)
    hot = idx[..., None] == np.arange(depth)  # out-of-range indices match nothing: all "off"
    hot = np.moveaxis(hot, -1, axis)
    return np.where(hot, values[1], values[0]).astype(values.dtype, copy=False)


@kernel("non_zero")
def non_zero(x):
    if x.ndim == 0:
        return np.zeros((0, int(x != 0)), dtype=np.int64)
    return np.array(np.nonzero(x), dtype=np.int64).reshape(x.ndim, -1)


@kernel("trilu")
def trilu(x, k=None, upper=True):
    k = 0 if k is None else int(k.reshape(-1)[0])
    return np.triu(x, k) if upper else np.tril(x, k)


@kernel("unique")
def unique(x, axis=0, sorted=True):
    y, first, inverse, counts = np.unique(x, return_index=True, return_inverse=True, return_counts=True,
                                          axis=axis)
    inverse = inverse.reshape(-1)
    if not sorted:
        # Reorder the unique slices by first occurrence and renumber the inverse indices to match.
        order = np.argsort(first, kind="stable")
        rank = np.empty_like(order)
        rank[order] = np.arange(len(order))
        y, first, counts, inverse = np.take(y, order, axis=axis), first[order], counts[order], rank[inverse]
    return y, first.astype(np.int64), inverse.astype(np.int64), counts.astype(np.int64)


def _corners(boxes, center_point_box):
    """Boxes as (y1, x1, y2, x2) with y1 <= y2 and x1 <= x2, whatever order the corners came in."""
    if center_point_box:
        cx, cy, w, h = np.moveaxis(boxes, -1, 0)
        return np.stack([cy - h / 2, cx - w / 2, cy + h / 2, cx + w / 2], axis=-1)
    y1, x1, y2, x2 = np.moveaxis(boxes, -1, 0)
    return np.stack([np.minimum(y1, y2), np.minimum(x1, x2), np.maximum(y1, y2), np.maximum(x1, x2)], axis=-1)


def _iou(box, others):
    ih = np.clip(np.minimum(box[2], others[:, 2]) - np.maximum(box[0], others[:, 0]), 0, None)
    iw = np.clip(np.minimum(box[3], others[:, 3]) - np.maximum(box[1], others[:, 1]), 0, None)
    inter = ih * iw
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (others[:, 2] - others[:, 0]) * (others[:, 3] - others[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0)


def _nms_one(boxes, scores, limit, iou_threshold, score_threshold):
    order = [i for i in np.argsort(-scores, kind="stable") if score_threshold is None or scores[i] > score_threshold]
    keep: list[int] = []
    for i in order:
        if len(keep) >= limit:
            break
        if not keep or np.all(_iou(boxes[i], boxes[keep]) <= iou_threshold):
            keep.append(int(i))
    return keep


@kernel("non_max_suppression")
def non_max_suppression(boxes, scores, max_out=None, iou=None, score=None, center_point_box=False):
    limit = 0 if max_out is None else int(max_out.reshape(-1)[0])
    iou_threshold = 0.0 if iou is None else float(iou.reshape(-1)[0])
    score_threshold = None if score is None else float(score.reshape(-1)[0])
    corners = _corners(boxes.astype(np.float32), center_point_box)
    rows = []
    for b in range(scores.shape[0]):
        for c in range(scores.shape[1]):
            for i in _nms_one(corners[b], scores[b, c], limit, iou_threshold, score_threshold):
                rows.append((b, c, i))
    return np.array(rows, dtype=np.int64).reshape(-1, 3)


@kernel("tensor_scatter")
def tensor_scatter(past, update, write_indices=None, axis=-2, mode="linear"):
    out = past.copy()
    # Views with the sequence axis right after the batch axis: out_seq[b, t] is one cache slot.
    out_seq, upd_seq = np.moveaxis(out, axis, 1), np.moveaxis(update, axis, 1)
    starts = np.zeros(past.shape[0], np.int64) if write_indices is None else write_indices.reshape(-1)
    for b, start in enumerate(starts):
        pos = int(start) + np.arange(upd_seq.shape[1])
        if mode == "circular":
            pos %= out_seq.shape[1]
        out_seq[b, pos] = upd_seq[b]
    return out
