"""`claw serve` given a bundle (.tar.gz, or its unpacked directory as the agent installs it): the manifest's
model is checked against its sha256 and served under the manifest's name; damaged or malformed bundles are
refused with one line naming the file and field. Outputs are compared with onnxruntime."""
from __future__ import annotations

import json
import signal
from pathlib import Path

import numpy as np
import onnx
import pytest
import tritonclient.http as triton
from claw_testing import add_relu, ort_run
from clawdbot import ClawError, load
from clawdbot.cli import main
from clawdbot.crossbuild import bundle as bundle_mod
from clawdbot.serve.source import model_source
from serve_testing import claw_serve, infer_input, log_records

BUNDLE_ID = "clawdbot-0.1.0-x86_64-addrelu"


def _manifest(**model) -> dict:
    return {"format": 1, "bundle_id": BUNDLE_ID,
            "model": {"file": "model/model.claw", "name": "addrelu", **model}}


@pytest.fixture(scope="module")
def claw_bytes(tmp_path_factory) -> bytes:
    d = tmp_path_factory.mktemp("model")
    onnx.save(add_relu(), str(d / "m.onnx"))
    assert main(["convert", str(d / "m.onnx"), "-o", str(d / "m.claw")]) == 0
    return (d / "m.claw").read_bytes()


@pytest.fixture
def bundle(tmp_path, claw_bytes) -> Path:
    return bundle_mod.write_bundle(tmp_path / "out", BUNDLE_ID, {"model/model.claw": claw_bytes}, _manifest(), 0)


def _rewrite(bundle: Path, change) -> Path:
    """The bundle with its files passed through `change(files)`, written back as `invoke build` writes one."""
    import tarfile
    with tarfile.open(bundle) as tar:
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    change(files)
    bundle.write_bytes(bundle_mod.deterministic_tar(files, BUNDLE_ID, 0))
    return bundle


def _x() -> np.ndarray:
    return np.linspace(-3, 3, 8, dtype=np.float32).reshape(2, 4)


def test_claw_serve_a_bundle_answers_under_the_manifests_name(bundle, tmp_path):
    log_path = tmp_path / "serve.log"
    with claw_serve([str(bundle), "--host", "127.0.0.1", "--port", "0"], log_path) as (proc, start):
        assert start["model"] == "addrelu" and start["bundle"] == BUNDLE_ID
        c = triton.InferenceServerClient(f"127.0.0.1:{start['port']}", connection_timeout=30, network_timeout=30)
        y = c.infer("addrelu", [infer_input("x", _x())]).as_numpy("y")
        c.close()
        np.testing.assert_allclose(y, ort_run(add_relu(), {"x": _x()})[0], rtol=1e-6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    assert [r["event"] for r in log_records(log_path)] == ["start", "request", "stopping", "stop"]


def test_an_unpacked_bundle_or_installed_slot_serves_its_model(bundle, tmp_path):
    top = bundle_mod.extract(bundle, tmp_path / "unpacked")
    with model_source(top) as src:
        assert src.path == top / "model" / "model.claw" and src.name == "addrelu" and src.bundle_id == BUNDLE_ID
        y = load(src.path).run({"x": _x()})
    np.testing.assert_allclose(list(y.values())[0], ort_run(add_relu(), {"x": _x()})[0], rtol=1e-6)


def test_the_unpacked_model_is_removed_afterwards(bundle):
    with model_source(bundle) as src:
        assert src.path.is_file()
    assert not src.path.exists() and not src.path.parent.exists()


def test_a_damaged_model_is_refused_naming_the_member(bundle, capsys):
    def flip(files):
        data = bytearray(files["model/model.claw"])
        data[-1] ^= 0xFF
        files["model/model.claw"] = bytes(data)
    _rewrite(bundle, flip)
    assert main(["serve", str(bundle), "--host", "127.0.0.1", "--port", "0"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claw: error:") and err.count("\n") == 1
    assert f"{bundle}:{BUNDLE_ID}/model/model.claw: sha256" in err and "damaged" in err


@pytest.mark.parametrize("change, expected", [
    (lambda f: f.pop("manifest.json"), "no clawdbot-0.1.0-x86_64-addrelu/manifest.json; not a clawdbot bundle"),
    (lambda f: f.update({"manifest.json": b"{not json"}), "manifest.json: not valid JSON"),
    (lambda f: f.update({"manifest.json": json.dumps({**_manifest(), "format": 7}).encode()}),
     "manifest.json format 7 is not one this clawdbot reads"),
    (lambda f: f.update({"manifest.json": json.dumps({**_manifest(), "model": {"name": "x"}}).encode()}),
     "manifest.json has no model.file"),
    (lambda f: f.update({"manifest.json": json.dumps(_manifest(file="../../etc/passwd")).encode()}),
     "model.file '../../etc/passwd' is outside the bundle"),
    (lambda f: f.update({"manifest.json": json.dumps(_manifest(file="model/other.claw")).encode()}),
     "files['model/other.claw'] has no sha256"),
    (lambda f: f.pop("model/model.claw"), "model file clawdbot-0.1.0-x86_64-addrelu/model/model.claw is not in"),
])
def test_malformed_bundles_get_an_error_naming_the_field(bundle, change, expected):
    _rewrite(bundle, change)
    with pytest.raises(ClawError, match=None) as e:
        with model_source(bundle):
            pass
    assert str(e.value).startswith(str(bundle)) and expected in str(e.value), str(e.value)


def test_not_a_bundle_at_all(tmp_path):
    (tmp_path / "junk.tar.gz").write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ClawError, match="junk.tar.gz: cannot read the bundle archive"):
        with model_source(tmp_path / "junk.tar.gz"):
            pass
    (tmp_path / "dir").mkdir()
    with pytest.raises(ClawError, match="dir: a directory without manifest.json is not a bundle"):
        with model_source(tmp_path / "dir"):
            pass
