"""`claw convert --quantize`: what it writes and says, and the mistakes it refuses in one line."""
from __future__ import annotations

from pathlib import Path

import pytest

from clawdbot.cli import main
from clawdbot.ir.clawfile import load_graph

DIGITS = Path(__file__).resolve().parents[1] / "fixtures" / "digits" / "digits_cnn.onnx"


def test_convert_quantize_writes_quantized_weights_and_says_what_stayed_fp32(tmp_path, capsys):
    out = tmp_path / "d4.claw"
    assert main(["convert", str(DIGITS), "-o", str(out), "--quantize", "4", "--keep-fp32", "/9/Gemm"]) == 0
    said = capsys.readouterr().out
    assert "quantized: int4 weights in 2 node(s)" in said and "kept fp32: 3" in said
    assert "1 x kept in fp32 (--keep-fp32)" in said and "claw quant-report" in said
    # conv /0 (144 weights) and gemm /11 (640) are below the size worth quantizing; gemm /9 was kept
    ops = [n.op for n in load_graph(out).nodes]
    assert ops.count("conv_wq") == 2 and ops.count("conv") == 1 and ops.count("gemm") == 2


@pytest.mark.parametrize("argv, message", [
    (["--quantize", "8", "--keep-fp32", "/conv2/Conv"], "keep_fp32 names no node or value of this model: /conv2/Conv"),
    (["--group-size", "32"], "--group-size and --keep-fp32 go with --quantize"),
])
def test_quantize_mistakes_are_one_line(tmp_path, capsys, argv, message):
    out = tmp_path / "x.claw"
    assert main(["convert", str(DIGITS), "-o", str(out), *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claw: error:") and message in err and "Traceback" not in err
    assert not out.exists()
