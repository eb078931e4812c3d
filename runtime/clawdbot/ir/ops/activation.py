"""claw ops: activations (pointwise non-linearities) and the softmax-like ops.

Pointwise activations keep their input's type. Their constants (alpha, beta, ...) are float attributes applied
in the input's precision. softmax / log_softmax / hardmax normalise along ONE axis; frameworks that normalise a
flattened block of trailing axes (ONNX before opset 13) are translated by their importer.
"""
from __future__ import annotations

from ..dtypes import FLOAT_TYPES, NUMERIC_TYPES
from ..graph import TensorType
from ._shapes import broadcast, norm_axis
from .registry import Attr, InferenceError, register

_SIGNED_NUMERIC = FLOAT_TYPES | {"int8", "int16", "int32", "int64"}


def _pointwise(ctx, allowed=FLOAT_TYPES):
    t = ctx.type(0)
    if t.dtype not in allowed:
        raise InferenceError(f"{ctx.node.op} does not take {t.dtype}; it takes {', '.join(sorted(allowed))}")
    return [t]


def _activation(name: str, doc: str, attrs: dict[str, Attr] | None = None, allowed=FLOAT_TYPES) -> None:
    register(name, "activation", doc, attrs=attrs)(lambda ctx: _pointwise(ctx, allowed))


def _alpha(default: float, doc: str = "") -> dict[str, Attr]:
    return {"alpha": Attr(float, default, doc)}


_activation("relu", "y = max(x, 0).", allowed=_SIGNED_NUMERIC)
_activation("leaky_relu", "y = x if x >= 0 else alpha * x.", _alpha(0.01, "slope for x < 0"))
_activation("sigmoid", "y = 1 / (1 + exp(-x)).")
_activation("hard_sigmoid", "y = clamp(alpha * x + beta, 0, 1).",
            {"alpha": Attr(float, 0.2), "beta": Attr(float, 0.5)})
_activation("hard_swish", "y = x * clamp(x / 6 + 1/2, 0, 1).")
_activation("tanh", "y = tanh(x).")
_activation("elu", "y = x if x > 0 else alpha * (exp(x) - 1).", _alpha(1.0))
_activation("selu", "y = gamma * (x if x > 0 else alpha * (exp(x) - 1)).",
            {"alpha": Attr(float, 1.67326319217681884765625), "gamma": Attr(float, 1.05070102214813232421875)})
_activation("celu", "y = max(0, x) + min(0, alpha * (exp(x / alpha) - 1)).", _alpha(1.0))
_activation("gelu", "y = x * Phi(x): approximate='none' uses erf, 'tanh' the tanh approximation "
            "0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))).",
            {"approximate": Attr(str, "none", "'none' or 'tanh'")})
_activation("softplus", "y = ln(1 + exp(x)), computed without overflow.")
_activation("softsign", "y = x / (1 + |x|).")
_activation("mish", "y = x * tanh(softplus(x)).")
_activation("swish", "y = x * sigmoid(alpha * x) (SiLU for alpha = 1).", _alpha(1.0))
_activation("thresholded_relu", "y = x if x > alpha else 0.", _alpha(1.0, "threshold"))
_activation("shrink", "y = x + bias if x < -lambd, x - bias if x > lambd, else 0.",
            {"lambd": Attr(float, 0.5), "bias": Attr(float, 0.0)}, allowed=NUMERIC_TYPES)


@register("prelu", "activation", "y = x if x >= 0 else slope * x; slope broadcasts against x.", inputs=(2, 2))
def _prelu(ctx):
    x, slope = ctx.type(0), ctx.type(1)
    _pointwise(ctx, _SIGNED_NUMERIC)
    if slope.dtype != x.dtype:
        raise InferenceError(f"slope dtype {slope.dtype} differs from x dtype {x.dtype}")
    return [TensorType(x.dtype, broadcast(x.shape, slope.shape))]


def _along_axis(ctx):
    t = ctx.type(0)
    if t.dtype not in FLOAT_TYPES:
        raise InferenceError(f"{ctx.node.op} does not take {t.dtype}")
    if t.rank is not None:
        if t.rank == 0:
            raise InferenceError(f"{ctx.node.op} needs an input of rank >= 1")
        norm_axis(ctx.attr("axis"), t.rank)
    return [t]


_AXIS = {"axis": Attr(int, -1, "the axis normalised over (negative counts from the back)")}
for _name, _doc in (("softmax", "y = exp(x) / sum(exp(x)) along `axis` (max-shifted for stability)."),
                    ("log_softmax", "y = x - log(sum(exp(x))) along `axis` (max-shifted for stability)."),
                    ("hardmax", "y = 1 at the first maximum along `axis`, 0 elsewhere.")):
    register(_name, "activation", _doc, attrs=_AXIS)(_along_axis)
