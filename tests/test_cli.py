"""`claw convert / info / run / ops` end to end, and their one-line errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from claw_testing import add_relu, ort_run, with_unknown_ops

from clawdbot.cli import main


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(add_relu(), str(path))
    return path


def test_convert_info_run_round_trip(tmp_path, onnx_file, capsys):
    claw = tmp_path / "m.claw"
    assert main(["convert", str(onnx_file), "-o", str(claw)]) == 0
    assert main(["info", str(claw)]) == 0
    info = capsys.readouterr().out
    assert "parameters:  4" in info and "input:       x: float32[N, 4]" in info and "relu" in info
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    assert main(["run", str(claw), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out / "y.npy"), ort_run(add_relu(), {"x": x})[0], rtol=1e-6)
    assert not list(out.glob("*.tmp")), "no temp files left behind"


def test_unsupported_model_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.onnx"
    onnx.save(with_unknown_ops(), str(path))
    assert main(["convert", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claw: error:") and "FancyOp: fancy1, fancy2" in err and "Traceback" not in err
    assert not (tmp_path / "bad.claw").exists()


def test_corrupted_claw_file(tmp_path, onnx_file, capsys):
    claw = tmp_path / "m.claw"
    main(["convert", str(onnx_file), "-o", str(claw)])
    data = bytearray(claw.read_bytes())
    data[len(data) // 2] ^= 0xFF
    claw.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["info", str(claw)]) == 2
    assert "claw: error:" in capsys.readouterr().err


def test_run_input_mistakes(tmp_path, onnx_file, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    assert main(["run", str(onnx_file), "--input", f"nope={tmp_path / 'x.npy'}"]) == 2
    assert "missing input(s) ['x']" in capsys.readouterr().err
    assert main(["run", str(onnx_file), "--input", f"x={tmp_path / 'missing.npy'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["run", str(onnx_file), "--input", "x"]) == 2
    assert "expected NAME=FILE.npy" in capsys.readouterr().err


def test_ops_lists_the_op_set(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "[elementwise]" in out and "add" in out and "(no CPU kernel)" not in out


def test_console_entry_point_runs_as_module(tmp_path, onnx_file):
    r = subprocess.run([sys.executable, "-m", "clawdbot.cli", "info", str(onnx_file)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "claw: error:" in r.stderr and "Traceback" not in r.stderr


def test_output_piped_into_a_closed_reader_is_quiet():
    # The reader is gone before claw writes (as with `claw ops | head -1` once head has exited): no traceback.
    p = subprocess.Popen([sys.executable, "-m", "clawdbot.cli", "ops"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and "Traceback" not in err and "BrokenPipe" not in err
