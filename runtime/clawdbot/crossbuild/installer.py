#!/usr/bin/env python3
"""Install a clawdbot bundle on this board, offline, from the bundle alone; then check it.

    python3 install.py [--prefix /opt/clawdbot] [--check] [--verify-only]
    python3 install.py --enable-agent --trust build.pub.pem      # provision the device agent instead

Copied verbatim into every bundle as install.py, so it uses the standard library only: pip itself comes
from the bundle's pip wheel, run in this process (a wheel on sys.path is how pip documents running it from
a wheel), and the board needs no pip, venv or network of its own.

Steps: verify every file's sha256 against manifest.json; check that this Python and machine are the ones
the bundle was built for; install into a new slot <prefix>/slots/<bundle id> (staged, then renamed, so an
interrupted install leaves no half slot); switch <prefix>/current to it with an atomic symlink replace;
write <prefix>/bin/claw. --check then loads the bundled model and compares its outputs with the ones the
build host recorded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


class InstallError(Exception):
    pass


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_manifest(bundle: Path) -> dict:
    path = bundle / "manifest.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise InstallError(f"{path}: cannot read the bundle manifest ({e})") from None


def verify(bundle: Path, manifest: dict) -> None:
    for rel, meta in sorted(manifest["files"].items()):
        path = bundle / rel
        if not path.is_file():
            raise InstallError(f"{rel}: listed in manifest.json but missing from the bundle")
        if sha256(path) != meta["sha256"]:
            raise InstallError(f"{rel}: sha256 does not match manifest.json (corrupted or altered bundle)")


def check_platform(manifest: dict) -> None:
    want = manifest["python"]
    have = f"{sys.version_info[0]}.{sys.version_info[1]}"
    if have != want["version"]:
        raise InstallError(f"this bundle is for Python {want['version']} ({manifest['target']['name']}); "
                           f"this board runs Python {have} at {sys.executable}")
    machine = platform.machine()
    if machine not in (want["arch"], {"aarch64": "arm64"}.get(want["arch"])):
        raise InstallError(f"this bundle is for {want['arch']}; this machine is {machine}")


def run_pip(bundle: Path, args: list[str]) -> None:
    pip_wheels = sorted((bundle / "wheels").glob("pip-*.whl"))
    if not pip_wheels:
        raise InstallError("the bundle carries no pip wheel")
    sys.path.insert(0, str(pip_wheels[0]))
    os.environ["PIP_CONFIG_FILE"] = os.devnull  # the board's pip config may name an index we must not use
    os.environ["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    from pip._internal.cli.main import main as pip_main
    code = pip_main(args)
    if code != 0:
        raise InstallError(f"pip {' '.join(args[:2])} failed (exit {code}); its output is above")


def stage(bundle: Path, slot: Path, manifest: dict, extra: tuple[str, ...] = ()) -> Path:
    """Install the bundle into `slot` (replacing what was there): staged in a temp dir beside it and renamed,
    so a slot directory is either complete or absent, whenever the power goes. `extra`: more requirements
    the bundle carries wheels for (the agent's)."""
    slot.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{slot.name}.", dir=slot.parent))
    try:
        wheels = str(bundle / "wheels")
        plan = manifest["install"]
        common = ["--no-index", "--find-links", wheels, "--no-compile", "--no-warn-script-location", "-q",
                  "--root-user-action=ignore"]
        if plan["mode"] == "wheel":
            run_pip(bundle, ["install", *common, "--target", str(staging / "lib"), plan["runtime"], *plan["requirements"],
                             *extra])
        else:
            # on-board: compile the kernels here, with the bundle's pinned build tools and the target's flags
            build_env = staging / "build-env"
            run_pip(bundle, ["install", *common, "--target", str(build_env), *plan["build_requirements"]])
            os.environ["PYTHONPATH"] = os.pathsep.join([str(build_env), os.environ.get("PYTHONPATH", "")])
            os.environ["CLAWDBOT_CFLAGS"] = " ".join(manifest["target"]["cpu"]["cflags"])
            run_pip(bundle, ["install", *common, "--no-build-isolation", "--target", str(staging / "lib"),
                             str(bundle / plan["runtime"]), *plan["requirements"], *extra])
            shutil.rmtree(build_env)
        shutil.copytree(bundle / "model", staging / "model")
        if (bundle / "boot").is_dir():  # the agent's boot files, for re-provisioning from an installed slot
            shutil.copytree(bundle / "boot", staging / "boot")
        for name in ("manifest.json", "install.py"):
            shutil.copy2(bundle / name, staging / name)
        fsync_tree(staging)
        if slot.exists():  # the inactive slot's previous content, or a reinstall of the same bundle
            shutil.rmtree(slot)
        os.rename(staging, slot)
        fsync_dir(slot.parent)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return slot


def switch(prefix: Path, slot: Path) -> None:
    """Point <prefix>/current at `slot` with one rename: a reader sees the old slot or the new, never neither."""
    link = prefix / ".current.new"
    if link.is_symlink() or link.exists():
        link.unlink()
    os.symlink(Path(os.path.relpath(slot, prefix)), link)
    os.replace(link, prefix / "current")
    fsync_dir(prefix)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """Flush every file and directory under root before it is renamed into place: a rename that survives a
    power cut must not point at files whose data did not."""
    for dirpath, _, files in os.walk(root):
        for name in files:
            fd = os.open(os.path.join(dirpath, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(Path(dirpath))


def install(bundle: Path, prefix: Path, manifest: dict) -> Path:
    slot = stage(bundle, prefix / "slots" / manifest["bundle_id"], manifest)
    switch(prefix, slot)
    write_launcher(prefix)
    return slot


def write_launcher(prefix: Path) -> Path:
    bindir = prefix / "bin"
    bindir.mkdir(exist_ok=True)
    launcher = bindir / "claw"
    tmp = bindir / ".claw.new"
    tmp.write_text("#!/bin/sh\n"
                   f'PYTHONPATH="{prefix}/current/lib${{PYTHONPATH:+:$PYTHONPATH}}" '
                   f'exec "{sys.executable}" -m clawdbot.cli "$@"\n')
    tmp.chmod(0o755)
    os.replace(tmp, launcher)
    return launcher


def enable_agent(bundle: Path, manifest: dict, root: Path, etc: Path, trust: list[Path], start: bool) -> list[str]:
    """Provision this board for `claw agent` from the bundle alone: the agent's own install (runtime plus
    the agent's requirements) in <root>/agent, the trusted public keys, the bundle's files as parts the
    agent already holds (so flashing this bundle sends nothing), and the boot files in <etc>; then start it.
    Returns what was done, for the user."""
    done = []
    agent_reqs = manifest["install"].get("agent_requirements")
    if not agent_reqs:
        raise InstallError(f"this bundle carries no wheels for the agent's requirements (no "
                           f"install.agent_requirements for {manifest['python']['abi']}); provision the agent "
                           f"from a bundle built with toolchains/board-agent-requirements-"
                           f"{manifest['python']['abi']}.txt")
    for rel in ("boot/clawdbot-agent", "boot/clawdbot-agent.service"):
        if rel not in manifest["files"]:
            raise InstallError(f"this bundle has no {rel}; rebuild it with a clawdbot that makes boot files")
    if not trust and not any((root / "trusted").glob("*.pem")):
        raise InstallError(f"give --trust KEY.pub.pem: the agent refuses every bundle until it trusts a key, "
                           f"and {root / 'trusted'} has none")
    site = stage(bundle, root / "agent", manifest, tuple(agent_reqs))
    done.append(f"installed the agent ({manifest['bundle_id']} with {', '.join(agent_reqs)}) into {site}")
    (root / "trusted").mkdir(parents=True, exist_ok=True)
    for key in trust:
        if b"BEGIN PUBLIC KEY" not in key.read_bytes():
            raise InstallError(f"--trust {key}: not a PEM public key (give the .pub.pem, never the private key)")
        _place(key.read_bytes(), root / "trusted" / key.name, 0o644)
        done.append(f"trusted {key.name}")
    parts = root / "parts"
    parts.mkdir(exist_ok=True)
    held = [bundle / rel for rel in manifest["files"]] + [bundle / "manifest.json"]
    if (bundle / "manifest.json.sig").is_file():
        held.append(bundle / "manifest.json.sig")
    for path in held:
        dest = parts / sha256(path)
        if not dest.is_file():
            _place(path.read_bytes(), dest, 0o644)
    done.append(f"holds {len(held)} parts of {manifest['bundle_id']} in {parts}")
    script = etc / "init.d" / "clawdbot-agent"
    _place((bundle / "boot/clawdbot-agent").read_bytes(), script, 0o755)
    _place((bundle / "boot/clawdbot-agent.service").read_bytes(),
           etc / "systemd" / "system" / "clawdbot-agent.service", 0o644)
    done.append(f"boot files: {script} and {etc / 'systemd/system/clawdbot-agent.service'}")
    if start:
        import subprocess
        if Path("/run/systemd/system").is_dir():
            for argv in (["systemctl", "daemon-reload"], ["systemctl", "enable", "--now", "clawdbot-agent.service"]):
                if subprocess.run(argv).returncode != 0:
                    raise InstallError(f"{' '.join(argv)} failed; its output is above")
            done.append("enabled and started clawdbot-agent.service")
        else:
            if subprocess.run([str(script), "start"]).returncode != 0:
                raise InstallError(f"{script} start failed; see its log")
            done.append(f"started the agent; have your init run `{script} start` at boot")
    return done


def _place(data: bytes, dest: Path, mode: int) -> None:
    """Write `dest` whole or not at all: a temp file beside it, flushed, renamed."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.new")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.chmod(mode)
    os.replace(tmp, dest)
    fsync_dir(dest.parent)


def check(slot: Path, manifest: dict) -> float:
    """Run the bundled model on the recorded inputs; return the worst error relative to the output scale."""
    sys.path.insert(0, str(slot / "lib"))
    import numpy as np
    import clawdbot
    from clawdbot.hal.cpu import fast
    if manifest["drivers"].get("cpu") == "built" and fast.BACKEND != "cython":
        raise InstallError(f"the compiled CPU kernels do not load on this board ({fast.IMPORT_ERROR}); "
                           f"the runtime would fall back to slow numpy kernels")
    spec = manifest["check"]
    session = clawdbot.load(str(slot / manifest["model"]["file"]))
    feeds = {name: np.load(slot / f) for name, f in spec["inputs"].items()}
    outputs = session.run(feeds)
    worst = 0.0
    for name, f in spec["outputs"].items():
        want = np.load(slot / f)
        got = outputs[name]
        if got.shape != want.shape or got.dtype != want.dtype:
            raise InstallError(f"output {name}: got {got.dtype}{list(got.shape)}, the build host recorded "
                               f"{want.dtype}{list(want.shape)}")
        scale = max(1.0, float(np.max(np.abs(want.astype(np.float64))))) if want.size else 1.0
        err = float(np.max(np.abs(got.astype(np.float64) - want.astype(np.float64)))) / scale if want.size else 0.0
        print(f"check: output {name} {got.dtype}{list(got.shape)}: max error {err:.2e} of scale "
              f"(tolerance {spec['tolerance']:.0e})")
        if not err <= spec["tolerance"]:
            raise InstallError(f"output {name} differs from the build host's by {err:.2e} of its scale "
                               f"(tolerance {spec['tolerance']:.0e})")
        worst = max(worst, err)
    flags = (fast.build_config() or {}).get("cflags", [])
    print(f"check: {manifest['model']['name']} runs on {platform.machine()} with the {fast.BACKEND} kernels "
          f"({' '.join(flags) or 'flags not recorded'}); outputs match the build host's")
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prefix", default="/opt/clawdbot", help="install root (default /opt/clawdbot)")
    parser.add_argument("--check", action="store_true", help="run the bundled model and compare its outputs")
    parser.add_argument("--verify-only", action="store_true", help="only check the files' sha256 sums")
    parser.add_argument("--check-slot", metavar="DIR", help="only run the health check of an installed slot")
    agent = parser.add_argument_group("provisioning the device agent (`claw agent`), instead of an install")
    agent.add_argument("--enable-agent", action="store_true",
                       help="install the agent, trust --trust keys, put its boot files in place and start it; "
                            "then flash this board with `invoke flash`")
    agent.add_argument("--trust", type=Path, action="append", default=[], metavar="KEY.pub.pem",
                       help="a public key whose signed bundles the agent accepts (repeatable)")
    agent.add_argument("--agent-root", type=Path, default=Path("/var/lib/clawdbot"),
                       help="the agent's state: slots, parts, trusted keys (default /var/lib/clawdbot)")
    agent.add_argument("--etc", type=Path, default=Path("/etc"), help="where the boot files go (default /etc)")
    agent.add_argument("--no-start", action="store_true", help="only install; start nothing")
    args = parser.parse_args(argv)
    try:
        if args.check_slot:
            slot = Path(args.check_slot).resolve()
            check(slot, load_manifest(slot))
            return 0
        manifest = load_manifest(HERE)
        verify(HERE, manifest)
        print(f"verified {len(manifest['files'])} files of {manifest['bundle_id']}")
        if args.verify_only:
            return 0
        check_platform(manifest)
        if args.enable_agent:
            for line in enable_agent(HERE, manifest, args.agent_root.resolve(), args.etc, args.trust,
                                     start=not args.no_start):
                print(line)
            return 0
        slot = install(HERE, Path(args.prefix).resolve(), manifest)
        print(f"installed {manifest['bundle_id']} into {slot}; {Path(args.prefix).resolve() / 'bin/claw'} runs it")
        if args.check:
            check(slot, manifest)
    except InstallError as e:
        print(f"install.py: error: {e}", file=sys.stderr)
        return 1
    except KeyError as e:  # a manifest from another bundle format, or edited by hand
        print(f"install.py: error: manifest.json has no field {e}; is this bundle for another clawdbot "
              f"version's installer?", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
