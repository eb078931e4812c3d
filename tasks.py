"""Project tasks (Invoke). `invoke --list` shows the menu; every task's docstring is its --help.

    invoke setup                     # host packages for cross builds (apt, as root) and a running dockerd
    invoke build --target rpi4       # runtime bundle for a board: wheel, dependency wheels, model, installer
    invoke test --target rpi4        # install that bundle on an emulated rpi4 (QEMU) and check its outputs
    invoke test                      # the test suite (what CI runs)
    invoke keygen                    # an ed25519 pair: build with --sign-key keys/signing.pem, boards trust the .pub
    invoke board --target rpi4       # an emulated board (qemu-system) with `claw agent` on its serial console
    invoke flash --target rpi4 --port socket://127.0.0.1:P   # send a bundle to a board's agent and deploy it
    invoke toolchain --target rpi4   # only build (or find cached) the target's Docker toolchain image
    invoke base-image                # only make the Debian base image from Debian's packages
    invoke demo                      # build the default model, convert, run, compare with onnxruntime
    invoke conformance [--write]     # every ONNX backend node case, with the pass count
    invoke bench --model resnet50    # clawbench on a zoo model
"""
from __future__ import annotations

import sys
from pathlib import Path

from invoke import Collection, Exit, task

ROOT = Path(__file__).resolve().parent
ARTIFACTS = ROOT / "artifacts"
PASSING_LIST = ROOT / "tests" / "importers" / "onnx" / "onnx_node_passing.txt"
PY = sys.executable


def _zoo_model(c, name: str) -> Path:
    from clawdbot.tools import zoo
    if name not in zoo.MODELS:
        raise Exit(f"unknown model {name!r}; choose one of: {', '.join(sorted(zoo.MODELS))}")
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.onnx"
    if not path.exists():
        c.run(f"{PY} -m clawdbot.tools.zoo {name} -o {path}", echo=True)
    return path


@task(help={"model": "zoo model to run (default: mobilenet_v2; see `python -m clawdbot.tools.zoo --list`)",
            "batch": "batch size for the run"})
def demo(c, model="mobilenet_v2", batch=1):
    """Build a model, convert it to .claw, inspect it, run it and check the result against onnxruntime."""
    onnx_path = _zoo_model(c, model)
    claw_path = onnx_path.with_suffix(".claw")
    c.run(f"claw convert {onnx_path} -o {claw_path}", echo=True)
    c.run(f"claw info {claw_path}", echo=True)
    c.run(f"{PY} -m clawdbot.tools.check {claw_path} {onnx_path} --batch {batch}", echo=True)


# Host packages the cross-build needs: the Docker engine, debootstrap for base images and sysroots, qemu-user
# for the bundle test, qemu-system-arm for the emulated board, and the Debian compilers and Python the
# --toolchain host path uses; OpenSSH (client, and a server the ssh flashing test logs in to); e2fsprogs
# (mkfs.ext4 -d makes the emulated board's disk; not every minimal install has it).
HOST_PACKAGES = ("docker.io", "debootstrap", "qemu-user", "qemu-system-arm", "gcc-aarch64-linux-gnu", "gcc",
                 "python3.11", "python3.11-venv", "python3.11-dev", "openssh-client", "openssh-server", "e2fsprogs")


def _progress(verbose: bool):
    from clawdbot.crossbuild.progress import Progress
    return Progress(verbose=verbose)


def _fail(e) -> Exit:
    return Exit(f"error: {e}", code=2)


