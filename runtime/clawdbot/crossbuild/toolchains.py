"""Toolchain descriptions (toolchains/<name>.toml): which Dockerfile builds the image, which Python the
wheel targets, and how the host fallback (--toolchain host) cross-compiles without Docker."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import BuildError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

_REQUIRED = ("name", "description", "arch", "dockerfile", "debian_suite", "python", "wheel_platform",
             "build_requirements", "record_packages", "cross", "host")


@dataclass(frozen=True)
class Toolchain:
    name: str
    description: str
    arch: str
    dockerfile: Path
    debian_suite: str
    python: str
    wheel_platform: str
    build_requirements: Path
    record_packages: tuple[str, ...]
    cross: dict = field(default_factory=dict)
    host: dict = field(default_factory=dict)
    path: Path = Path()

    @property
    def cross_env(self) -> dict[str, str]:
        """Variables that make a build Python read the target's sysconfig (empty for a native toolchain)."""
        env = {}
        if "sysconfigdata" in self.cross:
            env["_PYTHON_SYSCONFIGDATA_NAME"] = self.cross["sysconfigdata"]
        if "host_platform" in self.cross:
            env["_PYTHON_HOST_PLATFORM"] = self.cross["host_platform"]
        return env


def load_toolchain(name: str, root: Path) -> Toolchain:
    directory = root / "toolchains"
    path = directory / f"{name}.toml"
    if not path.is_file():
        known = sorted(p.stem for p in directory.glob("*.toml"))
        raise BuildError(f"unknown toolchain {name!r} (no {path}); known toolchains: {', '.join(known)}")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise BuildError(f"{path}: {e}") from None
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise BuildError(f"{path}: missing field(s) {', '.join(missing)}")
    unknown = sorted(set(data) - set(_REQUIRED))
    if unknown:
        raise BuildError(f"{path}: unknown field(s) {', '.join(unknown)}")
    if data["name"] != name:
        raise BuildError(f"{path}: name = {data['name']!r} must match the file name {name!r}")
    for key in ("dockerfile", "build_requirements"):
        if not (root / data[key]).is_file():
            raise BuildError(f"{path}: {key} = {data[key]!r} does not exist")
    return Toolchain(
        name=name, description=data["description"], arch=data["arch"], dockerfile=root / data["dockerfile"],
        debian_suite=data["debian_suite"], python=data["python"], wheel_platform=data["wheel_platform"],
        build_requirements=root / data["build_requirements"], record_packages=tuple(data["record_packages"]),
        cross=dict(data["cross"]), host=dict(data["host"]), path=path)
