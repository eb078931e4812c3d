"""The seed API: convert -> save -> load -> run matches onnxruntime; bad .claw files are refused."""
from __future__ import annotations

import numpy as np
import pytest
from claw_testing import add_relu, ort_run

import clawdbot
from clawdbot.converter import ModelConverter
from clawdbot.errors import ClawFileError


def test_convert_save_load_run(tmp_path):
    model = ModelConverter(source_framework="onnx", target_format="claw_ir", quantization_bits=None).convert(
        add_relu())
    assert model.summary()["ops"] == {"add": 1, "relu": 1}
    path = model.save(tmp_path / "m.claw")
    sess = clawdbot.load(path)
    x = np.random.default_rng(1).standard_normal((5, 4)).astype(np.float32)
    np.testing.assert_allclose(sess.run({"x": x})["y"], ort_run(add_relu(), {"x": x})[0], rtol=1e-6)


def test_load_accepts_onnx_path(tmp_path):
    import onnx
    onnx.save(add_relu(), str(tmp_path / "m.onnx"))
    sess = clawdbot.load(tmp_path / "m.onnx")
    assert sess.inputs[0].name == "x"


@pytest.mark.parametrize("where", [0.1, 0.5, 0.9])
def test_corrupted_claw_refused(tmp_path, where):
    path = ModelConverter().convert(add_relu()).save(tmp_path / "m.claw")
    data = bytearray(path.read_bytes())
    data[int(len(data) * where)] ^= 0x55
    path.write_bytes(bytes(data))
    with pytest.raises(ClawFileError, match="m.claw"):
        clawdbot.load(path)


def test_truncated_claw_refused(tmp_path):
    path = ModelConverter().convert(add_relu()).save(tmp_path / "m.claw")
    path.write_bytes(path.read_bytes()[:-7])
    with pytest.raises(ClawFileError, match="truncated"):
        clawdbot.load(path)
