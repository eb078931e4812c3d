"""Compile the runtime wheel (its Cython kernels) for a target, in the Docker toolchain or on the host.

Both paths run the same `pip wheel` on the same exported sources with the same pinned Cython and setuptools,
and give byte-identical wheels. What makes that so:
  * path-dependent flags go in CPPFLAGS, never in CLAWDBOT_CFLAGS: Cython copies an Extension's compile args
    into the generated C, so a path there would change the code;
  * -ffile-prefix-map strips the build directory (and the sysroot) from whatever still records a path;
  * -g0 and -s: no debug info (it holds paths) and a wheel a fifth the size, which a serial link feels;
  * SOURCE_DATE_EPOCH dates every zip entry.
CFLAGS is left alone on purpose: setuptools replaces the interpreter's CFLAGS with it instead of adding.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import BuildError
from . import debian, wheelhouse
from .engine import Engine
from .progress import Progress
from .targets import Target
from .toolchains import Toolchain


def _flags_env(target: Target, src: str, epoch: int, extra_prefix_maps: tuple[str, ...] = ()) -> dict[str, str]:
    maps = [f"-ffile-prefix-map={src}=."] + [f"-ffile-prefix-map={p}=" for p in extra_prefix_maps]
    return {
        "CLAWDBOT_CFLAGS": " ".join(target.cflags),
        "CPPFLAGS": " ".join(["-g0", *maps]),
        "LDFLAGS": "-s",
        "SOURCE_DATE_EPOCH": str(epoch),
        "PYTHONHASHSEED": "0",
    }


def _one_wheel(out: Path, tc: Toolchain) -> Path:
    wheels = sorted(out.glob("clawdbot-*.whl"))
    if len(wheels) != 1:
        raise BuildError(f"expected one clawdbot wheel in {out}, found {[w.name for w in wheels]}")
    if not wheels[0].name.endswith(f"-{tc.wheel_platform}.whl"):
        raise BuildError(f"{wheels[0].name} is not a {tc.wheel_platform} wheel: the cross build fell back to "
                         f"the build machine's platform")
    return wheels[0]


def wheel_in_docker(engine: Engine, src: Path, out: Path, target: Target, tc: Toolchain, epoch: int,
                    cache: Path, progress: Progress, base_image: str | None = None) -> tuple[Path, dict]:
    """Build (or reuse) the toolchain image and compile there; returns the wheel and the toolchain record."""
    image, image_id = engine.toolchain_image(tc, cache, base_image)
    env = {**_flags_env(target, "/src", epoch), "HOME": "/tmp", "PIP_NO_CACHE_DIR": "1",
           "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    out.mkdir(parents=True, exist_ok=True)
    with progress.step(f"compile the runtime wheel for {target.name} in {image} (about 45 s)"):
        engine.run(image, ["pip", "wheel", "--no-build-isolation", "--no-deps", "--no-index", "-w", "/out", "/src"],
                   what=f"wheel build for {target.name}", mounts={src: "/src", out: "/out"}, env=env,
                   workdir="/src")
    return _one_wheel(out, tc), {"kind": "docker", "name": tc.name, "image": image, "image_id": image_id,
                                 "packages": engine.package_versions(image, tc.record_packages)}


def host_venv(tc: Toolchain, cache: Path, progress: Progress) -> Path:
    """A venv of the Debian Python the target's ABI matches, with the pinned build requirements."""
    python = shutil.which(f"python{tc.python}", path="/usr/bin") or shutil.which(f"python{tc.python}")
    if python is None:
        raise BuildError(f"--toolchain host needs Python {tc.python} (Debian: apt-get install "
                         f"python{tc.python} python{tc.python}-venv)")
    wheels = wheelhouse.download(tc.build_requirements, cache, progress,
                                 platforms=wheelhouse.build_platforms(os.uname().machine),
                                 python_version=tc.python, abi="cp" + tc.python.replace(".", ""))
    key = hashlib.sha256(tc.build_requirements.read_bytes() + python.encode()).hexdigest()[:16]
    venv = cache / "host-venvs" / f"py{tc.python}-{key}"
    if (venv / "bin" / "python").exists() and (venv / ".complete").exists():
        return venv
    shutil.rmtree(venv, ignore_errors=True)
    with progress.step(f"build venv {venv.name}"):
        progress.run([python, "-m", "venv", str(venv)], what=f"venv for Python {tc.python} (python{tc.python}-venv installed?)")
        progress.run([str(venv / "bin/python"), "-m", "pip", "install", "-q", "--no-index", "--find-links",
                      str(wheels[0].parent), "-r", str(tc.build_requirements)], what="install build requirements")
    (venv / ".complete").touch()
    return venv


