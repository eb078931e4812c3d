"""The whole device path on an emulated rpi4 (qemu-system-aarch64, Cortex-A72): boot the factory image with
`claw agent` on its serial console, flash a signed bundle over that console, let the agent verify, install
into slot a, check and switch, then query `claw serve` on the board through a forwarded port with Triton's
own HTTP client and compare with the build host's outputs.

The factory board already holds its factory bundle's wheels as content-addressed parts, as a provisioned
board would, so only the rest travels: under TCG the emulated PL011 and the guest's Python move a few KB/s,
too slow for 15 MB of numpy in a test, and a real board would not be sent what it holds either."""
from __future__ import annotations

import io
import tarfile
import time
from pathlib import Path

import numpy as np
import pytest

from clawdbot.crossbuild import bundle as bundle_mod
from clawdbot.deploy import signing

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "artifacts" / "cache"
SERVE_PORT = 8000

pytestmark = pytest.mark.cross


def _signed(bundle: Path, key: Path, out_dir: Path) -> Path:
    """The same bundle with manifest.json.sig added, as `invoke build --sign-key` makes it."""
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    files[signing.SIGNATURE_FILE] = signing.sign(files["manifest.json"], key)
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / bundle.name
    out.write_bytes(bundle_mod.deterministic_tar(files, top, 0))
    return out


@pytest.fixture(scope="module")
def board(rpi4, tiny_bundle, keys, tmp_path_factory):
    import shutil
    from clawdbot.crossbuild.progress import Progress
    from clawdbot.deploy.board import EmulatedBoard, build_image
    from clawdbot.deploy.factory import AGENT_COMMAND, factory_files
    if shutil.which("qemu-system-aarch64") is None:
        pytest.fail("qemu-system-aarch64 missing: apt-get install qemu-system-arm (or `invoke setup`)")
    work = tmp_path_factory.mktemp("factory")
    files = factory_files(tiny_bundle.bundle, rpi4, work, (keys / "build.pub.pem").read_bytes(),
                          hold=lambda rel: rel.startswith("wheels/"), progress=Progress())
    image = build_image(rpi4, CACHE, Progress(), files, command=AGENT_COMMAND)
    with EmulatedBoard(rpi4, image, forwards={0: SERVE_PORT}, log_dir=tmp_path_factory.mktemp("board")) as b:
        b.wait_booted(timeout=300)
        yield b


def _ready(url: str, timeout: float) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"http://{url}/v2/health/ready", timeout=5) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"claw serve on the board not ready at {url} after {timeout} s")
        time.sleep(2)


def _infer(url: str, manifest: dict, bundle: Path) -> tuple[np.ndarray, np.ndarray]:
    import tritonclient.http as httpclient
    with tarfile.open(bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        load = lambda rel: np.load(io.BytesIO(tar.extractfile(f"{top}/{rel}").read()))  # noqa: E731
        feeds = {n: load(f) for n, f in manifest["check"]["inputs"].items()}
        [(out_name, out_file)] = manifest["check"]["outputs"].items()
        want = load(out_file)
    client = httpclient.InferenceServerClient(url)
    inputs = []
    for name, x in feeds.items():
        i = httpclient.InferInput(name, list(x.shape), "FP32" if x.dtype == np.float32 else "INT64")
        i.set_data_from_numpy(x, binary_data=True)
        inputs.append(i)
    res = client.infer(manifest["model"]["name"], inputs, outputs=[httpclient.InferRequestedOutput(out_name)])
    return res.as_numpy(out_name), want


def test_flash_over_the_serial_console_then_serve_from_the_board(board, tiny_bundle, keys, tmp_path):
    from clawdbot.deploy.flash import flash
    bundle = _signed(tiny_bundle.bundle, keys / "build.pem", tmp_path)
    result = flash(bundle, board.serial_url, progress=lambda *a: None)
    assert result["active"] == "a" and result["signed_by"] == "build.pub.pem"
    assert any("runs on aarch64 with the cython kernels" in line for line in result["check"])
    # the wheels the board held did not travel; the model, its check data and the installer did
    assert "model/model.claw" in result["sent"]["files"]
    assert not any(f.startswith("wheels/") for f in result["sent"]["files"]), result["sent"]
    url = f"127.0.0.1:{board.host_port(SERVE_PORT)}"
    _ready(url, timeout=240)
    got, want = _infer(url, tiny_bundle.manifest, bundle)
    scale = max(1.0, float(np.abs(want).max()))
    assert got.shape == want.shape and float(np.abs(got - want).max()) / scale < 1e-4


def _status(board) -> dict:
    from clawdbot.deploy.transfer import Endpoint
    from clawdbot.deploy.flash import CONNECT_ATTEMPTS
    with Endpoint(board.serial_url) as ep:
        ep.connect(attempts=CONNECT_ATTEMPTS)
        return ep.request({"cmd": "status"})


def test_refused_bundles_leave_the_board_serving(board, tiny_update, keys, tmp_path):
    """Runs after the first flash. A bundle altered after signing never leaves the host (each part is
    checked against the sha256 it is sent under); one signed by an unknown key is refused by the agent."""
    from clawdbot.deploy.flash import flash
    from clawdbot.deploy.link import RemoteError
    from clawdbot.deploy.transfer import TransferError
    with tarfile.open(tiny_update.bundle) as tar:
        top = tar.getnames()[0].split("/")[0]
        files = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}
    files["model/model.claw"] = files["model/model.claw"][:-8] + b"\0" * 8
    files[signing.SIGNATURE_FILE] = signing.sign(files["manifest.json"], keys / "build.pem")
    bad = tmp_path / "bad" / tiny_update.bundle.name
    bad.parent.mkdir()
    bad.write_bytes(bundle_mod.deterministic_tar(files, top, 0))
    with pytest.raises(TransferError, match=r"model/model.claw: its sha256 is [0-9a-f]+, not"):
        flash(bad, board.serial_url, progress=lambda *a: None)
    rogue = tmp_path / "rogue"
    rogue.mkdir()
    signing.generate_keypair(rogue / "k.pem", rogue / "k.pub.pem")
    with pytest.raises(RemoteError, match="matches none of the 1 trusted key.*still serving slot a"):
        flash(_signed(tiny_update.bundle, rogue / "k.pem", tmp_path / "r"), board.serial_url, progress=lambda *a: None)
    state = _status(board)
    assert state["active"] == "a" and state["serving"]


def test_a_model_only_update_sends_the_model_and_switches_slots(board, tiny_update, keys, tmp_path):
    from clawdbot.deploy.flash import flash
    bundle = _signed(tiny_update.bundle, keys / "build.pem", tmp_path)
    result = flash(bundle, board.serial_url, progress=lambda *a: None)
    assert result["active"] == "b" and result["slots"]["a"] is not None  # the old release stays for rollback
    # Only the parts the board lacks travel: never the wheels it holds (the model's part may already be
    # there too, left by the refused rogue-key flash of this same release).
    assert not any(f.startswith("wheels/") for f in result["sent"]["files"]), result["sent"]
    assert result["sent"]["bytes"] < 200_000, result["sent"]
    url = f"127.0.0.1:{board.host_port(SERVE_PORT)}"
    _ready(url, timeout=240)
    got, want = _infer(url, tiny_update.manifest, bundle)
    assert float(np.abs(got - want).max()) / max(1.0, float(np.abs(want).max())) < 1e-4
