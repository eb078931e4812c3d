"""The bundle container and its installer, without any toolchain: reproducible archives, atomic writes,
and the installer's refusal of altered bundles and of the wrong Python."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from clawdbot.crossbuild import bundle, installer

EPOCH = 1_700_000_000


def _manifest(version: str | None = None) -> dict:
    return {"bundle_id": "clawdbot-0.0-test-m", "target": {"name": "test"},
            "python": {"version": version or f"{sys.version_info[0]}.{sys.version_info[1]}", "arch": "x86_64"}}


def _write(tmp_path: Path, contents: dict, manifest: dict | None = None) -> Path:
    return bundle.write_bundle(tmp_path, "clawdbot-0.0-test-m", contents, manifest or _manifest(), EPOCH)


def test_same_files_give_the_same_bytes_whatever_their_order():
    files = {"wheels/b.whl": b"b" * 100, "model/model.claw": b"m" * 1000, "a.txt": b"a"}
    shuffled = dict(reversed(list(files.items())))
    assert bundle.deterministic_tar(files, "top", EPOCH) == bundle.deterministic_tar(shuffled, "top", EPOCH)
    assert bundle.deterministic_tar(files, "top", EPOCH) != bundle.deterministic_tar(files, "top", EPOCH + 1)


def test_archive_entries_are_sorted_dated_and_owned_by_root(tmp_path):
    path = _write(tmp_path, {"wheels/x.whl": b"x", "model/model.claw": b"m"})
    with tarfile.open(path) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    top = "clawdbot-0.0-test-m"
    assert names[0] == top
    files = [m.name for m in members if m.isfile()]
    assert files == sorted(files)
    assert {m.mtime for m in members} == {EPOCH}
    assert {(m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, "", "")}
    modes = {m.name.rsplit("/", 1)[-1]: m.mode for m in members if m.isfile()}
    assert modes["install.py"] == modes["install.sh"] == 0o755 and modes["model.claw"] == 0o644
    # gzip header: no file name, no time
    head = path.read_bytes()[:10]
    assert head[3] & 0x08 == 0 and head[4:8] == b"\0\0\0\0"


def test_manifest_lists_every_file_with_its_sha256(tmp_path):
    path = _write(tmp_path, {"wheels/x.whl": b"wheel bytes", "model/model.claw": b"model"})
    out = bundle.extract(path, tmp_path / "x")
    manifest = json.loads((out / "manifest.json").read_text())
    on_disk = {str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()} - {"manifest.json"}
    assert set(manifest["files"]) == on_disk
    for rel, meta in manifest["files"].items():
        assert hashlib.sha256((out / rel).read_bytes()).hexdigest() == meta["sha256"]
    assert (out / "install.py").read_bytes() == Path(installer.__file__).read_bytes()
    assert bundle.read_manifest(path) == manifest


def test_a_failed_write_leaves_neither_a_bundle_nor_a_temp_file(tmp_path, monkeypatch):
    def fail(*_):
        raise OSError("disk full")
    monkeypatch.setattr(bundle.os, "replace", fail)
    with pytest.raises(OSError):
        _write(tmp_path, {"a": b"a"})
    assert list(tmp_path.iterdir()) == []


def test_extract_refuses_entries_outside_the_bundle(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        for name in ("top/manifest.json", "elsewhere/x"):
            info = tarfile.TarInfo(name)
            tar.addfile(info)
    with pytest.raises(ValueError, match="entries outside top/"):
        bundle.extract(evil, tmp_path / "out")


def test_installer_names_an_altered_file_and_installs_nothing(tmp_path):
    path = _write(tmp_path, {"model/model.claw": b"model"})
    out = bundle.extract(path, tmp_path / "x")
    (out / "model" / "model.claw").write_bytes(b"mode1")
    run = subprocess.run([sys.executable, str(out / "install.py"), "--prefix", str(tmp_path / "prefix")],
                         capture_output=True, text=True)
    assert run.returncode == 1
    assert "model/model.claw: sha256 does not match manifest.json" in run.stderr
    assert "Traceback" not in run.stderr
    assert not (tmp_path / "prefix").exists()


def test_installer_names_a_missing_file(tmp_path):
    out = bundle.extract(_write(tmp_path, {"model/model.claw": b"model"}), tmp_path / "x")
    (out / "model" / "model.claw").unlink()
    with pytest.raises(installer.InstallError, match="model/model.claw: listed in manifest.json but missing"):
        installer.verify(out, installer.load_manifest(out))


def test_installer_refuses_another_python(tmp_path):
    with pytest.raises(installer.InstallError, match=r"this bundle is for Python 3\.9 \(test\); this board runs"):
        installer.check_platform(_manifest("3.9"))


def test_a_signed_bundle_carries_an_ed25519_signature_of_its_manifest(tmp_path):
    from clawdbot.deploy import signing
    signing.generate_keypair(tmp_path / "k.pem", tmp_path / "trusted" / "k.pub.pem")
    path = bundle.write_bundle(tmp_path, "clawdbot-0.0-test-m", {"model/model.claw": b"m"}, _manifest(), EPOCH,
                               sign=lambda data: signing.sign(data, tmp_path / "k.pem"))
    out = bundle.extract(path, tmp_path / "x")
    raw = (out / "manifest.json").read_bytes()
    assert signing.verify(raw, (out / signing.SIGNATURE_FILE).read_bytes(), tmp_path / "trusted") == "k.pub.pem"
    with pytest.raises(signing.SignatureError, match="matches none"):
        signing.verify(raw.replace(b"model.claw", b"model.clax"), (out / signing.SIGNATURE_FILE).read_bytes(),
                       tmp_path / "trusted")
