"""`invoke flash`: put a bundle on a board through its agent, over a serial line or ssh.

The bundle is split into its content-addressed parts (every file by the sha256 the manifest lists, plus the
manifest and its signature); the agent says which it lacks and only those travel, resumably. Then one
`deploy` command makes the agent verify, install into the inactive slot, check and switch.

Over ssh:// the same conversation runs through an ssh port forward to the agent's loopback listener
(deploy/ssh.py), so both ways share the resumable transfer, the checks and the one agent that owns the slots.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from ..crossbuild import bundle as bundle_mod
from .signing import SIGNATURE_FILE


CONNECT_ATTEMPTS = 30


class Bar:
    """A one-line progress bar with throughput, redrawn at most ten times a second."""

    def __init__(self, stream=sys.stderr):
        self.stream, self.last = stream, 0.0

    def __call__(self, done: int, total: int, rate: float) -> None:
        now = time.monotonic()
        if now - self.last < 0.1 and done < total:
            return
        self.last = now
        frac = done / total if total else 1.0
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r  [{bar:<30}] {done / 2**20:7.2f}/{total / 2**20:.2f} MiB {rate / 1024:8.1f} KiB/s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def flash(bundle: Path, port: str, *, baudrate: int = 115200, progress=None, say=print) -> dict:
    if port.startswith("ssh://"):
        from .listener import LINE_RATE
        from .ssh import tunnel
        with tunnel(port) as url:
            return _flash(bundle, url, LINE_RATE, progress, say, shown=port,
                          absent="is `claw agent --listen 127.0.0.1:PORT` running there (see ?agent=PORT)?")
    return _flash(bundle, port, baudrate, progress, say, shown=port,
                  absent="is `claw agent` running on that line, at that speed?")


def _flash(bundle: Path, port: str, baudrate: int, progress, say, *, shown: str, absent: str) -> dict:
    from .link import LinkError
    from .transfer import Endpoint, sha256_file
    with tempfile.TemporaryDirectory(prefix="clawdbot-flash-") as work:
        top = bundle_mod.extract(Path(bundle), Path(work))
        manifest = json.loads((top / "manifest.json").read_text())
        parts = {meta["sha256"]: top / rel for rel, meta in manifest["files"].items()}
        mani_sha = sha256_file(top / "manifest.json")
        parts[mani_sha] = top / "manifest.json"
        sig = top / SIGNATURE_FILE
        sig_sha = sha256_file(sig) if sig.is_file() else None
        if sig_sha:
            parts[sig_sha] = sig
        with Endpoint(port, baudrate=baudrate, response_timeout=900) as ep:
            # A board still winding up a previous session (resending its last answer to a host that left)
            # answers a few seconds late; give it half a minute before calling it absent.
            try:
                hello = ep.connect(attempts=CONNECT_ATTEMPTS)
            except LinkError as e:
                raise LinkError(f"no agent answered on {shown}: {e}; {absent}") from None
            say(f"connected to the agent on {shown} ({hello})")
            missing = ep.offer(parts)
            size = sum(parts[s].stat().st_size for s in missing)
            say(f"{len(missing)} of {len(parts)} parts to send ({size / 2**20:.2f} MiB)")
            ep.push(parts, progress=progress or Bar())
            say("deploying: verify, install into the inactive slot, health check, switch")
            result = ep.request({"cmd": "deploy", "manifest": mani_sha, "signature": sig_sha}, timeout=900)
            return {**result, "sent": {"parts": len(missing), "of": len(parts), "bytes": size,
                                       "files": sorted(rel for rel, meta in manifest["files"].items()
                                                       if meta["sha256"] in missing)}}