@task(help={"docker": "also start the Docker engine if it is not running (default on)"})
def setup(c, docker=True):
    """Install the host packages cross builds need (apt-get, as root) and start dockerd if it isn't running."""
    import os
    import shutil
    import subprocess
    status = subprocess.run(["dpkg-query", "-W", "-f", "${Package} ${Status}\\n", *HOST_PACKAGES],
                            capture_output=True, text=True).stdout
    installed = {ln.split()[0] for ln in status.splitlines() if ln.endswith("install ok installed")}
    missing = [p for p in HOST_PACKAGES if p not in installed]
    if missing:
        if os.geteuid() != 0:
            raise Exit(f"missing host packages; as root run: apt-get install -y {' '.join(missing)}", code=2)
        c.run("apt-get update -qq", echo=True)
        c.run(f"DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends {' '.join(missing)}",
              echo=True)
    else:
        print(f"host packages present: {', '.join(HOST_PACKAGES)}")
    if docker and shutil.which("dockerd"):
        from clawdbot.crossbuild.engine import Engine
        from clawdbot.errors import ClawError
        try:
            engine = Engine.connect(_progress(False))
        except ClawError as e:
            raise _fail(e)
        driver = engine.client.info().get("Driver")
        print(f"Docker engine up (storage driver {driver})")
        if driver != "overlay2":
            print("warning: storage driver is not overlay2; every build container copies its whole image (slow)")


@task(help={"suite": "Debian suite (default bookworm)", "verbose": "show every line of output"})
def base_image(c, suite="bookworm", verbose=False):
    """Make the Debian base image from Debian's packages (debootstrap + docker import), for air-gapped hosts."""
    from clawdbot.crossbuild.engine import Engine
    from clawdbot.errors import ClawError
    try:
        engine = Engine.connect(_progress(verbose))
        print(engine.make_base_image(suite))
    except ClawError as e:
        raise _fail(e)


@task(help={"target": "board (see targets/)", "base_image": "base image to build on (default: debian:bookworm-slim, "
            "else one made here)", "verbose": "show every line of output"})
def toolchain(c, target="rpi4", base_image=None, verbose=False):
    """Build (or find cached) the target's Docker toolchain image, tagged by the hash of its inputs."""
    from clawdbot.crossbuild.engine import Engine
    from clawdbot.crossbuild.targets import load_target
    from clawdbot.crossbuild.toolchains import load_toolchain
    from clawdbot.errors import ClawError
    try:
        tc = load_toolchain(load_target(target, ROOT / "targets").toolchain, ROOT)
        tag, _ = Engine.connect(_progress(verbose)).toolchain_image(tc, ARTIFACTS / "cache", base_image)
    except ClawError as e:
        raise _fail(e)
    print(tag)


@task(help={"target": "board to build for (see targets/)",
            "model": "an .onnx or .claw file, or a zoo model name (default mobilenet_v2)",
            "quantize": "8 or 4: weight-only int8 (per output channel) or int4 (groups of 64) weights",
            "toolchain": "docker, host (the host's Debian cross compiler, no Docker) or auto (default)",
            "ram": "the board's RAM variant in MiB, for the memory budget (default: the target's default)",
            "base_image": "Docker base image for the toolchain (default debian:bookworm-slim, else made here)",
            "sign_key": "ed25519 private key (PEM) to sign the manifest with; boards trust its public key "
                        "(`invoke keygen` makes a pair)",
            "dims": "symbolic input dims for the memory check, e.g. batch=4,seq=128 (unnamed ones count as 1)",
            "out": "where the bundle goes (default artifacts/bundles)", "verbose": "show every line of output"})
def build(c, target="rpi4", model=None, quantize=None, toolchain="auto", ram=None, base_image=None, dims="",
          sign_key=None, out=None, verbose=False):
    """Cross-build the runtime and the target's HAL drivers and write one offline-installable bundle."""
    from clawdbot.crossbuild.build import BuildOptions, build as run_build
    from clawdbot.errors import ClawError
    try:
        bound = {k.strip(): int(v) for k, v in (item.split("=", 1) for item in dims.split(",") if item.strip())}
    except ValueError:
        raise Exit(f"error: --dims {dims!r}: write name=size pairs separated by commas, e.g. batch=4", code=2)
    opts = BuildOptions(target=target, root=ROOT, model=model, quantize=int(quantize) if quantize else None,
                        toolchain=toolchain, ram_mib=int(ram) if ram else None, base_image=base_image,
                        out=Path(out) if out else None, dims=bound, sign_key=Path(sign_key) if sign_key else None)
    try:
        result = run_build(opts, _progress(verbose))
    except ClawError as e:
        raise _fail(e)
    print(result.bundle)


