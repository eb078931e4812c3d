"""The emulated board (deploy/board.py): qemu-system-aarch64 -M virt with the board's CPU, booting Debian's
arm64 kernel and the board's userland. One boot serves the module's tests: a guest program listens on a
forwarded port, imports numpy (the board's pinned aarch64 wheel) and answers lines on the serial console."""
from __future__ import annotations

import shutil
import socket
import time
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "artifacts" / "cache"  # the cross fixtures' cache (tests/conftest.py)

pytestmark = pytest.mark.cross

GUEST_PORT = 5000

GUEST = b'''
import socket, sys, threading, time

def echo(conn):
    with conn:
        while True:
            data = conn.recv(4096)
            if not data:
                return
            conn.sendall(data)

def serve(srv):
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=echo, args=(conn,), daemon=True).start()

srv = socket.create_server(("0.0.0.0", int(sys.argv[1])))
threading.Thread(target=serve, args=(srv,), daemon=True).start()
print("guest: echo server listening", flush=True)
start = time.monotonic()
try:
    import numpy
    total = int(numpy.arange(12, dtype=numpy.int64).reshape(3, 4).sum())
    print(f"guest: numpy {numpy.__version__} sum={total} import+sum {time.monotonic() - start:.2f} s", flush=True)
except Exception as e:
    print(f"guest: numpy failed: {e!r}", flush=True)
print("guest: ready", flush=True)
for line in sys.stdin.buffer:
    if line.strip() == b"quit":
        break
    sys.stdout.buffer.write(b"echo: " + line.upper())
    sys.stdout.buffer.flush()
'''


@pytest.fixture(scope="module")
def board_tools(cross_tools, request):
    if shutil.which("qemu-system-aarch64") is None:
        message = "qemu-system-aarch64 missing: apt-get install qemu-system-arm"
        if request.config.getoption("--cross") == "require":
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="module")
def rpi4():
    from clawdbot.crossbuild.targets import load_target
    return load_target("rpi4", ROOT / "targets")


@pytest.fixture(scope="module")
def numpy_tree(board_tools, rpi4, tmp_path_factory):
    """The board's pinned numpy wheel (cached wheelhouse) unpacked, as pip would install it."""
    from clawdbot.crossbuild import wheelhouse
    from clawdbot.crossbuild.progress import Progress
    wheels = wheelhouse.download(ROOT / "toolchains" / f"board-requirements-{rpi4.python_abi}.txt", CACHE,
                                 Progress(), platforms=rpi4.platforms, python_version=rpi4.python_version,
                                 abi=rpi4.python_abi)
    site = tmp_path_factory.mktemp("site")
    for whl in wheels:
        if whl.name.startswith("numpy-"):
            with zipfile.ZipFile(whl) as z:
                z.extractall(site)
    return site


@pytest.fixture(scope="module")
def image(board_tools, rpi4, numpy_tree):
    from clawdbot.crossbuild.progress import Progress
    from clawdbot.deploy.board import build_image
    return build_image(rpi4, CACHE, Progress(),
                       {"/root/guest.py": GUEST,
                        f"/usr/local/lib/python{rpi4.python_version}/dist-packages": numpy_tree},
                       command=["python3", "/root/guest.py", str(GUEST_PORT)])


@pytest.fixture(scope="module")
def board(rpi4, image, tmp_path_factory):
    from clawdbot.deploy.board import EmulatedBoard
    with EmulatedBoard(rpi4, image, forwards={0: GUEST_PORT}, log_dir=tmp_path_factory.mktemp("board")) as b:
        start = time.monotonic()
        b.guest_uptime_s = b.wait_booted(timeout=300)
        b.boot_s = time.monotonic() - start
        b.ready_text = b.wait_for("guest: ready", timeout=300)
        b.ready_s = time.monotonic() - start
        print(f"\nboard: userland up after {b.guest_uptime_s:.1f} s of kernel uptime ({b.boot_s:.1f} s from QEMU "
              f"start), guest program ready after {b.ready_s:.1f} s; initrd "
              f"{(image / 'initrd.img').stat().st_size / 2**20:.0f} MiB, kernel "
              f"{(image / 'vmlinuz').stat().st_size / 2**20:.0f} MiB")
        yield b
    assert not b.running()


def test_image_is_cached(rpi4, image, numpy_tree):
    from clawdbot.crossbuild.progress import Progress
    from clawdbot.deploy.board import build_image
    again = build_image(rpi4, CACHE, Progress(),
                        {"/root/guest.py": GUEST,
                         f"/usr/local/lib/python{rpi4.python_version}/dist-packages": numpy_tree},
                        command=["python3", "/root/guest.py", str(GUEST_PORT)])
    assert again == image
    assert (image / "image.json").is_file() and (image / "vmlinuz").is_file()
    other = build_image(rpi4, CACHE, Progress(), {"/root/guest.py": GUEST}, command=["true"])
    assert other != image


def test_forwarded_port_echoes(board):
    with socket.create_connection(("127.0.0.1", board.host_port(GUEST_PORT)), timeout=30) as s:
        s.sendall(b"hello from the host\n")
        got = b""
        while not got.endswith(b"\n"):
            chunk = s.recv(4096)
            assert chunk, "the guest closed the connection"
            got += chunk
    assert got == b"hello from the host\n"


def test_guest_python_and_numpy(board):
    text = board.console()
    assert "guest: numpy 2." in text and "sum=66" in text, board.console_tail()
    assert "insmod" not in text, board.console_tail()  # every virtio module loaded


def test_serial_console_answers(board):
    serial = pytest.importorskip("serial")  # the `device` extra
    with serial.serial_for_url(board.serial_url, timeout=30) as port:
        port.write(b"ping over serial\n")
        line = port.read_until(b"\n")
    assert line == b"echo: PING OVER SERIAL\n", line
    assert "echo: PING OVER SERIAL" in board.wait_for("echo: PING OVER SERIAL", timeout=10)


def test_wait_for_times_out_with_console_lines(board):
    from clawdbot.deploy.board import BoardError
    start = time.monotonic()
    with pytest.raises(BoardError, match="last console lines") as e:
        board.wait_for("this never appears", timeout=1)
    assert time.monotonic() - start < 10
    assert "guest: ready" in str(e.value)


def test_command_exit_powers_off(board):
    """Last: the guest program ends on "quit", and the board powers off (QEMU exits by itself)."""
    serial = pytest.importorskip("serial")  # the `device` extra
    with serial.serial_for_url(board.serial_url, timeout=30) as port:
        port.write(b"quit\n")
    board.wait_for("powering off", timeout=60)
    deadline = time.monotonic() + 60
    while board.running() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not board.running()
    assert board.proc.returncode == 0
