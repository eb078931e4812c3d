"""Tests for quantbench (clawdbot.tools.quantbench): four runtimes, well-formed numbers, one-line errors.
No timing thresholds: the numbers depend on the machine."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

pytest.importorskip("onnxruntime.quantization")

from clawdbot.tools import quantbench  # noqa: E402


def test_squeezenet_json_and_table(tmp_path, capsys):
    out = tmp_path / "quantbench.json"
    rc = quantbench.main(["--models", "squeezenet1_1", "--runs", "2", "--warmup", "1", "--val", "2",
                          "--calib", "2", "--json", str(out)])
    stdout = capsys.readouterr().out
    assert rc == 0
    for rt in quantbench.RUNTIMES:
        assert f"| squeezenet1_1 | {rt} |" in stdout
    assert "squeezenet1_1: clawdbot int8 is " in stdout and "x its fp32; onnxruntime int8 is " in stdout
    doc = json.loads(out.read_text())
    assert doc["runs"] == 2 and doc["threads"] == 1
    r = doc["models"]["squeezenet1_1"]
    assert set(r["runtimes"]) == set(quantbench.RUNTIMES)
    for rt in r["runtimes"].values():
        assert len(rt["times_ms"]) == 2 and all(t > 0 for t in rt["times_ms"])
        assert rt["median_ms"] > 0 and rt["p90_ms"] >= rt["median_ms"] > 0
    assert r["runtimes"]["clawdbot fp32"]["vs_clawdbot_fp32"] == pytest.approx(1.0)
    assert r["fp32_agreement"]["rel_l2"] < quantbench.FP32_TOLERANCE
    # Both int8 models were really made and compared: onnxruntime's through static QDQ quantization.
    assert "quantize_static" in r["ort_int8_recipe"] and "QUInt8 activations" in r["ort_int8_recipe"] and r["ort_int8_ops"].get("QuantizeLinear", 0) > 0
    assert r["claw_int8"]["quantized_nodes"] > 0
    for rt in ("clawdbot int8", "onnxruntime int8"):
        acc = r["runtimes"][rt]["accuracy_vs_fp32"]
        assert 0.9 < acc["cosine_min"] <= acc["cosine_mean"] <= 1.0 + 1e-9
        assert 0 <= acc["rel_l2"] < 0.5 and 0 <= acc["top1_agreement"] <= 1
    assert os.listdir(tmp_path) == ["quantbench.json"]  # no temp file left beside it


def test_compare_metrics():
    # Two validation inputs, one output each.
    ref = [[np.array([[1.0, 0.0, 0.0]], np.float32)], [np.array([[0.0, 2.0, 0.0]], np.float32)]]
    same = quantbench.compare(ref, ref, classifier=True)
    assert same == {"cosine_mean": 1.0, "cosine_min": 1.0, "rel_l2": 0.0, "top1_agreement": 1.0}
    flipped = [[np.array([[0.0, 1.0, 0.0]], np.float32)], [np.array([[0.0, 2.0, 0.0]], np.float32)]]
    r = quantbench.compare(flipped, ref, classifier=True)
    assert r["cosine_min"] == pytest.approx(0.0) and r["cosine_mean"] == pytest.approx(0.5)
    assert r["top1_agreement"] == 0.5 and r["rel_l2"] == pytest.approx(np.sqrt(2) / np.sqrt(5))
    assert quantbench.compare(ref, ref, classifier=False)["top1_agreement"] is None


def test_unknown_model_is_one_line_exit_2(capsys):
    assert quantbench.main(["--models", "squeezenet1_1,no_such_net"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("quantbench: error: ") and "no_such_net" in err[0]


def test_bad_runs_is_one_line_exit_2(capsys):
    assert quantbench.main(["--models", "squeezenet1_1", "--runs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0] == "quantbench: error: --runs must be at least 1"
