"""Bundle signatures: ed25519 over the exact bytes of manifest.json, which holds the sha256 of every other
file, so one signature covers the whole bundle. The build signs with a private key (`invoke build
--sign-key`); a board trusts the public keys it was provisioned with and nothing else.

ed25519 comes from `cryptography` (a maintained binding to OpenSSL): the standard library has none.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import ClawError

SIGNATURE_FILE = "manifest.json.sig"


class SignatureError(ClawError):
    """A bundle is unsigned, signed by a key the board does not trust, or altered after signing."""


def _crypto():
    try:
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
    except ImportError:
        raise ClawError("bundle signatures need the cryptography package: pip install cryptography") from None
    return ed25519, serialization, InvalidSignature


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def generate_keypair(private_path: Path, public_path: Path) -> None:
    """A new key pair as PEM files; the private one readable by its owner only."""
    ed25519, serialization, _ = _crypto()
    key = ed25519.Ed25519PrivateKey.generate()
    if private_path.exists():
        raise ClawError(f"{private_path} exists; refusing to overwrite a signing key")
    private_path.parent.mkdir(parents=True, exist_ok=True)
    public_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(private_path, key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                  serialization.NoEncryption()), 0o600)
    _write_atomic(public_path, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                             serialization.PublicFormat.SubjectPublicKeyInfo), 0o644)


def sign(data: bytes, private_path: Path) -> bytes:
    ed25519, serialization, _ = _crypto()
    try:
        key = serialization.load_pem_private_key(Path(private_path).read_bytes(), password=None)
    except (OSError, ValueError) as e:
        raise ClawError(f"{private_path}: not a readable ed25519 private key ({e})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ClawError(f"{private_path}: not an ed25519 key")
    return key.sign(data)


def trusted_keys(directory: Path) -> dict[str, object]:
    """Public keys provisioned on the board: every *.pem / *.pub file in `directory`, by file name."""
    ed25519, serialization, _ = _crypto()
    keys = {}
    for path in sorted(Path(directory).glob("*.p[ue][mb]")):
        try:
            key = serialization.load_pem_public_key(path.read_bytes())
        except ValueError as e:
            raise SignatureError(f"{path}: not a PEM public key ({e})") from None
        if isinstance(key, ed25519.Ed25519PublicKey):
            keys[path.name] = key
    return keys


def verify(data: bytes, signature: bytes | None, directory: Path) -> str:
    """The name of the trusted key that signed `data`; SignatureError otherwise."""
    _, _, InvalidSignature = _crypto()
    keys = trusted_keys(directory)
    if not keys:
        raise SignatureError(f"no trusted public keys in {directory}: provision the board with the build's "
                             f"public key before deploying")
    if signature is None:
        raise SignatureError(f"the bundle is not signed ({SIGNATURE_FILE} missing); build it with --sign-key")
    for name, key in keys.items():
        try:
            key.verify(signature, data)
            return name
        except InvalidSignature:
            continue
    raise SignatureError(f"the bundle's signature matches none of the {len(keys)} trusted key(s) in {directory} "
                         f"(signed by an unknown key, or manifest.json altered after signing)")
