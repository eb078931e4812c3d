"""Tests for loadbench (clawdbot.tools.loadbench): its numbers are well formed and its errors are one line.
No timing thresholds: the numbers depend on the machine."""
from __future__ import annotations

import json

import pytest

pytest.importorskip("onnxruntime")

from clawdbot.tools import loadbench  # noqa: E402


def test_squeezenet_json_and_table(tmp_path, capsys):
    out = tmp_path / "loadbench.json"
    rc = loadbench.main(["--models", "squeezenet1_1", "--repeat", "1", "--workdir", str(tmp_path / "work"),
                         "--json", str(out)])
    stdout = capsys.readouterr().out
    assert rc == 0
    assert "| squeezenet1_1 |" in stdout
    assert "cold process, warm page cache" in stdout.lower()
    doc = json.loads(out.read_text())
    assert doc["repeat"] == 1 and set(doc["versions"]) == {"clawdbot", "onnxruntime", "numpy", "python"}
    r = doc["models"]["squeezenet1_1"]
    for rt in ("claw", "ort"):
        assert len(r[rt]["load_ms"]) == len(r[rt]["peak_rss_mib"]) == 1
        assert r[rt]["median_load_ms"] > 0 and r[rt]["median_peak_rss_mib"] > 0
    assert r["load_ratio"] == pytest.approx(r["claw"]["median_load_ms"] / r["ort"]["median_load_ms"])
    assert r["rss_ratio"] == pytest.approx(r["claw"]["median_peak_rss_mib"] / r["ort"]["median_peak_rss_mib"])
    assert 0 <= r["max_rel_diff"] <= loadbench.TOLERANCE
    assert not list(tmp_path.glob("*.tmp"))


def test_unknown_model_is_one_line_exit_2(capsys):
    assert loadbench.main(["--models", "squeezenet1_1,no_such_net"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("loadbench: error: ") and "no_such_net" in err[0]


def test_crashing_child_shows_its_stderr(tmp_path, monkeypatch):
    monkeypatch.setitem(loadbench.CHILD, "claw", "import sys; print('boom: bad model', file=sys.stderr); sys.exit(3)")
    with pytest.raises(loadbench.LoadbenchError, match=r"exit status 3.*boom: bad model"):
        loadbench._time_child("claw", "m.claw", "in.npz", str(tmp_path / "out.npz"), timeout=60)


def test_hanging_child_is_killed(tmp_path, monkeypatch):
    monkeypatch.setitem(loadbench.CHILD, "claw", "import time; time.sleep(600)")
    with pytest.raises(loadbench.LoadbenchError, match="timeout; killed"):
        loadbench._time_child("claw", "m.claw", "in.npz", str(tmp_path / "out.npz"), timeout=1)
