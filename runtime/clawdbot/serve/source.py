"""What `claw serve` was given, turned into one model file to load: a .claw or .onnx model as is; a bundle
(.tar.gz from `invoke build`) or a bundle directory (unpacked, or an agent's installed slot) through its
manifest's model entry, whose sha256 is checked first so a damaged bundle is refused before it serves."""
from __future__ import annotations

import json
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from typing import Iterator

from ..crossbuild.installer import sha256
from ..errors import ClawError

BUNDLE_FORMAT = 1


@dataclass(frozen=True)
class ModelSource:
    path: Path            # the model file to load
    name: str             # the default model name in URLs
    bundle_id: str | None = None


def _model_entry(manifest: dict, where: str) -> tuple[str, str, str]:
    """(model file, its sha256, model name) from a bundle manifest, or an error naming the field."""
    if manifest.get("format") != BUNDLE_FORMAT:
        raise ClawError(f"{where}: manifest.json format {manifest.get('format')!r} is not one this clawdbot "
                        f"reads ({BUNDLE_FORMAT})")
    model = manifest.get("model")
    if not isinstance(model, dict) or not isinstance(model.get("file"), str):
        raise ClawError(f"{where}: manifest.json has no model.file")
    rel = model["file"]
    if PurePosixPath(rel).is_absolute() or ".." in PurePosixPath(rel).parts:
        raise ClawError(f"{where}: manifest.json model.file {rel!r} is outside the bundle")
    meta = manifest.get("files", {}).get(rel)
    if not isinstance(meta, dict) or not isinstance(meta.get("sha256"), str):
        raise ClawError(f"{where}: manifest.json files[{rel!r}] has no sha256")
    return rel, meta["sha256"], str(model.get("name") or PurePosixPath(rel).stem)


def _check_sha256(path: Path, expected: str, where: str) -> None:
    found = sha256(path)
    if found != expected:
        raise ClawError(f"{where}: sha256 {found} does not match the manifest's {expected}; the bundle is damaged")


def _read_json(data: bytes, where: str) -> dict:
    try:
        manifest = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ClawError(f"{where}: not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ClawError(f"{where}: not a JSON object")
    return manifest


def _from_directory(d: Path) -> ModelSource:
    manifest_path = d / "manifest.json"
    if not manifest_path.is_file():
        raise ClawError(f"{d}: a directory without manifest.json is not a bundle; give a .claw or .onnx "
                        f"model, a bundle (.tar.gz), or an unpacked bundle directory")
    manifest = _read_json(manifest_path.read_bytes(), str(manifest_path))
    rel, sha, name = _model_entry(manifest, str(manifest_path))
    model = d / rel
    if not model.is_file():
        raise ClawError(f"{model}: the manifest's model file is missing")
    _check_sha256(model, sha, str(model))
    return ModelSource(model, name, manifest.get("bundle_id"))


def _from_tarball(bundle: Path, scratch: Path) -> ModelSource:
    try:
        with tarfile.open(bundle) as tar:
            members = tar.getmembers()
            if not members:
                raise ClawError(f"{bundle}: an empty archive is not a bundle")
            top = members[0].name.split("/")[0]
            m = tar.extractfile(f"{top}/manifest.json") if f"{top}/manifest.json" in tar.getnames() else None
            if m is None:
                raise ClawError(f"{bundle}: no {top}/manifest.json; not a clawdbot bundle")
            where = f"{bundle}:{top}/manifest.json"
            manifest = _read_json(m.read(), where)
            rel, sha, name = _model_entry(manifest, where)
            try:
                src = tar.extractfile(f"{top}/{rel}")
            except KeyError:
                src = None
            if src is None:
                raise ClawError(f"{bundle}: the manifest's model file {top}/{rel} is not in the archive")
            # .claw files are memory-mapped, so the model needs a file of its own, not a stream from the archive.
            out = scratch / PurePosixPath(rel).name
            with open(out, "wb") as f:
                while block := src.read(1 << 20):
                    f.write(block)
    except (tarfile.TarError, EOFError, OSError) as e:
        raise ClawError(f"{bundle}: cannot read the bundle archive ({e})") from None
    _check_sha256(out, sha, f"{bundle}:{top}/{rel}")
    return ModelSource(out, name, manifest.get("bundle_id"))


@contextmanager
def model_source(given: str | Path) -> Iterator[ModelSource]:
    """The model file behind `given`, valid inside the `with` block (a bundle's model is unpacked to a
    temporary directory that is removed afterwards)."""
    p = Path(given)
    if not p.exists():
        raise ClawError(f"{p}: no such file or directory")
    if p.is_dir():
        yield _from_directory(p)
    elif p.name.endswith((".tar.gz", ".tgz")):
        with TemporaryDirectory(prefix="claw-serve-") as scratch:
            yield _from_tarball(p, Path(scratch))
    else:
        yield ModelSource(p, p.stem)
