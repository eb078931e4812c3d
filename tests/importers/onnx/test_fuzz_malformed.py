"""Corrupted ONNX files: import and first run either work or fail with a clawdbot error naming the file —
never a raw exception from deep inside, never a hang (the brief's bad-input rule, checked by fuzzing)."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import graph_model
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

from clawdbot.errors import ClawError
from clawdbot.importers.onnx import import_onnx
from clawdbot.session import Session
from clawdbot.tools.inputs import random_inputs


def small_cnn() -> bytes:
    """Conv, pooling, reshape, gemm, softmax: enough handlers and attribute kinds to corrupt meaningfully."""
    rng = np.random.default_rng(0)
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="relu"),
             helper.make_node("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Shape", ["p"], ["s"], name="shape"),
             helper.make_node("Flatten", ["p"], ["f"], name="flatten", axis=1),
             helper.make_node("Gemm", ["f", "fc", "fb"], ["g"], name="fc", transB=1),
             helper.make_node("Softmax", ["g"], ["y"], name="softmax", axis=-1)]
    consts = {"w": rng.standard_normal((4, 3, 3, 3)).astype(np.float32),
              "b": rng.standard_normal(4).astype(np.float32),
              "fc": rng.standard_normal((5, 4 * 4 * 4)).astype(np.float32),
              "fb": rng.standard_normal(5).astype(np.float32)}
    model = graph_model(nodes, {"x": np.zeros((1, 3, 8, 8), np.float32)}, consts, outputs=("y",), opset=17,
                        input_shapes={"x": ["batch", 3, 8, 8]})
    return model.SerializeToString()


MODEL = small_cnn()


def import_and_run(data: bytes, tmp_path) -> None:
    path = tmp_path / "fuzzed.onnx"
    path.write_bytes(data)
    try:
        graph = import_onnx(str(path))
    except ClawError as e:
        assert "fuzzed.onnx" in str(e), f"conversion errors name the file: {e}"
        return
    try:
        sess = Session(graph)
        sess.run(random_inputs(sess.inputs, batch=2))
    except ClawError as e:
        # After conversion the file is behind us: errors name the node, input or output at fault.
        assert any(w in str(e) for w in ("node", "input", "output")), str(e)


def test_the_unfuzzed_model_runs(tmp_path):
    import_and_run(MODEL, tmp_path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, len(MODEL) - 1), st.integers(1, 255)), min_size=1, max_size=4))
def test_flipped_bytes(tmp_path, flips):
    data = bytearray(MODEL)
    for pos, mask in flips:
        data[pos] ^= mask
    import_and_run(bytes(data), tmp_path)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(1, len(MODEL) - 1))
def test_truncated(tmp_path, cut):
    import_and_run(MODEL[:cut], tmp_path)


@pytest.mark.parametrize("edit", ["drop_input", "bad_attr_type", "negative_kernel", "rank_mismatch", "bad_name",
                                  "bad_elem_type"])
def test_structurally_wrong_models(tmp_path, edit):
    """Valid protobuf, wrong model: the error comes at conversion and names the node."""
    model = onnx.load_from_string(MODEL)
    conv = model.graph.node[0]
    if edit == "drop_input":
        del conv.input[1]
    elif edit == "bad_attr_type":
        conv.attribute[0].CopyFrom(helper.make_attribute("pads", "not ints"))
    elif edit == "negative_kernel":
        model.graph.node[2].attribute[0].CopyFrom(helper.make_attribute("kernel_shape", [-2, 2]))
    elif edit == "rank_mismatch":
        model.graph.initializer[0].CopyFrom(onnx.numpy_helper.from_array(np.zeros((4, 3, 3), np.float32), "w"))
    elif edit == "bad_name":  # proto2 strings are not UTF-8-checked: protobuf hands back bytes
        model = onnx.load_from_string(MODEL.replace(b"pool", b"\xf0ool", 1))
    elif edit == "bad_elem_type":
        model.graph.input[0].type.tensor_type.elem_type = 104
    with pytest.raises(ClawError, match=r"(?s)wrong.onnx: .*(conv|pool|Conv|MaxPool|not valid UTF-8|type code 104)"):
        import_and_run_strict(model.SerializeToString(), tmp_path)


def import_and_run_strict(data: bytes, tmp_path) -> None:
    path = tmp_path / "wrong.onnx"
    path.write_bytes(data)
    Session(import_onnx(str(path)))
