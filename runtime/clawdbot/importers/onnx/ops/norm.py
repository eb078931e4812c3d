"""ONNX -> claw: normalisation ops (BatchNormalization in inference mode, Instance/Layer/Group/RMS
normalisation, MeanVarianceNormalization, LRN, LpNormalization)."""
from __future__ import annotations

import numpy as np

from ..builder import Unsupported

# ONNX TensorProto element types a stash_type attribute may name.
_STASH = {1: "float32", 10: "float16", 11: "float64"}


def _same_dtype(b, name: str, dtype: str) -> str:
    """`name` in `dtype`: constants are converted here; run-time values must already match."""
    if not name or b.dtype(name) == dtype:
        return name
    value = b.value(name)
    if value is None:
        raise Unsupported(f"{name!r} is {b.dtype(name)} but the input is {dtype}")
    return b.const(np.asarray(value).astype(dtype), "param")


def batch_norm(b, n):
    if n.attr("training_mode", 0):
        raise Unsupported("training_mode=1 (batch statistics) is not supported; export the model for inference")
    if not n.attr("spatial", 1):
        raise Unsupported("spatial=0 (per-activation statistics)")
    if any(o for o in n.outputs[3:]):
        raise Unsupported("saved_mean / saved_var outputs exist only in training mode")
    x = n.input(0)
    params = [_same_dtype(b, n.input(i), b.dtype(x)) for i in range(1, 5)]
    b.emit("batch_norm", [x, *params], [n.outputs[0]], epsilon=float(n.attr("epsilon", 1e-5)))
    # Opsets < 14 may list the running mean / var outputs; in inference they pass the inputs through.
    for src, dst in zip((n.input(3), n.input(4)), n.outputs[1:3]):
        if dst:
            b.alias(src, dst)


def instance_norm(b, n):
    x = n.input(0)
    b.emit("instance_norm", [x, *(_same_dtype(b, n.input(i), b.dtype(x)) for i in (1, 2))], n.outputs,
           epsilon=float(n.attr("epsilon", 1e-5)))


def _stash(n) -> str:
    t = int(n.attr("stash_type", 1))
    if t not in _STASH:
        raise Unsupported(f"stash_type {t}")
    return _STASH[t]


def layer_norm(b, n):
    x = n.input(0)
    params = [_same_dtype(b, n.input(i), b.dtype(x)) for i in (1, 2) if n.has_input(i)]
    b.emit("layer_norm", [x, *params], n.outputs, axis=int(n.attr("axis", -1)),
           epsilon=float(n.attr("epsilon", 1e-5)), stash_dtype=_stash(n))


def group_norm(b, n):
    # Opset 18 gives scale/bias per group, 21 per channel; the claw op accepts both lengths.
    x = n.input(0)
    b.emit("group_norm", [x, *(_same_dtype(b, n.input(i), b.dtype(x)) for i in (1, 2))], n.outputs,
           num_groups=int(n.attr("num_groups")), epsilon=float(n.attr("epsilon", 1e-5)))


def rms_norm(b, n):
    x = n.input(0)
    _stash(n)  # statistics are computed in float32 or wider whatever the stash type
    b.emit("rms_norm", [x, _same_dtype(b, n.input(1), b.dtype(x))], n.outputs, axis=int(n.attr("axis", -1)),
           epsilon=float(n.attr("epsilon", 1e-5)))


def mean_variance_norm(b, n):
    b.emit("mean_variance_norm", [n.input(0)], n.outputs, axes=[int(a) for a in n.attr("axes", [0, 2, 3])])


def lrn(b, n):
    b.emit("lrn", [n.input(0)], n.outputs, size=int(n.attr("size")), alpha=float(n.attr("alpha", 1e-4)),
           beta=float(n.attr("beta", 0.75)), bias=float(n.attr("bias", 1.0)))


def lp_norm(b, n):
    p = int(n.attr("p", 2))
    if p not in (1, 2):
        raise Unsupported(f"p={p} (LpNormalization defines p 1 and 2)")
    b.emit("lp_norm", [n.input(0)], n.outputs, axis=int(n.attr("axis", -1)), p=p)


def register(reg):
    reg.insert("BatchNormalization", batch_norm, since=1)
    reg.insert("InstanceNormalization", instance_norm, since=1)
    reg.insert("LayerNormalization", layer_norm, since=17)
    reg.insert("GroupNormalization", group_norm, since=18)
    reg.insert("RMSNormalization", rms_norm, since=23)
    reg.insert("MeanVarianceNormalization", mean_variance_norm, since=1)
    reg.insert("LRN", lrn, since=1)
    reg.insert("LpNormalization", lp_norm, since=1)
