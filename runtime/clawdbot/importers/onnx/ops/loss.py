"""ONNX -> claw: NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (opset 12 on), expanded into claw ops.

For input [N, C, d1, ...] and integer target [N, d1, ...]:
    loss[n, d] = -input[n, target[n, d], d] * weight[target[n, d]]      (0 where target == ignore_index)
picked with gather_elements along the class axis; `mean` divides the summed loss by the summed weights of the
entries not ignored (by their count without weights). Ignored entries may hold out-of-range class ids, so the
target is replaced by class 0 there before any gather. SoftmaxCrossEntropyLoss is the same on
log_softmax(scores, axis=1), whose value is the optional second output.
"""
from __future__ import annotations

import numpy as np

from ..builder import Unsupported

_REDUCTIONS = ("none", "sum", "mean")


def _valid_and_safe_target(b, target: str, ignore_index):
    """(bool mask of entries not ignored or None, target with ignored entries replaced by class 0)."""
    if ignore_index is None:
        return None, target
    dtype = b.dtype(target)
    ignored = b.emit1("equal", [target, b.const(np.array(ignore_index, dtype=dtype), "ignore_index")])
    valid = b.emit1("not", [ignored])
    safe = b.emit1("where", [valid, target, b.const(np.array(0, dtype=dtype), "class0")])
    return valid, safe


def _entry_weights(b, weight: str, safe: str, valid: str | None, dtype: str) -> str | None:
    """Per-entry weights [N, d1, ...]: weight[target] (or 1), 0 where ignored; None when all are 1."""
    if weight:
        w = b.emit1("gather", [weight, safe], axis=0)
        return w if valid is None else b.emit1("where", [valid, w, b.const(np.array(0, dtype=dtype), "zero")])
    return None if valid is None else b.emit1("cast", [valid], to=dtype)


def negative_log_likelihood(b, log_p: str, target: str, weight: str, reduction: str, ignore_index,
                            out: str) -> None:
    """Emit the NLL loss of log-probabilities `log_p` [N, C, ...] into `out`."""
    if reduction not in _REDUCTIONS:
        raise Unsupported(f"reduction {reduction!r}")
    if b.dtype(target) not in ("int32", "int64"):
        raise Unsupported(f"target of type {b.dtype(target)} (expected int32 or int64)")
    if b.rank(log_p) < 2:
        raise Unsupported(f"input of rank {b.rank(log_p)} (expected [N, C, ...])")
    dtype = b.dtype(log_p)
    valid, safe = _valid_and_safe_target(b, target, ignore_index)
    w = _entry_weights(b, weight, safe, valid, dtype)
    axis1 = b.const(np.array([1], np.int64), "class_axis")
    picked = b.emit1("gather_elements", [log_p, b.emit1("unsqueeze", [safe, axis1])], axis=1)
    per_entry = out if reduction == "none" else None  # the unreduced loss is written straight to the output
    neg = b.emit1("neg", [b.emit1("squeeze", [picked, axis1])], per_entry if w is None else None)
    loss = neg if w is None else b.emit1("mul", [neg, w], per_entry)
    if reduction == "sum":
        b.emit("reduce_sum", [loss], [out], keepdims=False)
    elif reduction == "mean" and w is None:
        b.emit("reduce_mean", [loss], [out], keepdims=False)
    elif reduction == "mean":
        total = b.emit1("reduce_sum", [loss], keepdims=False)
        b.emit("div", [total, b.emit1("reduce_sum", [w], keepdims=False)], [out])


def _options(n) -> tuple[str, object]:
    return str(n.attr("reduction", "mean")), n.attr("ignore_index")


def onnx_nll_loss(b, n):
    reduction, ignore_index = _options(n)
    negative_log_likelihood(b, n.inputs[0], n.inputs[1], n.input(2), reduction, ignore_index, n.outputs[0])


def onnx_softmax_cross_entropy_loss(b, n):
    reduction, ignore_index = _options(n)
    log_prob_out = n.outputs[1] if len(n.outputs) > 1 and n.outputs[1] else None
    log_p = b.emit1("log_softmax", [n.inputs[0]], log_prob_out, axis=1)
    negative_log_likelihood(b, log_p, n.inputs[1], n.input(2), reduction, ignore_index, n.outputs[0])


def register(reg):
    reg.insert("NegativeLogLikelihoodLoss", onnx_nll_loss, since=12)
    reg.insert("SoftmaxCrossEntropyLoss", onnx_softmax_cross_entropy_loss, since=12)
