"""ONNX -> claw: RNN, GRU, LSTM (opset 7 on; 14 added `layout`, 22 only bfloat16).

The claw ops are time-major, so `layout=1` (batch-major X, initial states and outputs) becomes transposes
around the op. Activation names are matched case-insensitively and written out for every direction;
activation_alpha / activation_beta are consumed in activation order, only by the functions that take them,
as onnxruntime does, and a function whose value is not listed gets its ONNX operator's default (Affine 1, 0;
LeakyRelu 0.01; ThresholdedRelu 1; ScaledTanh 1, 1; HardSigmoid 0.2, 0.5; Elu 1). (onnxruntime uses 0 for
Affine, ThresholdedRelu and ScaledTanh values that are not listed.)
"""
from __future__ import annotations

from ..builder import Unsupported

_NAMES = {"relu": "relu", "tanh": "tanh", "sigmoid": "sigmoid", "affine": "affine", "leakyrelu": "leaky_relu",
          "thresholdedrelu": "thresholded_relu", "scaledtanh": "scaled_tanh", "hardsigmoid": "hard_sigmoid",
          "elu": "elu", "softsign": "softsign", "softplus": "softplus"}
# claw activation -> (alpha default, beta default); None: the function takes no such value
_PARAMS = {"affine": (1.0, 0.0), "leaky_relu": (0.01, None), "thresholded_relu": (1.0, None),
           "scaled_tanh": (1.0, 1.0), "hard_sigmoid": (0.2, 0.5), "elu": (1.0, None)}
_DEFAULTS = {"rnn": ["Tanh"], "gru": ["Sigmoid", "Tanh"], "lstm": ["Sigmoid", "Tanh", "Tanh"]}
_DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
_STATE_INPUTS = {"rnn": (5,), "gru": (5,), "lstm": (5, 6)}


def _activations(op: str, n, directions: int) -> tuple[list[str], list[float], list[float]]:
    """Full per-direction activation names with their alpha and beta (0 where unused)."""
    given = list(n.attr("activations", None) or _DEFAULTS[op] * directions)
    per = len(_DEFAULTS[op])
    if len(given) == per and directions == 2:
        given = given * 2  # one direction's worth serves both
    if len(given) != per * directions:
        raise Unsupported(f"{len(given)} activations for {directions} direction(s) of {per} function(s)")
    alphas, betas = iter(n.attr("activation_alpha", None) or []), iter(n.attr("activation_beta", None) or [])
    names, out_a, out_b = [], [], []
    for name in given:
        claw = _NAMES.get(str(name).lower())
        if claw is None:
            raise Unsupported(f"activation {name!r}")
        a_default, b_default = _PARAMS.get(claw, (None, None))
        names.append(claw)
        out_a.append(0.0 if a_default is None else float(next(alphas, a_default)))
        out_b.append(0.0 if b_default is None else float(next(betas, b_default)))
    return names, out_a, out_b


def _hidden_size(b, n) -> int:
    if n.attr("hidden_size") is not None:
        return int(n.attr("hidden_size"))
    r_shape = b.shape(n.inputs[2])
    if r_shape is not None and len(r_shape) == 3 and isinstance(r_shape[2], int):
        return r_shape[2]
    raise Unsupported(f"{n.op_type} without hidden_size needs R's shape at conversion time")


def _to_time_major(b, name: str) -> str:
    return b.emit1("transpose", [name], perm=[1, 0, 2]) if name else name


def _recurrent(op: str):
    def handler(b, n):
        direction = str(n.attr("direction", "forward"))
        if direction not in _DIRECTIONS:
            raise Unsupported(f"direction {direction!r}")
        names, alphas, betas = _activations(op, n, _DIRECTIONS[direction])
        attrs = dict(hidden_size=_hidden_size(b, n), direction=direction, activations=names,
                     activation_alpha=alphas, activation_beta=betas, clip=float(n.attr("clip", 0.0) or 0.0))
        if op == "gru":
            attrs["linear_before_reset"] = bool(n.attr("linear_before_reset", 0))
        if op == "lstm":
            attrs["input_forget"] = bool(n.attr("input_forget", 0))
        layout = int(n.attr("layout", 0))
        if layout not in (0, 1):
            raise Unsupported(f"layout {layout}")
        if layout == 0:
            b.emit(op, n.inputs, n.outputs, **attrs)
            return
        # Batch-major: X and the initial states come in as [batch, ...], outputs go out as [batch, ...].
        inputs = list(n.inputs)
        for i in (0, *_STATE_INPUTS[op]):
            if i < len(inputs):
                inputs[i] = _to_time_major(b, inputs[i])
        outs = b.emit(op, inputs, [b.fresh(op) if o else "" for o in n.outputs], **attrs)
        for k, (tmp, final) in enumerate(zip(outs, n.outputs)):
            if final:
                b.emit("transpose", [tmp], [final], perm=[2, 0, 1, 3] if k == 0 else [1, 0, 2])
    handler.__name__ = f"onnx_to_{op}"
    return handler


def register(reg):
    for onnx_op, op in (("RNN", "rnn"), ("GRU", "gru"), ("LSTM", "lstm")):
        reg.insert(onnx_op, _recurrent(op), since=7)
