"""Importer-level behaviour: bad files and unsupported ops fail at conversion time with one clear error."""
from __future__ import annotations

import pytest
from claw_testing import add_relu, with_unknown_ops

from clawdbot.converter import ModelConverter
from clawdbot.errors import ModelImportError, UnsupportedOpsError
from clawdbot.importers.onnx import import_onnx


def test_unsupported_ops_listed_together():
    with pytest.raises(UnsupportedOpsError) as info:
        import_onnx(with_unknown_ops())
    msg = str(info.value)
    assert "2 unsupported operator type(s)" in msg
    assert "FancyOp: fancy1, fancy2" in msg
    # WeirdOp sits downstream of an unsupported node and is still reported.
    assert "WeirdOp: weird" in msg
    assert info.value.unsupported == {"FancyOp": ["fancy1", "fancy2"], "WeirdOp": ["weird"]}


def test_truncated_file(tmp_path):
    data = add_relu().SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelImportError, match=r"cut\.onnx"):
        import_onnx(str(path))


def test_garbage_empty_missing_and_directory(tmp_path):
    bad = tmp_path / "junk.onnx"
    bad.write_bytes(b"\xff\x00not a protobuf" * 10)
    with pytest.raises(ModelImportError, match="junk.onnx"):
        import_onnx(str(bad))
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(ModelImportError, match="empty.onnx: file is empty"):
        import_onnx(str(empty))
    with pytest.raises(ModelImportError, match="no such file"):
        import_onnx(str(tmp_path / "nope.onnx"))
    with pytest.raises(ModelImportError, match="is a directory"):
        import_onnx(str(tmp_path))


def test_too_old_opset():
    with pytest.raises(ModelImportError, match="opset 5 is older"):
        import_onnx(add_relu(opset=5))


def test_converter_rejects_unknown_settings():
    from clawdbot.errors import ClawError
    with pytest.raises(ClawError, match="not one of"):
        ModelConverter(source_framework="caffe")
    with pytest.raises(ClawError, match="target_format"):
        ModelConverter(target_format="tflite")
    with pytest.raises(ClawError, match="quantization_bits=3: choose 8 or 4"):
        ModelConverter(quantization_bits=3)


def test_external_tensor_data(tmp_path):
    """Models over 2 GB keep weights in side files; the importer reads them relative to the model."""
    import numpy as np
    import onnx
    from claw_testing import ort_run

    from clawdbot.session import Session

    model = add_relu()
    onnx.save_model(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    x = np.ones((2, 4), np.float32)
    got = Session(import_onnx(str(tmp_path / "ext.onnx"))).run({"x": x})["y"]
    np.testing.assert_array_equal(got, ort_run(str(tmp_path / "ext.onnx"), {"x": x})[0])
    (tmp_path / "weights.bin").unlink()
    with pytest.raises(ModelImportError, match="ext.onnx: cannot load external tensor data"):
        import_onnx(str(tmp_path / "ext.onnx"))
