"""Tests for the benchmark model zoo (clawdbot.tools.zoo).

Every model must build, pass the full ONNX checker, run in onnxruntime at
batch 1 and 2 with sane, input-dependent outputs, and carry the parameter
count of the architecture it imitates. The exporter-style graph patterns the
zoo promises (shape-driven reshapes, decomposed GELU/LayerNorm, HardSwish
variants) are checked too, since the runtime's importer relies on them.
"""

from __future__ import annotations

import os
from collections import Counter

import numpy as np
import onnx
import pytest

ort = pytest.importorskip("onnxruntime")

from clawdbot.tools import zoo  # noqa: E402
from clawdbot.tools.zoo.__main__ import main as zoo_main  # noqa: E402

# torchvision / sentence-transformers figures (BN running stats excluded).
EXPECTED_PARAMS = {
    "resnet50": 25_557_032,
    "mobilenet_v2": 3_504_872,
    "mobilenet_v3_small": 2_542_856,
    "efficientnet_b0": 5_288_548,
    "squeezenet1_1": 1_235_496,
    "bert_encoder": 22_565_376,  # all-MiniLM-L6-v2 without its pooler
}
CNNS = [name for name in zoo.MODELS if name != "bert_encoder"]


def _session(model: onnx.ModelProto, optimize: bool = True) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    # Two cores are shared with other jobs: one thread keeps the suite polite.
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def _output_shape(name: str, batch: int) -> tuple[int, ...]:
    return (batch, 128, 384) if name == "bert_encoder" else (batch, 1000)


@pytest.fixture(scope="module", params=list(zoo.MODELS))
def built(request):
    """(name, model, session), built once per model for all the tests below."""
    model = zoo.build(request.param, seed=0)
    yield request.param, model, _session(model)


# ---------------------------------------------------------------- every model
def test_model_is_valid_onnx(built):
    name, model, _ = built
    onnx.checker.check_model(model, full_check=True)
    assert model.ir_version == 8
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    for value in [*model.graph.input, *model.graph.output]:
        assert value.type.tensor_type.shape.dim[0].dim_param == "batch", value.name
    # Outputs come straight from the last real op, as in an exported graph.
    assert "Identity" not in _ops(model)
    if name != "squeezenet1_1" and name != "bert_encoder":
        # Exporter-faithful: BatchNorm stays a separate node.
        assert any(n.op_type == "BatchNormalization" for n in model.graph.node)
    assert len({n.name for n in model.graph.node}) == len(model.graph.node), "node names must be unique"


def test_parameter_count(built):
    name, model, _ = built
    count = zoo.parameter_count(model)
    assert count == pytest.approx(EXPECTED_PARAMS[name], rel=0.05)


def test_runs_at_batch_1_and_2(built):
    name, _, session = built
    out1 = session.run(None, zoo.example_inputs(name, batch=1, seed=1))[0]
    feeds2 = zoo.example_inputs(name, batch=2, seed=2)
    out2 = session.run(None, feeds2)[0]
    assert out1.shape == _output_shape(name, 1)
    assert out2.shape == _output_shape(name, 2)
    for out in (out1, out2):
        assert out.dtype == np.float32
        assert np.isfinite(out).all()
        assert out.std() > 1e-3
    # Different inputs must give visibly different outputs, not a constant
    # the BN offsets or a collapsed attention would produce.
    assert np.abs(out2[0] - out2[1]).max() > 1e-2 * out2.std()
    assert not np.allclose(out1[0], out2[0], atol=1e-4)
    # Batch rows are independent: row 0 alone gives row 0 of the pair.
    alone = session.run(None, {k: v[:1] for k, v in feeds2.items()})[0]
    np.testing.assert_allclose(alone[0], out2[0], rtol=1e-4, atol=1e-4)


# --------------------------------------------------------------------- API
def test_build_is_deterministic_and_seeded():
    a = zoo.build("squeezenet1_1", seed=0).SerializeToString()
    assert zoo.build("squeezenet1_1", seed=0).SerializeToString() == a
    assert zoo.build("squeezenet1_1", seed=1).SerializeToString() != a


