"""`invoke test --target T`: install a bundle on an emulated board and run its health check there.

aarch64 targets run under qemu-user (`qemu-aarch64 -L SYSROOT`) with a Debian arm64 userland standing in for
the board's; the bundle's own install.py installs it offline with the bundle's pip, then runs the bundled
model and compares with the outputs the build host recorded. Native targets (x86_64) do the same with the
host's Debian Python, without emulation.
"""
from __future__ import annotations

import shutil
import sys
import tempfile
from pathlib import Path

from ..errors import BuildError
from . import bundle as bundle_mod
from . import debian, wheelhouse
from .progress import Progress
from .targets import Target

# qemu-user hands the guest the host's /proc/cpuinfo (x86), and some arm64 libraries probe it; a board-like
# one inside the sysroot (qemu -L serves sysroot files first) keeps them on their ARM code paths.
_CPU_PART = {"cortex-a72": "0xd08", "cortex-a76": "0xd0b", "cortex-a78ae": "0xd42", "cortex-a55": "0xd05"}


def _fake_cpuinfo(sysroot: Path, target: Target) -> None:
    part = _CPU_PART.get(target.cpu_model.split(".")[0], "0xd08")
    entry = ("processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
             "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x0\nCPU part\t: {part}\n"
             "CPU revision\t: 3\n\n")
    (sysroot / "proc").mkdir(exist_ok=True)
    (sysroot / "proc/cpuinfo").write_text("".join(entry.format(i=i, part=part) for i in range(target.cores)))


def board_sysroot(target: Target, cache: Path, progress: Progress) -> Path:
    em = target.emulation
    ver = target.python_version
    # The same package set as the host toolchain's sysroot, so one cached userland serves both.
    root = debian.sysroot(cache, em["sysroot_arch"], em["sysroot_suite"], [f"python{ver}", f"libpython{ver}-dev"],
                          progress)
    _fake_cpuinfo(root, target)
    return root


def board_python(target: Target, cache: Path, progress: Progress) -> tuple[list[str], str]:
    """The argv prefix that runs the board's Python here, and a phrase saying how."""
    ver = target.python_version
    if target.native:
        python = shutil.which(f"python{ver}", path="/usr/bin")
        if python is None:
            raise BuildError(f"testing a {target.name} bundle natively needs Debian's python{ver}")
        return [python], f"natively with {python}"
    qemu = shutil.which(target.emulation["qemu_user"])
    if qemu is None:
        raise BuildError(f"{target.emulation['qemu_user']} not found: apt-get install qemu-user (or `invoke setup`)")
    sysroot = board_sysroot(target, cache, progress)
    cpu = target.emulation.get("qemu_cpu", "max")
    # The interpreter is named by its host path: qemu-user can't follow a guest execve, and -L only serves
    # paths that exist in the sysroot, so the bundle and the prefix (host /tmp paths) stay shared.
    return [qemu, "-L", str(sysroot), "-cpu", cpu, str(sysroot / f"usr/bin/python{ver}")], \
        f"under {Path(qemu).name} -cpu {cpu}"


def test_bundle(bundle: Path, target: Target, cache: Path, progress: Progress | None = None, *,
                kernel_tests: Path | None = None) -> list[str]:
    """Install and check `bundle` on the emulated (or native) board; returns the health check's report lines.

    With `kernel_tests` (a clawdbot checkout), also run its tests/hal/cpu/test_fast.py there against the
    installed kernels: every compiled kernel against its numpy twin and onnxruntime, on the board's CPU model."""
    progress = progress or Progress()
    manifest = bundle_mod.read_manifest(bundle)
    if manifest["target"]["name"] != target.name:
        raise BuildError(f"{bundle} was built for {manifest['target']['name']}, not {target.name}")
    if manifest["install"]["mode"] != "wheel" and not target.native:
        raise BuildError(f"{target.name} bundles compile on the board (Python {target.python_version} is not "
                         f"available here), so they cannot be tested under emulation")
    python, how = board_python(target, cache, progress)
    with tempfile.TemporaryDirectory(prefix="clawdbot-board-") as work:
        top = bundle_mod.extract(bundle, Path(work))
        prefix = Path(work) / "prefix"
        env = {"PATH": "/usr/bin:/bin", "LC_ALL": "C.UTF-8", "HOME": work}  # nothing of ours leaks in
        with progress.step(f"install and check {bundle.name} {how}"):
            tail = progress.run([*python, str(top / "install.py"), "--prefix", str(prefix), "--check"],
                                what=f"bundle test for {target.name}", env=env)
        report = [line for line in tail if line.startswith("check:")]
        for line in report:
            progress.say(f"    {line}")
        if kernel_tests is not None:
            report += _kernel_tests(kernel_tests, prefix / "current" / "lib", target, cache, python, how, env,
                                    Path(work), progress)
        return report


def _kernel_tests(repo: Path, lib: Path, target: Target, cache: Path, python: list[str], how: str,
                  env: dict, work: Path, progress: Progress) -> list[str]:
    req = repo / "toolchains" / f"board-test-requirements-{target.python_abi}.txt"
    if not req.is_file():
        raise BuildError(f"no {req}: the kernel tests' dependencies for {target.python_abi} are not pinned")
    wheels = wheelhouse.download(req, cache, progress, platforms=target.platforms,
                                 python_version=target.python_version, abi=target.python_abi)
    testlib = work / "testlib"
    with progress.step(f"install the kernel tests' dependencies for {target.python_abi} {target.platforms[0]}"):
        argv = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--root-user-action=ignore", "--no-index",
                "--find-links", str(wheels[0].parent), "--target", str(testlib), "--only-binary=:all:",
                "--python-version", target.python_version, "--implementation", "cp", "--abi", target.python_abi,
                "--abi", "abi3", "--abi", "none", "-r", str(req)]
        for p in target.platforms:
            argv += ["--platform", p]
        progress.run(argv, what="install the kernel tests' dependencies")
    # The bundle's lib first, so its numpy and kernels are the ones under test; the flag tells test_fast
    # that compiled kernels must be in use although this checkout holds none for the board.
    test_env = {**env, "PYTHONPATH": f"{lib}:{testlib}", "CLAWDBOT_EXPECT_COMPILED": "1"}
    # One test spawns sys.executable in a subprocess, which qemu-user can't follow into a guest binary.
    with progress.step(f"kernel tests {how}"):
        tail = progress.run([*python, "-m", "pytest", str(repo / "tests/hal/cpu/test_fast.py"), "-q",
                             "-p", "no:cacheprovider", "-k", "not test_pure_python_env_selects_numpy"],
                            what=f"kernel tests for {target.name}", env=test_env, cwd=repo)
    summary = [f"kernels: {line}" for line in tail if " passed" in line]
    for line in summary:
        progress.say(f"    {line}")
    return summary