@task(help={"target": "board the bundle is for (checked against the bundle's manifest)",
            "bundle": "bundle to flash (default: the newest one built for the target)",
            "port": "serial port or pyserial URL (/dev/ttyUSB0, socket://host:port, rfc2217://host:port), or "
                    "ssh://[user@]host[:port][?agent=7070] (user and port default to the target file's)",
            "baud": "line speed (default 115200)"})
def flash(c, target="rpi4", bundle=None, port=None, baud=115200):
    """Send a bundle to a board's agent (only the parts it lacks travel), then deploy it there."""
    import json
    from clawdbot.crossbuild.bundle import read_manifest
    from clawdbot.crossbuild.targets import load_target
    from clawdbot.deploy.flash import flash as run_flash
    from clawdbot.deploy.ssh import with_defaults
    from clawdbot.errors import ClawError
    if not port:
        raise Exit("error: --port is required (a serial port, a pyserial URL, or ssh://user@host)", code=2)
    bundle = Path(bundle) if bundle else _newest_bundle(target)
    try:
        if port.startswith("ssh://"):
            access = load_target(target, ROOT / "targets").access
            port = with_defaults(port, access.get("ssh_user"), access.get("ssh_port"))
        built_for = read_manifest(bundle)["target"]["name"]
        if built_for != target:
            raise Exit(f"error: {bundle.name} was built for {built_for}, not {target}", code=2)
        result = run_flash(bundle, port, baudrate=int(baud))
    except ClawError as e:
        raise _fail(e)
    print(json.dumps(result, indent=1))