def test_unknown_name_lists_known_models():
    with pytest.raises(ValueError, match="resnet50") as info:
        zoo.build("resnet51")
    assert all(name in str(info.value) for name in zoo.MODELS)
    with pytest.raises(ValueError):
        zoo.example_inputs("resnet51")


def test_save_is_atomic_and_roundtrips(tmp_path):
    target = tmp_path / "sq.onnx"
    target.write_bytes(b"stale")
    assert zoo.save("squeezenet1_1", target, seed=3) == str(target)
    assert onnx.load(str(target)).SerializeToString() == zoo.build("squeezenet1_1", seed=3).SerializeToString()
    assert os.listdir(tmp_path) == ["sq.onnx"], "temporary file left behind"


def test_save_failure_leaves_no_temp_file(tmp_path, monkeypatch):
    with pytest.raises(ValueError):
        zoo.save("nope", tmp_path / "x.onnx")
    target = tmp_path / "keep.onnx"
    target.write_bytes(b"previous")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        zoo.save("squeezenet1_1", target)
    assert os.listdir(tmp_path) == ["keep.onnx"]
    assert target.read_bytes() == b"previous"


def test_image_inputs():
    feeds = zoo.example_inputs("resnet50", batch=3, seed=5)
    assert list(feeds) == ["input"]
    x = feeds["input"]
    assert x.shape == (3, 3, 224, 224) and x.dtype == np.float32
    assert abs(float(x.mean())) < 0.01 and abs(float(x.std()) - 1) < 0.01
    np.testing.assert_array_equal(x, zoo.example_inputs("resnet50", batch=3, seed=5)["input"])


def test_token_inputs():
    feeds = zoo.example_inputs("bert_encoder", batch=8, seed=0)
    ids, mask = feeds["input_ids"], feeds["attention_mask"]
    assert ids.shape == mask.shape == (8, 128)
    assert ids.dtype == mask.dtype == np.int64
    assert ids.min() >= 0 and ids.max() < 30522
    for row in range(8):
        length = int(mask[row].sum())
        assert 0 < length < 128, "every row has some padding"
        assert (mask[row, :length] == 1).all() and (mask[row, length:] == 0).all()
        assert (ids[row, length:] == 0).all()
    assert len(set(mask.sum(axis=1).tolist())) > 1, "padding lengths vary"


def test_cli(tmp_path, capsys):
    assert zoo_main(["--list"]) == 0
    listed = capsys.readouterr().out
    assert all(name in listed for name in zoo.MODELS)
    out = tmp_path / "m.onnx"
    assert zoo_main(["mobilenet_v3_small", "-o", str(out), "--seed", "2"]) == 0
    assert "mobilenet_v3_small" in capsys.readouterr().out
    assert onnx.load(str(out)).SerializeToString() == zoo.build("mobilenet_v3_small", seed=2).SerializeToString()
    with pytest.raises(SystemExit):
        zoo_main(["resnet51", "-o", str(out)])


# ------------------------------------------------------------ graph patterns
def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def _attr(node: onnx.NodeProto, name: str):
    return next(onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name)


def test_cnn_patterns():
    v2 = zoo.build("mobilenet_v2")
    clips = [n for n in v2.graph.node if n.op_type == "Clip"]
    assert len(clips) == 35  # every ReLU6
    init = {t.name: onnx.numpy_helper.to_array(t) for t in v2.graph.initializer}
    assert {(float(init[n.input[1]]), float(init[n.input[2]])) for n in clips} == {(0.0, 6.0)}
    depthwise = [n for n in v2.graph.node if n.op_type == "Conv" and _attr(n, "group") > 1]
    assert len(depthwise) == 17

    eff = zoo.build("efficientnet_b0")
    ops = _ops(eff)
    assert ops["GlobalAveragePool"] == 16 + 1  # one SE per MBConv, plus the head
    assert ops["Sigmoid"] == ops["Mul"]  # SiLU and SE gates, each Sigmoid feeding one Mul

    squeeze = _ops(zoo.build("squeezenet1_1"))
    assert squeeze["Concat"] == 8 and "BatchNormalization" not in squeeze