def wheel_on_host(src: Path, out: Path, target: Target, tc: Toolchain, epoch: int, cache: Path,
                  progress: Progress) -> tuple[Path, dict]:
    """Compile with the host's Debian compiler (and an arm64 sysroot when crossing); returns the wheel and the
    toolchain record."""
    cc = tc.host.get("cc", "gcc")
    if shutil.which(cc) is None:
        packages = " ".join(tc.host.get("packages", []))
        raise BuildError(f"--toolchain host needs {cc}: apt-get install {packages} (or `invoke setup`)")
    venv = host_venv(tc, cache, progress)
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")}
    env.update(_flags_env(target, str(src), epoch))
    packages = debian.host_package_versions(tc.host.get("record_packages", []))
    if "sysconfigdata" in tc.cross:
        sysroot = debian.sysroot(cache, tc.host["sysroot_arch"], tc.debian_suite, tc.host["sysroot_packages"], progress)
        # The host Python reads the target's sysconfig (compiler names, EXT_SUFFIX) from the sysroot;
        # --sysroot gives gcc the arm64 libc and multiarch dirs, -I the arm64 pyconfig.h.
        shim = Path(tempfile.mkdtemp(prefix="clawdbot-sysconfig-"))
        name = tc.cross["sysconfigdata"] + ".py"
        found = sorted(sysroot.glob(f"usr/lib/python{tc.python}/{name}"))
        if not found:
            raise BuildError(f"sysroot {sysroot} has no {name}; is libpython{tc.python}-dev among its packages?")
        shutil.copy(found[0], shim / name)
        env.update(_flags_env(target, str(src), epoch, extra_prefix_maps=(str(sysroot),)))
        env["CPPFLAGS"] += f" -I{sysroot}/usr/include/python{tc.python}"
        env.update(tc.cross_env)
        env["CC"] = f"{cc} --sysroot={sysroot}"
        env["PYTHONPATH"] = str(shim)
        listed = json.loads((sysroot / "packages.json").read_text())
        packages.update({f"{p}:{tc.host['sysroot_arch']}": listed[p] for p in ("libc6-dev", f"libpython{tc.python}-dev")
                         if p in listed})
    out.mkdir(parents=True, exist_ok=True)
    with progress.step(f"compile the runtime wheel for {target.name} with the host's {cc} (about 45 s)"):
        progress.run([str(venv / "bin/python"), "-m", "pip", "wheel", "--no-build-isolation", "--no-deps",
                      "--no-index", "--disable-pip-version-check", "-w", str(out), str(src)],
                     what=f"host wheel build for {target.name}", env=env, cwd=src)
    return _one_wheel(out, tc), {"kind": "host", "name": tc.name, "packages": packages}


def check_wheel(wheel: Path, tc: Toolchain, target: Target) -> list[str]:
    """Check that every .so in the wheel is an ELF for the toolchain's machine (read from the header, no
    `file` needed) and that the wheel records the target's compiler flags; returns the .so names."""
    import zipfile
    machines = {0x3E: "x86_64", 0xB7: "aarch64"}
    found = []
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.endswith(".so"):
                head = z.read(name)[:20]
                machine = machines.get(int.from_bytes(head[18:20], "little"), "unknown")
                if head[:4] != b"\x7fELF" or machine != tc.arch:
                    raise BuildError(f"{wheel.name}: {name} is {machine}, not {tc.arch}")
                found.append(name)
        if not found:
            raise BuildError(f"{wheel.name} holds no compiled kernels (.so): the Cython build was skipped")
        config = [n for n in z.namelist() if n.endswith("_cython/build_config.json")]
        cflags = json.loads(z.read(config[0]))["cflags"] if config else []
    missing = [f for f in target.cflags if f not in cflags]
    if missing:
        raise BuildError(f"{wheel.name} was not compiled with {target.name}'s flags {missing} (recorded: {cflags})")
    return found
