"""The quantization report (quant/report.py, `claw quant-report`).

The "quantized" models here are the fp32 graph with its weights rounded to an 8-bit grid per tensor (the same
ops, other weights), so the expected errors are known without depending on the quantizer's choices; one test
runs the real quantizer's gemm rewrite (matmul_wq + add), which the report must treat as one layer.
"""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from claw_testing import one_node_model

from clawdbot.cli import main
from clawdbot.converter import ClawModel, ModelConverter
from clawdbot.errors import ClawError
from clawdbot.quant.report import compare, load_feeds
from clawdbot.quant.rewrite import QuantOptions, quantize_weights
from clawdbot.tools import zoo

BAD = "features.6.expand3x3.weight"   # a conv in the middle of SqueezeNet, perturbed far beyond rounding


@pytest.fixture(scope="module")
def fp32():
    return ModelConverter().convert(zoo.build("squeezenet1_1")).graph


@pytest.fixture(scope="module")
def feeds():
    return [zoo.example_inputs("squeezenet1_1", batch=2, seed=i) for i in range(2)]


def rounded(graph, bad: str | None = None):
    """`graph` with every weight (float constant of rank >= 2) on a per-tensor 8-bit grid; `bad` also gets
    noise of half its standard deviation."""
    consts = dict(graph.constants)
    for name, w in graph.constants.items():
        if w.dtype == np.float32 and w.ndim >= 2:
            step = np.abs(w).max() / 127
            consts[name] = (np.round(w / step) * step).astype(np.float32)
    if bad:
        noise = np.random.default_rng(1).standard_normal(consts[bad].shape) * graph.constants[bad].std() * 0.5
        consts[bad] = (consts[bad] + noise).astype(np.float32)
    return dataclasses.replace(graph, constants=consts)


def test_identical_models_agree_exactly(fp32, feeds):
    r = compare(fp32, fp32, feeds)
    (out,) = r.outputs
    assert (out.name, out.shape) == ("logits", (2, 1000))
    assert out.cosine == 1.0 and out.max_abs_error == 0.0 and out.rel_l2 == 0.0 and out.top1_agreement == 1.0
    assert r.layers == ()  # nothing was rewritten
    assert (r.batches, r.samples) == (2, 4)
    assert r.fp32_bytes == r.quant_bytes == fp32.param_bytes() and r.size_ratio == 1.0


def test_rounded_weights_are_close_and_every_conv_is_a_layer(fp32, feeds):
    r = compare(fp32, rounded(fp32), feeds)
    out = r.outputs[0]
    assert 0.99 < out.cosine < 1.0 and out.max_abs_error > 0 and 0 < out.rel_l2 < 0.2
    convs = [n.name for n in fp32.nodes if n.op == "conv"]
    assert sorted(x.node for x in r.layers) == sorted(convs)
    assert all(x.op == x.quant_op == "conv" and 0.999 < x.own_cosine < 1.0 for x in r.layers)
    errors = [x.own_rel_l2 for x in r.layers]
    assert errors == sorted(errors, reverse=True)


def test_the_most_perturbed_conv_ranks_first(fp32, feeds):
    r = compare(fp32, rounded(fp32, bad=BAD), feeds)
    worst = r.layers[0]
    assert worst.node == "/features/6/expand3x3/Conv" and worst.value == "/features/6/expand3x3/Conv_output_0"
    assert worst.own_rel_l2 > 10 * r.layers[1].own_rel_l2
    # Layers after it inherit its error in total, not in their own: ranking by the own error is what singles it out.
    assert max(x.rel_l2 for x in r.layers[1:]) > worst.rel_l2 / 2
    table = r.format()
    assert "/features/6/expand3x3/Conv" in table.split("layers, worst 10 of 26")[1].splitlines()[2]


def test_labels_give_accuracies(fp32, feeds):
    q = rounded(fp32, bad=BAD)
    plain = compare(fp32, q, feeds, layers=False)
    assert plain.layers == () and plain.fp32_accuracy is None
    # Labels = the fp32 model's classes: fp32 is right every time, the quantized model as often as it agrees.
    labels = np.concatenate([np.argmax(fp32_logits(fp32, f), axis=-1) for f in feeds])
    r = compare(fp32, q, feeds, labels=labels, layers=False)
    assert r.fp32_accuracy == 1.0 and r.quant_accuracy == r.outputs[0].top1_agreement == plain.outputs[0].top1_agreement
    assert "top-1 accuracy (logits): fp32 100.0 %" in r.format()
    with pytest.raises(ClawError, match=r"labels have shape \(3,\) but the batches give \(4,\)"):
        compare(fp32, q, feeds, labels=labels[:3], layers=False)


def fp32_logits(graph, feed):
    from clawdbot.session import Session
    return Session(graph).run(feed)["logits"]


