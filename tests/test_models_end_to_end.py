"""The benchmark models, built by the zoo script, convert, save, reload and match onnxruntime.

Criterion (fp32): max |clawdbot - onnxruntime| <= 1e-4 x the range of onnxruntime's output, at batch 2 so the
symbolic batch dimension is exercised.
"""
from __future__ import annotations

import onnx
import pytest
from claw_testing import assert_matches_range, ort_run

import clawdbot
from clawdbot.converter import ModelConverter
from clawdbot.tools import zoo

MODELS = [
    pytest.param("resnet50", {}, marks=pytest.mark.slow),
    pytest.param("mobilenet_v2", {}),
    pytest.param("mobilenet_v3_small", {}),
    pytest.param("efficientnet_b0", {}, marks=pytest.mark.slow),
    pytest.param("squeezenet1_1", {}),
    pytest.param("bert_encoder", {}, marks=pytest.mark.slow),
    pytest.param("bert_encoder", {"decomposed_layernorm": True}, id="bert_encoder-decomposed", marks=pytest.mark.slow),
]


@pytest.mark.parametrize("name,options", MODELS)
def test_zoo_model_matches_onnxruntime(tmp_path, name, options):
    src = tmp_path / f"{name}.onnx"
    onnx.save(zoo.build(name, **options), str(src))
    model = ModelConverter(source_framework="onnx", target_format="claw_ir").convert(str(src))
    sess = clawdbot.load(model.save(tmp_path / f"{name}.claw"))
    # The dynamic batch dimension survives conversion and the file round trip.
    assert all(s.shape[0] == "batch" for s in sess.inputs + sess.outputs)
    feeds = zoo.example_inputs(name, batch=2, seed=3)
    ours = sess.run(feeds)
    for spec, ref in zip(sess.outputs, ort_run(str(src), feeds)):
        assert ours[spec.name].shape == ref.shape
        assert_matches_range(ours[spec.name], ref, rel=1e-4)
