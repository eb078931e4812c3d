"""ONNX RNN, GRU and LSTM through clawdbot, compared with onnxruntime on one-node models.

Directions (forward, reverse, bidirectional), layout 0/1, bias, initial states, sequence_lens, every subset
of outputs, clip, each alternative activation with explicit alpha/beta, GRU linear_before_reset, LSTM
peepholes and input_forget, float32 / float64 / float16. onnxruntime has no float16 or float64 recurrences
(float16 is compared with the float32 model, float64 with the onnx reference evaluator) and no layout=1
(batch-major models are compared with their time-major twin). conftest.py sets CLAWDBOT_CHECK=1, so kernel
output dtypes/shapes are checked too.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, one_node_model, ort_run, reference_run
from onnx import helper

import clawdbot
from clawdbot.errors import UnsupportedOpsError

RNG = np.random.default_rng(3)
GATES = {"RNN": 1, "GRU": 3, "LSTM": 4}
SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6
ALL_OUTPUTS = {"RNN": ["y", "y_h"], "GRU": ["y", "y_h"], "LSTM": ["y", "y_h", "y_c"]}


def model(op: str, inputs: dict[str, np.ndarray | None], outputs: list[str], opset: int = 22,
          **attrs) -> onnx.ModelProto:
    """One-node model with hidden_size HIDDEN; inputs given as None are omitted (trailing ones dropped)."""
    names = list(inputs)
    while names and inputs[names[-1]] is None:
        names.pop()
    return one_node_model(op, {n: inputs[n] for n in names}, outputs=outputs, opset=opset, hidden_size=HIDDEN,
                          **attrs)


def make_inputs(op: str, directions: int = 1, *, bias=True, lens=False, initial=False, peepholes=False,
                layout=0, dtype="float32") -> dict[str, np.ndarray | None]:
    g = GATES[op]

    def r(*shape, scale=0.5):
        return (RNG.standard_normal(shape) * scale).astype(dtype)

    x = r(SEQ, BATCH, INPUT, scale=1.0) if layout == 0 else r(BATCH, SEQ, INPUT, scale=1.0)
    state = (lambda: r(directions, BATCH, HIDDEN) if layout == 0 else r(BATCH, directions, HIDDEN))
    inputs = {"x": x, "w": r(directions, g * HIDDEN, INPUT), "r": r(directions, g * HIDDEN, HIDDEN),
              "b": r(directions, 2 * g * HIDDEN) if bias else None,
              "lens": np.array([SEQ, 2, 4][:BATCH], np.int32) if lens else None,
              "h0": state() if initial else None}
    if op == "LSTM":
        inputs["c0"] = state() if initial else None
        inputs["p"] = r(directions, 3 * HIDDEN) if peepholes else None
    return inputs


def oracle(m: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """onnxruntime's outputs. It has no batch-major (layout=1) kernels, so such a model is run as its time-major
    twin on transposed feeds, and the outputs are transposed back: that is layout=1's definition."""
    node = m.graph.node[0]
    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    if attrs.pop("layout", 0) == 0:
        return ort_run(m, feeds)
    attrs.pop("hidden_size")
    to_time = {n: v.transpose(1, 0, 2) if n in ("x", "h0", "c0") else v for n, v in feeds.items()}
    twin = model(node.op_type, {n: to_time.get(n) for n in node.input}, list(node.output), **attrs)
    outs = ort_run(twin, to_time)
    return [o.transpose(2, 0, 1, 3) if o.ndim == 4 else o.transpose(1, 0, 2) for o in outs]


check = partial(assert_matches_ort, rtol=1e-5, atol=1e-5, oracle=oracle)


@pytest.mark.parametrize("op", sorted(GATES))
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("extras", ["plain", "bias+initial", "bias+lens+initial"])
def test_directions_layouts_and_optional_inputs(op, direction, layout, extras):
    dirs = 2 if direction == "bidirectional" else 1
    inputs = make_inputs(op, dirs, bias="bias" in extras, lens="lens" in extras, initial="initial" in extras,
                         layout=layout)
    check(model(op, inputs, ALL_OUTPUTS[op], direction=direction, layout=layout), inputs)


@pytest.mark.parametrize("op", sorted(GATES))
def test_output_subsets(op):
    inputs = make_inputs(op, 2, lens=True)
    outs = ALL_OUTPUTS[op]
    for chosen in ([outs[0]], ["", outs[1]], ["", "", "y_c"] if op == "LSTM" else [outs[0]]):
        check(model(op, inputs, chosen, direction="bidirectional"), inputs)
    for layout in (0, 1):  # unused outputs with the batch-major transposes
        lay = make_inputs(op, 1, layout=layout)
        check(model(op, lay, ["", outs[1]], layout=layout), lay)


@pytest.mark.parametrize("op", sorted(GATES))
@pytest.mark.parametrize("opset", [7, 14])
def test_older_opsets(op, opset):
    inputs = make_inputs(op, 2, initial=True)
    check(model(op, inputs, ALL_OUTPUTS[op], opset=opset, direction="bidirectional"), inputs)


@pytest.mark.parametrize("op", sorted(GATES))
def test_clip(op):
    inputs = make_inputs(op, 2, lens=True)
    inputs["x"] *= 4  # pre-activations well beyond the clip
    check(model(op, inputs, ALL_OUTPUTS[op], direction="bidirectional", clip=0.7), inputs)