def test_report_is_json(fp32, feeds):
    d = compare(fp32, rounded(fp32), feeds).to_dict()
    back = json.loads(json.dumps(d, allow_nan=False))
    assert back["sizes"] == {"fp32_bytes": fp32.param_bytes(), "quant_bytes": fp32.param_bytes(), "ratio": 1.0}
    assert back["outputs"][0]["shape"] == [2, 1000] and len(back["layers"]) == 26


def test_a_quantized_gemm_is_one_layer_and_is_measured_alone():
    rng = np.random.default_rng(0)
    model = one_node_model("Gemm", {"x": rng.standard_normal((5, 64), dtype=np.float32)},
                           {"w": rng.standard_normal((64, 32), dtype=np.float32),
                            "c": rng.standard_normal(32, dtype=np.float32)})
    fp32 = ModelConverter().convert(model).graph
    quant = quantize_weights(fp32, QuantOptions(bits=4)).graph
    r = compare(fp32, quant, [{"x": rng.standard_normal((5, 64), dtype=np.float32)}])
    (layer,) = r.layers
    assert (layer.value, layer.op, layer.quant_op) == ("y", "gemm", "matmul_wq+add")
    # One node, nothing before it: its own error is its total error, and the output's.
    assert layer.own_rel_l2 == pytest.approx(layer.rel_l2) == pytest.approx(r.outputs[0].rel_l2)
    assert 0 < layer.rel_l2 < 0.2 and r.quant_bytes < r.fp32_bytes / 4


def test_models_with_other_outputs_are_refused(fp32):
    other = dataclasses.replace(fp32, outputs=["/features/1/Relu_output_0"])
    with pytest.raises(ClawError, match="the models' outputs differ"):
        compare(fp32, other, [])


# -- the CLI -------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def model_files(tmp_path_factory, fp32):
    d = tmp_path_factory.mktemp("models")
    zoo.save("squeezenet1_1", d / "fp32.onnx")
    ClawModel(rounded(fp32, bad=BAD)).save(d / "quant.claw")
    return d / "fp32.onnx", d / "quant.claw"


def test_cli_prints_the_table_and_writes_json(tmp_path, model_files, feeds, capsys):
    np.savez(tmp_path / "x.npz", input=np.concatenate([f["input"] for f in feeds]))
    np.save(tmp_path / "labels.npy", np.array([1, 2, 3, 4]))
    out = tmp_path / "report.json"
    assert main(["quant-report", *map(str, model_files), "--inputs", str(tmp_path / "x.npz"), "--batches", "2",
                 "--labels", str(tmp_path / "labels.npy"), "--json", str(out)]) == 0
    text = capsys.readouterr().out
    assert "quantized vs fp32 on 2 batch(es), 4 sample(s)" in text and "logits" in text
    assert "top-1 accuracy (logits)" in text and "/features/6/expand3x3/Conv" in text
    d = json.loads(out.read_text())
    assert d["batches"] == 2 and d["layers"][0]["node"] == "/features/6/expand3x3/Conv"
    assert d["outputs"][0]["fp32_accuracy"] is not None
    assert not list(tmp_path.glob("*.tmp")), "no temp file left behind"


def test_cli_random_inputs(model_files, capsys):
    assert main(["quant-report", *map(str, model_files)]) == 0
    text = capsys.readouterr().out
    assert "inputs: random, 1 batch(es) of 4" in text and "on 1 batch(es), 4 sample(s)" in text


@pytest.mark.parametrize("args, message", [
    (["--inputs", "{tmp}/nope"], "--inputs {tmp}/nope: no such file or folder"),
    (["--inputs", "{tmp}"], "no input.npy for the model's input 'input'"),
    (["--labels", "{tmp}/nope.npy"], "--labels {tmp}/nope.npy: no such file"),
    (["--json", "{tmp}/nope/r.json"], "--json {tmp}/nope/r.json: no such folder {tmp}/nope"),
])
def test_cli_mistakes_are_one_line(tmp_path, model_files, capsys, args, message):
    args = [a.format(tmp=tmp_path) for a in args]
    assert main(["quant-report", *map(str, model_files), *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claw: error:") and message.format(tmp=tmp_path) in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_input_files_split_into_batches(tmp_path, fp32):
    x = np.zeros((5, 3, 224, 224), np.float32)
    np.save(tmp_path / "input.npy", x)
    assert [f["input"].shape[0] for f in load_feeds(tmp_path, fp32)] == [5]           # symbolic batch: one batch
    assert [f["input"].shape[0] for f in load_feeds(tmp_path, fp32, 2)] == [3, 2]
    assert [f["input"].shape[0] for f in load_feeds(tmp_path / "input.npy", fp32, 5)] == [1] * 5
    with pytest.raises(ClawError, match="--batches 6: the inputs hold 5 sample"):
        load_feeds(tmp_path, fp32, 6)
