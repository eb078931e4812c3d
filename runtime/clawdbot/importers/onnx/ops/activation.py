"""ONNX -> claw: activations.

Pointwise activations map one-to-one, with ONNX's attribute defaults written out (a claw node carries every
attribute). Softmax, LogSoftmax and Hardmax before opset 13 normalise the input *coerced to 2-D* at `axis`
(default 1), i.e. jointly over all axes from `axis` on; from opset 13 over the single `axis` (default -1). The
old form equals the new one when `axis` is the last axis; otherwise the input is flattened to 2-D at `axis`,
normalised along axis 1 and reshaped back to its run-time shape.
"""
from __future__ import annotations

from ..builder import Unsupported

# ONNX op -> (claw op, {claw attribute: (ONNX attribute, default)}, since)
_POINTWISE = {
    "Relu": ("relu", {}, 1),
    "LeakyRelu": ("leaky_relu", {"alpha": ("alpha", 0.01)}, 1),
    "PRelu": ("prelu", {}, 1),
    "Sigmoid": ("sigmoid", {}, 1),
    "HardSigmoid": ("hard_sigmoid", {"alpha": ("alpha", 0.2), "beta": ("beta", 0.5)}, 1),
    "HardSwish": ("hard_swish", {}, 14),
    "Tanh": ("tanh", {}, 1),
    "Elu": ("elu", {"alpha": ("alpha", 1.0)}, 1),
    "Selu": ("selu", {"alpha": ("alpha", 1.67326319217681884765625),
                      "gamma": ("gamma", 1.05070102214813232421875)}, 1),
    "Celu": ("celu", {"alpha": ("alpha", 1.0)}, 12),
    "Gelu": ("gelu", {"approximate": ("approximate", "none")}, 20),
    "Softplus": ("softplus", {}, 1),
    "Softsign": ("softsign", {}, 1),
    "Mish": ("mish", {}, 18),
    "Swish": ("swish", {"alpha": ("alpha", 1.0)}, 24),
    "ThresholdedRelu": ("thresholded_relu", {"alpha": ("alpha", 1.0)}, 10),
    "Shrink": ("shrink", {"lambd": ("lambd", 0.5), "bias": ("bias", 0.0)}, 9),
}


def _pointwise(op: str, attrs: dict[str, tuple[str, object]]):
    def handler(b, n):
        values = {k: type(default)(n.attr(name, default)) for k, (name, default) in attrs.items()}
        if op == "gelu" and values["approximate"] not in ("none", "tanh"):
            raise Unsupported(f"Gelu approximate={values['approximate']!r} (expected 'none' or 'tanh')")
        b.emit(op, n.inputs, n.outputs, **values)
    handler.__name__ = f"onnx_to_{op}"
    return handler


# -- softmax family --------------------------------------------------------------------------------------------
def _along_axis_13(op: str):
    def handler(b, n):
        b.emit(op, n.inputs[:1], n.outputs, axis=int(n.attr("axis", -1)))
    handler.__name__ = f"onnx_to_{op}"
    return handler


def _along_axis_1(op: str):
    """Softmax-1/11 family: normalise x coerced to 2-D [prod(dims[:axis]), prod(dims[axis:])] along its rows."""
    def handler(b, n):
        x = n.inputs[0]
        rank = b.rank(x)
        axis = int(n.attr("axis", 1))
        if not -rank <= axis < max(rank, 1):
            raise Unsupported(f"axis {axis} out of range for rank {rank}")
        axis = axis % rank if rank else 0
        if axis == rank - 1:  # the rows are the last axis itself: no reshaping needed
            b.emit(op, [x], n.outputs, axis=axis)
            return
        rows = b.emit1(op, [b.emit1("flatten", [x], axis=axis)], axis=1)
        # Back to x's shape, read at run time; allowzero keeps zero-sized dims literal.
        b.emit("reshape", [rows, b.emit1("shape", [x])], n.outputs, allowzero=True)
    handler.__name__ = f"onnx_to_{op}_coerced_2d"
    return handler


def register(reg):
    for onnx_op, (op, attrs, since) in _POINTWISE.items():
        reg.insert(onnx_op, _pointwise(op, attrs), since=since)
    for onnx_op, op in (("Softmax", "softmax"), ("LogSoftmax", "log_softmax"), ("Hardmax", "hardmax")):
        reg.insert(onnx_op, _along_axis_1(op), since=1)
        reg.insert(onnx_op, _along_axis_13(op), since=13)