def test_mobilenet_v3_hardswish_styles_agree():
    """The three ways of writing HardSwish are the same function, same weights."""
    feeds = zoo.example_inputs("mobilenet_v3_small", batch=1)
    outputs = {}
    for style, marker in (("hardsigmoid_mul", None), ("op", "HardSwish"), ("clip", "Clip")):
        model = zoo.build("mobilenet_v3_small", hardswish=style)
        ops = _ops(model)
        assert ops["HardSigmoid"] >= 9  # SE gates are HardSigmoid in every style
        if marker:
            assert ops[marker] > 0
        else:
            assert "HardSwish" not in ops and "Clip" not in ops
        outputs[style] = _session(model).run(None, feeds)[0]
    np.testing.assert_allclose(outputs["op"], outputs["hardsigmoid_mul"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["clip"], outputs["hardsigmoid_mul"], rtol=1e-4, atol=1e-5)
    hs = next(n for n in zoo.build("mobilenet_v3_small").graph.node if n.op_type == "HardSigmoid")
    assert _attr(hs, "alpha") == pytest.approx(1 / 6)  # torch's definition, not ONNX's default 0.2


def test_bert_graph_patterns():
    model = zoo.build("bert_encoder")
    ops = _ops(model)
    assert ops["LayerNormalization"] == 13 and ops["Softmax"] == 6 and ops["Erf"] == 6
    producers = _producers(model)
    reshapes = [n for n in model.graph.node if n.op_type == "Reshape"]
    assert len(reshapes) == 6 * 4  # Q, K, V split and context merge per layer
    for node in reshapes:
        # Shape-driven: Reshape <- Concat <- Unsqueeze <- Gather <- Shape.
        concat = producers[node.input[1]]
        assert concat.op_type == "Concat"
        dynamic = [producers[i] for i in concat.input if i in producers]
        assert len(dynamic) == 2 and all(u.op_type == "Unsqueeze" for u in dynamic)
        for unsqueeze in dynamic:
            gather = producers[unsqueeze.input[0]]
            assert gather.op_type == "Gather" and producers[gather.input[0]].op_type == "Shape"
    softmax = next(n for n in model.graph.node if n.op_type == "Softmax")
    assert _attr(softmax, "axis") == -1
    # The mask path: Unsqueeze -> Cast -> Sub -> Mul feeding the score Adds.
    cast = next(n for n in model.graph.node if n.op_type == "Cast")
    assert producers[cast.input[0]].op_type == "Unsqueeze"
    assert producers[cast.input[0]].input[0] == "attention_mask"


def test_bert_decomposed_layernorm_matches():
    small = dict(num_layers=2)
    fused = zoo.build("bert_encoder", **small)
    split = zoo.build("bert_encoder", decomposed_layernorm=True, **small)
    ops = _ops(split)
    assert "LayerNormalization" not in ops
    assert ops["ReduceMean"] == 2 * 5 and ops["Pow"] == 5 and ops["Sqrt"] == 5
    feeds = zoo.example_inputs("bert_encoder", batch=2)
    # No graph optimisation: ORT would otherwise fuse the chain back into one op.
    a = _session(fused, optimize=False).run(None, feeds)[0]
    b = _session(split, optimize=False).run(None, feeds)[0]
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_bert_padding_is_masked():
    model = zoo.build("bert_encoder", num_layers=2)
    feeds = zoo.example_inputs("bert_encoder", batch=1, seed=4)
    length = int(feeds["attention_mask"][0].sum())
    session = _session(model)
    base = session.run(None, feeds)[0]
    changed = {k: v.copy() for k, v in feeds.items()}
    changed["input_ids"][0, length:] = 1234  # garbage under the padding
    out = session.run(None, changed)[0]
    np.testing.assert_allclose(out[0, :length], base[0, :length], rtol=1e-5, atol=1e-5)
    assert not np.allclose(out[0, length:], base[0, length:])


def test_cli_creates_the_output_folder_and_reports_unwritable_paths(tmp_path, capsys):
    out = tmp_path / "new" / "dir" / "m.onnx"
    assert zoo_main(["squeezenet1_1", "-o", str(out)]) == 0
    assert onnx.load(str(out)).graph.name
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert zoo_main(["squeezenet1_1", "-o", str(blocker / "m.onnx")]) == 2
    assert "zoo: error: cannot write" in capsys.readouterr().err
