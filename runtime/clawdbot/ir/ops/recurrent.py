"""claw ops: recurrent layers — rnn (Elman), gru and lstm, with ONNX's weight layout and gate order.

Canonical form: time-major. x is [seq, batch, input]; outputs are y [seq, directions, batch, hidden] and the
final states [directions, batch, hidden]. Importers transpose batch-major graphs around the op. Weights keep
ONNX's packing: w [directions, gates * hidden, input], r [directions, gates * hidden, hidden], b [directions,
2 * gates * hidden] (input biases then recurrent biases), gate order i, o, f, c (lstm) and z, r, h (gru); lstm
peepholes p [directions, 3 * hidden] in the order i, o, f.

`activations` lists the cell's functions for every direction in turn (rnn: f; gru: f, g; lstm: f, g, h) with
one alpha and one beta per entry (unused ones are 0); [] means the defaults (tanh; sigmoid, tanh; sigmoid, tanh,
tanh). Entries past a batch entry's sequence length leave its state unchanged and its y rows zero.
"""
from __future__ import annotations

from ..dtypes import FLOAT_TYPES
from ..graph import Dim, TensorType
from .registry import Attr, InferenceError, register

ACTIVATIONS = ("relu", "tanh", "sigmoid", "affine", "leaky_relu", "thresholded_relu", "scaled_tanh",
               "hard_sigmoid", "elu", "softsign", "softplus")
DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
CELL_FUNCTIONS = {"rnn": 1, "gru": 2, "lstm": 3}
LEN_TYPES = frozenset({"int32", "int64"})


def _attrs(**extra: Attr) -> dict[str, Attr]:
    return {"hidden_size": Attr(int, doc="units per direction"),
            "direction": Attr(str, "forward", "forward, reverse or bidirectional"),
            "activations": Attr(list, [], "functions per direction in turn ([]: the defaults); one of "
                                          + ", ".join(ACTIVATIONS)),
            "activation_alpha": Attr(list, [], "one alpha per activations entry"),
            "activation_beta": Attr(list, [], "one beta per activations entry"),
            "clip": Attr(float, 0.0, "when > 0, activation inputs are clipped to [-clip, clip]"),
            **extra}


def _check_dims(ctx, i: int, want: tuple[Dim, ...], what: str) -> None:
    if not ctx.has_input(i) or ctx.shape(i) is None:
        return
    shape = ctx.shape(i)
    if len(shape) != len(want):
        raise InferenceError(f"{what} must be {len(want)}-D, got shape {list(shape)}")
    for got, exp in zip(shape, want):
        if isinstance(got, int) and isinstance(exp, int) and got != exp:
            raise InferenceError(f"{what} has shape {list(shape)}, expected {list(want)}")


def _recurrent(ctx, *, state_inputs: tuple[int, ...], peephole: int | None = None) -> list[TensorType]:
    op = ctx.node.op
    x = ctx.type(0)
    if x.dtype not in FLOAT_TYPES:
        raise InferenceError(f"{op} needs a float input, got {x.dtype}")
    for i in (1, 2, 3, *state_inputs, *((peephole,) if peephole else ())):
        if ctx.has_input(i) and ctx.dtype(i) != x.dtype:
            raise InferenceError(f"input {i} has dtype {ctx.dtype(i)}, x has {x.dtype}")
    if ctx.has_input(4) and ctx.dtype(4) not in LEN_TYPES:
        raise InferenceError(f"sequence lengths must be int32 or int64, got {ctx.dtype(4)}")
    direction = ctx.attr("direction")
    if direction not in DIRECTIONS:
        raise InferenceError(f"direction {direction!r}; expected one of {', '.join(DIRECTIONS)}")
    dirs, hidden, gates = DIRECTIONS[direction], ctx.attr("hidden_size"), GATES[op]
    if hidden < 1:
        raise InferenceError(f"hidden_size must be positive, got {hidden}")
    acts = ctx.attr("activations")
    if acts and len(acts) != dirs * CELL_FUNCTIONS[op]:
        raise InferenceError(f"{len(acts)} activations for {dirs} direction(s) of {CELL_FUNCTIONS[op]}")
    unknown = sorted(set(acts) - set(ACTIVATIONS))
    if unknown:
        raise InferenceError(f"unknown activation(s) {unknown}")
    for name in ("activation_alpha", "activation_beta"):
        if len(ctx.attr(name)) not in (0, len(acts)):
            raise InferenceError(f"{name} needs one entry per activation")

    if x.shape is not None and len(x.shape) != 3:
        raise InferenceError(f"x must be [seq, batch, input], got shape {list(x.shape)}")
    seq, batch, size = x.shape if x.shape is not None else (None, None, None)
    _check_dims(ctx, 1, (dirs, gates * hidden, size), "w")
    _check_dims(ctx, 2, (dirs, gates * hidden, hidden), "r")
    _check_dims(ctx, 3, (dirs, 2 * gates * hidden), "b")
    _check_dims(ctx, 4, (batch,), "sequence lengths")
    for i in state_inputs:
        _check_dims(ctx, i, (dirs, batch, hidden), f"initial state (input {i})")
    if peephole:
        _check_dims(ctx, peephole, (dirs, 3 * hidden), "p")
    state = TensorType(x.dtype, (dirs, batch, hidden))
    return [TensorType(x.dtype, (seq, dirs, batch, hidden)), state, state]


@register("rnn", "recurrent", "Elman RNN: h_t = f(x_t w^T + h_{t-1} r^T + wb + rb). Inputs: x, w, r, optional "
          "b, sequence lengths [batch], initial_h. Outputs: y, final h.",
          inputs=(3, 6), outputs=(1, 2), attrs=_attrs())
def _rnn(ctx):
    return _recurrent(ctx, state_inputs=(5,))[:2]


@register("gru", "recurrent", "GRU: z, r = f(x w_zr^T + h r_zr^T + b_zr); n = g(x w_h^T + (r * h) r_h^T + rb_h "
          "+ wb_h) (linear_before_reset: g(x w_h^T + r * (h r_h^T + rb_h) + wb_h)); h = (1 - z) * n + z * h. "
          "Inputs: x, w, r, optional b, sequence lengths, initial_h. Outputs: y, final h.",
          inputs=(3, 6), outputs=(1, 2),
          attrs=_attrs(linear_before_reset=Attr(bool, False, "apply the reset gate after the recurrent matmul")))
def _gru(ctx):
    return _recurrent(ctx, state_inputs=(5,))[:2]


@register("lstm", "recurrent", "LSTM: i, f = f(x w^T + h r^T + b + p * c); c = f * c + i * g(x w_c^T + h r_c^T + "
          "b_c); o = f(x w_o^T + h r_o^T + b_o + p_o * c); h = o * h(c). Inputs: x, w, r, optional b, sequence "
          "lengths, initial_h, initial_c, p. Outputs: y, final h, final c.",
          inputs=(3, 8), outputs=(1, 3),
          attrs=_attrs(input_forget=Attr(bool, False, "couple the gates: f = 1 - i")))
def _lstm(ctx):
    return _recurrent(ctx, state_inputs=(5, 6), peephole=7)