def _newest_bundle(target: str) -> Path:
    found = sorted((ARTIFACTS / "bundles").glob(f"clawdbot-*-{target}-*.tar.gz"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise Exit(f"no bundle for {target} in {ARTIFACTS / 'bundles'}; run `invoke build --target {target}` first",
                   code=2)
    return found[-1]


@task(help={"target": "board to emulate (aarch64 targets)",
            "bundle": "factory bundle: the runtime the board starts with (default: the newest for the target)",
            "trust": "public key the board trusts for flashing (default keys/signing.pub.pem, from invoke keygen)",
            "serve_port": "host port forwarded to the board's claw serve (guest port 8000)"})
def board(c, target="rpi4", bundle=None, trust="keys/signing.pub.pem", serve_port=8000):
    """Boot an emulated board (qemu-system-aarch64) with `claw agent` on its serial console, until Ctrl-C."""
    import tempfile
    import time
    from clawdbot.crossbuild.targets import load_target
    from clawdbot.deploy.board import EmulatedBoard, build_image
    from clawdbot.deploy.factory import AGENT_COMMAND, factory_files
    from clawdbot.errors import ClawError
    bundle = Path(bundle) if bundle else _newest_bundle(target)
    progress = _progress(False)
    try:
        t = load_target(target, ROOT / "targets")
        trusted = Path(trust)
        if not trusted.is_file():
            raise Exit(f"error: {trusted} not found: make a signing pair with `invoke keygen` (the board trusts "
                       f"the public key; bundles built with --sign-key keys/signing.pem can be flashed)", code=2)
        with tempfile.TemporaryDirectory(prefix="clawdbot-factory-") as work:
            files = factory_files(bundle, t, Path(work), trusted.read_bytes(),
                                  progress=progress)
            image = build_image(t, ARTIFACTS / "cache", progress, files, command=AGENT_COMMAND)
        with EmulatedBoard(t, image, forwards={int(serve_port): 8000}) as b:
            b.wait_booted(timeout=300)
            print(f"{target} is up. Flash it:  invoke flash --target {target} --port {b.serial_url}\n"
                  f"claw serve (after a flash): http://127.0.0.1:{b.host_port(8000)}/v2   console log: "
                  f"{b.console_log}\nCtrl-C stops the board.")
            while b.running():
                time.sleep(1)
    except ClawError as e:
        raise _fail(e)
    except KeyboardInterrupt:
        pass


@task(help={"out": "directory for the pair (default keys/): signing.pem (keep it secret) and signing.pub.pem "
                   "(provision boards with it)"})
def keygen(c, out="keys"):
    """Make an ed25519 key pair for signing bundles."""
    from clawdbot.deploy.signing import generate_keypair
    from clawdbot.errors import ClawError
    try:
        generate_keypair(Path(out) / "signing.pem", Path(out) / "signing.pub.pem")
    except ClawError as e:
        raise _fail(e)
    print(f"{out}/signing.pem (private; keep it off boards) and {out}/signing.pub.pem (copy to a board's trusted/)")


@task(help={"target": "test a bundle on this (emulated) board instead of running the host test suite",
            "bundle": "bundle to test (default: the newest one built for the target)",
            "k": "only tests matching this pytest -k expression", "slow": "include tests marked slow",
            "cross": "cross-build tests: require (default; missing tools fail), auto (skip without them), skip",
            "kernels": "with --target: also run the CPU kernel tests on the board against the bundle's kernels "
                       "(default on)",
            "verbose": "show every line of output"})
def test(c, target=None, bundle=None, k="", slow=True, cross="require", kernels=True, verbose=False):
    """Without --target: the test suite (CI runs this through .ci/run). With --target: the QEMU bundle test."""
    if target:
        from clawdbot.crossbuild.emulate import test_bundle
        from clawdbot.crossbuild.targets import load_target
        from clawdbot.errors import ClawError
        try:
            t = load_target(target, ROOT / "targets")
            if bundle is None:
                bundle = _newest_bundle(target)
            test_bundle(Path(bundle), t, ARTIFACTS / "cache", _progress(verbose),
                        kernel_tests=ROOT if kernels else None)
        except ClawError as e:
            raise _fail(e)
        print(f"{Path(bundle).name}: installed and checked on an emulated {target}")
        return
    args = ["-q", f"--cross={cross}"]
    if k:
        args += ["-k", repr(k)]
    if not slow:
        args += ["-m", "'not slow'"]
    c.run(f"{PY} -m pytest {' '.join(args)}", echo=True, pty=False)


@task(help={"write": f"rewrite {PASSING_LIST.relative_to(ROOT)} with the cases that pass now",
            "filter": "only cases whose name matches this regex"})
def conformance(c, write=False, filter=""):
    """Run every ONNX backend node case through clawdbot and print the pass count."""
    cmd = f"{PY} -m clawdbot.tools.onnx_conformance"
    if filter:
        cmd += f" --filter {filter!r}"
    if write:
        if filter:
            raise Exit("--write records the whole suite; drop --filter")
        cmd += f" --write {PASSING_LIST}"
    c.run(cmd, echo=True)


@task(help={"model": "zoo model name", "threads": "threads for both runtimes", "runs": "timed runs each"})
def bench(c, model="resnet50", threads=1, runs=20):
    """clawbench: clawdbot next to onnxruntime on a zoo model."""
    path = _zoo_model(c, model)
    c.run(f"clawbench {path} --threads {threads} --runs {runs}", echo=True)


@task(help={"models": "comma-separated zoo model names (default: resnet50,mobilenet_v2,efficientnet_b0,bert_encoder)",
            "repeat": "measured runs per runtime, after one warm-up", "json": "also write raw samples here"})
def loadbench(c, models="", repeat=5, json=None):
    """Cold load time and peak RSS, clawdbot next to onnxruntime: one fresh process per run."""
    cmd = f"{PY} -m clawdbot.tools.loadbench --repeat {repeat}"
    if models:
        cmd += f" --models {models}"
    if json:
        cmd += f" --json {json}"
    c.run(cmd, echo=True)


ns = Collection(setup, base_image, toolchain, build, keygen, flash, board, test, demo, conformance, bench,
                loadbench)
