"""Weight-only int8/int4 quantization (quant/weights.py, quant/rewrite.py, the *_wq kernels).

The kernels are checked against onnxruntime running the fp32 model whose weights were replaced by their
quantize -> dequantize round trip: the same arithmetic, so the outputs agree to fp32 rounding. Sizes are
issue 6's bars (int8 <= 26 %, int4 <= 15 % of the fp32 .claw file) on ResNet-50 and the BERT encoder.
"""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from claw_testing import ort_run
from onnx import numpy_helper

from clawdbot.converter import ModelConverter
from clawdbot.errors import ClawError
from clawdbot.quant.rewrite import QuantOptions
from clawdbot.quant.weights import dequantize_rows, pack4, quantize_rows, unpack4
from clawdbot.tools import zoo

RNG = np.random.default_rng(6)


# -- one matrix ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cols", [1, 2, 7, 64, 129])
def test_int4_packing_round_trips(cols):
    q = RNG.integers(0, 16, size=(5, cols)).astype(np.uint8)
    packed = pack4(q)
    assert packed.shape == (5, (cols + 1) // 2)
    np.testing.assert_array_equal(unpack4(packed, cols), q)


@pytest.mark.parametrize("bits, group", [(8, 0), (8, 16), (4, 32), (4, 64), (4, 0)])
def test_round_trip_error_is_at_most_half_a_step(bits, group):
    w = (RNG.standard_normal((24, 128)) * RNG.uniform(0.01, 3, size=(24, 1))).astype(np.float32)
    w[3, :40] = 0.0                                  # zero must come back exactly
    m = quantize_rows(w, bits, group)
    back = dequantize_rows(m)
    g = m.group_size
    step = np.repeat(m.scale, g, axis=1)
    assert np.all(np.abs(back - w) <= step / 2 + 1e-6 * np.abs(w))
    assert np.all(back[3, :40] == 0)
    assert m.q.dtype == (np.int8 if bits == 8 else np.uint8)
    groups = 24 * 128 // g
    assert m.nbytes == 24 * 128 * bits // 8 + groups * 4 + (groups if bits == 4 else 0)


def test_a_group_that_does_not_divide_the_row_falls_back_to_one_group():
    m = quantize_rows(np.ones((2, 30), np.float32), 4, 32)
    assert m.group_size == 30 and m.scale.shape == (2, 1)


# -- the kernels against onnxruntime on the round-tripped fp32 model ------------------------------------------
def _rows_of(op: str, node: onnx.NodeProto, w: np.ndarray) -> tuple[np.ndarray, callable]:
    """The matrix the rewrite quantizes for `node`'s weight `w`, and how to put it back in w's layout."""
    if op == "Conv":
        return w.reshape(w.shape[0], -1), lambda r: r.reshape(w.shape)
    if op == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
        return w, lambda r: r
    if op == "Gather":
        return w, lambda r: r
    return w.T, lambda r: r.T                      # MatMul, Gemm without transB: rows are output columns


def round_tripped(model: onnx.ModelProto, options: QuantOptions) -> onnx.ModelProto:
    """`model` with every weight the rewrite would quantize replaced by its quantize -> dequantize trip."""
    model = onnx.ModelProto.FromString(model.SerializeToString())
    inits = {t.name: t for t in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type not in ("MatMul", "Gemm", "Conv", "Gather"):
            continue
        name = node.input[0] if node.op_type == "Gather" else node.input[1]
        if name not in inits:
            continue
        w = numpy_helper.to_array(inits[name])
        if w.dtype != np.float32 or w.size < options.min_elements or w.ndim not in (2, 4):
            continue
        rows, back = _rows_of(node.op_type, node, w)
        fake = back(dequantize_rows(quantize_rows(rows, options.bits, options.group))).astype(np.float32)
        inits[name].CopyFrom(numpy_helper.from_array(np.ascontiguousarray(fake), name))
    return model


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small", "bert_encoder"])
@pytest.mark.parametrize("bits", [8, 4])
def test_quantized_models_compute_what_their_dequantized_weights_do(name, bits):
    model = zoo.build(name, **({"num_layers": 2} if name == "bert_encoder" else {}))
    options = QuantOptions(bits=bits, dynamic=False)  # int8 activations change the arithmetic: tested below
    q = ModelConverter(quant_options=options).convert(model)
    assert q.quantization.quantized, "nothing was quantized"
    feeds = zoo.example_inputs(name, batch=2)
    ours = q.session().run(feeds)
    for (k, got), ref in zip(ours.items(), ort_run(round_tripped(model, options), feeds)):
        scale = float(np.ptp(ref)) or 1.0
        assert float(np.max(np.abs(got - ref))) <= 1e-4 * scale, k


def test_grouped_and_depthwise_convs_use_the_whole_dequantized_weight():
    model = zoo.build("mobilenet_v2")
    options = QuantOptions(bits=4, min_elements=64)  # depthwise weights (C x 9) are quantized too
    q = ModelConverter(quant_options=options).convert(model)
    ops = {n.op for n in q.graph.nodes}
    assert "conv" not in ops and "conv_wq" in ops
    feeds = zoo.example_inputs("mobilenet_v2", batch=1)
    got = q.session().run(feeds)["logits"]
    ref = ort_run(round_tripped(model, options), feeds)[0]
    assert float(np.max(np.abs(got - ref))) <= 1e-4 * float(np.ptp(ref))


# -- what the converter makes ----------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "bert_encoder"])
def test_claw_files_shrink_to_issue_6s_bars(tmp_path, name):
    model = zoo.build(name)
    fp32 = ModelConverter().convert(model).save(tmp_path / "fp32.claw").stat().st_size
    for bits, bar in ((8, 0.26), (4, 0.15)):
        size = ModelConverter(quantization_bits=bits).convert(model).save(tmp_path / f"q{bits}.claw").stat().st_size
        assert size <= bar * fp32, f"{name} int{bits}: {size / fp32:.3f} of fp32"


def test_bert_int8_dynamic_keeps_the_output_cosine_above_0_99():
    model = zoo.build("bert_encoder", num_layers=2)
    feeds = zoo.example_inputs("bert_encoder", batch=2)
    ref = ModelConverter().convert(model).session().run(feeds)
    got = ModelConverter(quantization_bits=8).convert(model).session().run(feeds)
    for k in ref:
        a, b = ref[k].ravel().astype(np.float64), got[k].ravel().astype(np.float64)
        assert a @ b / np.linalg.norm(a) / np.linalg.norm(b) >= 0.99, k


def test_kept_nodes_say_why_and_keep_fp32_is_honoured():
    model = zoo.build("squeezenet1_1")
    first = "/features/0/Conv"
    q = ModelConverter(quant_options=QuantOptions(bits=8, keep_fp32=(first,))).convert(model)
    assert q.quantization.kept[first] == "kept in fp32 (--keep-fp32)"
    assert first not in q.quantization.quantized
    assert next(n for n in q.graph.nodes if n.name == first).op == "conv"
    assert q.graph.metadata["quantization"]["bits"] == 8


def test_a_saved_quantized_model_loads_and_runs_the_same(tmp_path):
    import clawdbot
    q = ModelConverter(quantization_bits=4).convert(zoo.build("squeezenet1_1"))
    feeds = zoo.example_inputs("squeezenet1_1", batch=1)
    np.testing.assert_array_equal(clawdbot.load(q.save(tmp_path / "q.claw")).run(feeds)["logits"],
                                  q.session().run(feeds)["logits"])


@pytest.mark.parametrize("kwargs, message", [
    ({"quantization_bits": 3}, "choose 8 or 4"),
    ({"quantization_bits": 8, "quant_options": QuantOptions(bits=4)}, "quant_options.bits=4"),
])
def test_bad_quantization_settings_are_refused(kwargs, message):
    with pytest.raises(ClawError, match=message):
        ModelConverter(**kwargs)