# activation -> (alpha, beta) given explicitly (None: takes no such value)
ACTIVATIONS = {"Relu": (None, None), "Tanh": (None, None), "Sigmoid": (None, None), "Affine": (0.7, 0.2),
               "LeakyRelu": (0.2, None), "ThresholdedRelu": (0.3, None), "ScaledTanh": (1.5, 0.6),
               "HardSigmoid": (0.3, 0.4), "Elu": (0.8, None), "Softsign": (None, None), "Softplus": (None, None)}


def activation_attrs(names: list[str]) -> dict:
    alphas = [ACTIVATIONS[n][0] for n in names if ACTIVATIONS[n][0] is not None]
    betas = [ACTIVATIONS[n][1] for n in names if ACTIVATIONS[n][1] is not None]
    attrs = {"activations": names}
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


@pytest.mark.parametrize("act", sorted(ACTIVATIONS))
def test_rnn_activations(act):
    inputs = make_inputs("RNN", 2, lens=True)
    attrs = activation_attrs([act, "Tanh"])  # each direction has its own
    check(model("RNN", inputs, ["y", "y_h"], direction="bidirectional", **attrs), inputs)


@pytest.mark.parametrize("acts", [["HardSigmoid", "Softsign"], ["Sigmoid", "Relu"], ["LeakyRelu", "Elu"],
                                  ["Affine", "ScaledTanh"]])
def test_gru_activations(acts):
    inputs = make_inputs("GRU", 1)
    check(model("GRU", inputs, ["y", "y_h"], **activation_attrs(acts)), inputs)


@pytest.mark.parametrize("acts", [["HardSigmoid", "Tanh", "Softsign"], ["Sigmoid", "Elu", "Relu"],
                                  ["Sigmoid", "Softplus", "ThresholdedRelu"]])
def test_lstm_activations(acts):
    inputs = make_inputs("LSTM", 2)
    attrs = activation_attrs(acts + ["Sigmoid", "Tanh", "Tanh"])
    check(model("LSTM", inputs, ALL_OUTPUTS["LSTM"], direction="bidirectional", **attrs), inputs)


def test_activation_names_are_case_insensitive():
    inputs = make_inputs("RNN", 1)
    onnxruntime_spelling = model("RNN", inputs, ["y"], activations=["Relu"])
    check(model("RNN", inputs, ["y"], activations=["relu"]), inputs,
          oracle=lambda _, feeds: ort_run(onnxruntime_spelling, feeds))


@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("lbr", [0, 1])
def test_gru_linear_before_reset(direction, lbr):
    dirs = 2 if direction == "bidirectional" else 1
    inputs = make_inputs("GRU", dirs, lens=True, initial=True)
    check(model("GRU", inputs, ["y", "y_h"], direction=direction, linear_before_reset=lbr), inputs)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("peepholes", [False, True])
@pytest.mark.parametrize("input_forget", [0, 1])
def test_lstm_peepholes_and_input_forget(direction, peepholes, input_forget):
    dirs = 2 if direction == "bidirectional" else 1
    inputs = make_inputs("LSTM", dirs, lens=True, initial=True, peepholes=peepholes)
    m = model("LSTM", inputs, ALL_OUTPUTS["LSTM"], direction=direction, input_forget=input_forget)
    check(m, inputs)


@pytest.mark.parametrize("op", sorted(GATES))
def test_float64(op):
    """onnxruntime has no float64 recurrences: the onnx reference evaluator (default activations, no
    sequence_lens) is the oracle, to float64 precision."""
    inputs = make_inputs(op, 2, initial=True, peepholes=True, dtype="float64")
    m = model(op, inputs, ALL_OUTPUTS[op], direction="bidirectional")
    check(m, inputs, oracle=reference_run, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("op", sorted(GATES))
def test_float16_against_float32(op):
    inputs = make_inputs(op, 2, lens=True, initial=True, dtype="float16")
    m = model(op, inputs, ALL_OUTPUTS[op], direction="bidirectional")
    check(m, inputs, cast_for_ort=("float16", "float32"), rtol=2e-3, atol=2e-3)


def test_hidden_size_from_weights_and_dynamic_sequence():
    """Without hidden_size the weights' shape gives it; the sequence and batch dims may be symbolic."""
    inputs = make_inputs("LSTM", 1)
    with_size = model("LSTM", inputs, ALL_OUTPUTS["LSTM"])
    without = model("LSTM", inputs, ALL_OUTPUTS["LSTM"])
    del without.graph.node[0].attribute[:]
    for m in (with_size, without):
        x_dims = m.graph.input[0].type.tensor_type.shape.dim
        x_dims[0].dim_param, x_dims[1].dim_param = "seq", "batch"
    for feeds in (inputs, dict(inputs, x=inputs["x"][:2, :1])):
        check(without, feeds, oracle=lambda _, f: ort_run(with_size, f))


def test_unknown_activation_is_unsupported():
    inputs = make_inputs("RNN", 1)
    with pytest.raises(UnsupportedOpsError, match="rnn_node"):
        clawdbot.load(model("RNN", inputs, ["y"], activations=["Swish"]))
