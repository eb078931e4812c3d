"""The runtime bundle: one .tar.gz holding everything a board needs to install and run offline, and a
manifest with the sha256 of every file in it.

Written to be byte-reproducible: entries sorted, every timestamp SOURCE_DATE_EPOCH, owners 0/root-less,
fixed modes, and a gzip header with no name and no time. Written to a temp file and renamed, so a failed
or interrupted build never leaves a bundle that looks complete.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Mapping, Optional, Union

from . import installer

Source = Union[Path, bytes]
EXECUTABLE = ("install.py", "install.sh", "clawdbot-agent")
INSTALL_SH = """#!/bin/sh
# Install this bundle with the board's own Python; see install.py --help.
set -e
exec python3 "$(dirname "$0")/install.py" "$@"
"""


def _bytes(src: Source) -> bytes:
    return src if isinstance(src, bytes) else Path(src).read_bytes()


def manifest_bytes(manifest: Mapping) -> bytes:
    return (json.dumps(manifest, indent=1, sort_keys=True) + "\n").encode()


def deterministic_tar(files: Mapping[str, bytes], top: str, epoch: int) -> bytes:
    """A gzip'd tar of `files` under `top/`, the same bytes for the same input wherever and whenever made."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        dirs = sorted({str(Path(top, rel).parent) for rel in files} | {top})
        seen = set()
        for d in dirs:  # parents first, each once
            parts = Path(d).parts
            for i in range(1, len(parts) + 1):
                p = "/".join(parts[:i])
                if p not in seen:
                    seen.add(p)
                    tar.addfile(_info(p, tarfile.DIRTYPE, 0o755, epoch))
        for rel in sorted(files):
            data = files[rel]
            mode = 0o755 if Path(rel).name in EXECUTABLE else 0o644
            info = _info(f"{top}/{rel}", tarfile.REGTYPE, mode, epoch)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def _info(name: str, kind: bytes, mode: int, epoch: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.mtime = kind, mode, epoch
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_bundle(out_dir: Path, bundle_id: str, contents: Mapping[str, Source], manifest: dict,
                 epoch: int, sign: Optional[Callable[[bytes], bytes]] = None) -> Path:
    """Add the installer and the files' checksums to `manifest`, then write <out_dir>/<bundle_id>.tar.gz.
    `sign` maps manifest.json's bytes to a signature, stored beside it (it covers every file by its sha256)."""
    files = {rel: _bytes(src) for rel, src in contents.items()}
    files["install.py"] = Path(installer.__file__).read_bytes()
    files["install.sh"] = INSTALL_SH.encode()
    manifest["files"] = {rel: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                         for rel, data in sorted(files.items())}
    files["manifest.json"] = manifest_bytes(manifest)
    if sign is not None:
        files["manifest.json.sig"] = sign(files["manifest.json"])
    blob = deterministic_tar(files, bundle_id, epoch)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / f"{bundle_id}.tar.gz"
    fd, tmp = tempfile.mkstemp(prefix=f".{final.name}.", dir=out_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, final)
    except BaseException:
        os.unlink(tmp)
        raise
    return final


def extract(bundle: Path, dest: Path) -> Path:
    """Unpack a bundle; returns its top directory (where install.py is)."""
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        top = names[0].split("/")[0]
        if any(n != top and not n.startswith(top + "/") for n in names) or any(".." in n.split("/") for n in names):
            raise ValueError(f"{bundle}: not a clawdbot bundle (entries outside {top}/)")
        if hasattr(tarfile, "data_filter"):
            tar.extractall(dest, filter="data")
        else:  # Python < 3.11.4: the names were checked above
            tar.extractall(dest)
    return dest / top


def read_manifest(bundle: Path) -> dict:
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        f = tar.extractfile(f"{top}/manifest.json")
        if f is None:
            raise ValueError(f"{bundle}: no manifest.json")
        return json.loads(f.read())
