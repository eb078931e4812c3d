"""Board targets (targets/<name>.toml): what a board's CPU, Python, memory and access look like, so that
`invoke build --target NAME` knows what to compile for and how big a model may be.

Files are checked against targets/schema.json (the documented format) and then for the relations the schema
cannot express. Every problem is a TargetError that names the file and the field (`memory.variants[1].ram_mib`),
never a jsonschema or tomllib traceback, because these files are edited by hand.
"""
from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Iterator, Mapping

from ..errors import ClawError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

MIB = 1 << 20

# The pre-PEP 600 manylinux names stand for these glibc versions.
_LEGACY_MANYLINUX = {"manylinux1": (2, 5), "manylinux2010": (2, 12), "manylinux2014": (2, 17)}


class TargetError(ClawError):
    """A target is unknown, or its file is malformed: names the file and the field at fault."""


@dataclass(frozen=True)
class MemoryVariant:
    ram_mib: int
    budget_mib: int

    @property
    def budget_bytes(self) -> int:
        return self.budget_mib * MIB


@dataclass(frozen=True)
class Target:
    name: str
    description: str
    arch: str
    toolchain: str
    drivers: tuple[str, ...]
    cpu_model: str
    cores: int
    cflags: tuple[str, ...]
    python_version: str
    python_abi: str
    platforms: tuple[str, ...]
    os: str
    glibc: str
    build: str
    ram_variants: tuple[MemoryVariant, ...]
    default_ram_mib: int
    # Read-only views, so a loaded target cannot be changed behind the caller's back; dict(...) copies them.
    access: Mapping[str, Any] = field(hash=False)
    emulation: Mapping[str, Any] = field(hash=False)
    path: Path = field(compare=False)

    @property
    def native(self) -> bool:
        """The board's code runs on the build host as is (no QEMU)."""
        return bool(self.emulation["native"])

    def variant(self, ram_mib: int | None = None) -> MemoryVariant:
        """The RAM variant with ram_mib MiB; None means the target's default."""
        want = self.default_ram_mib if ram_mib is None else ram_mib
        for v in self.ram_variants:
            if v.ram_mib == want:
                return v
        sizes = ", ".join(str(v.ram_mib) for v in self.ram_variants)
        raise TargetError(f"target {self.name!r} has no {want} MiB RAM variant; its variants: {sizes} MiB")

    def budget_bytes(self, ram_mib: int | None = None) -> int:
        """Bytes the runtime may use on that variant (weights + activations + overhead)."""
        return self.variant(ram_mib).budget_bytes

    def to_manifest(self) -> dict:
        """What the bundle is built for, in the target file's own shape. access and emulation describe how to
        reach or emulate a board, not the bundle, and path is machine-specific, so they are left out (the
        manifest must not change with the checkout's location)."""
        return {
            "name": self.name, "description": self.description, "arch": self.arch,
            "toolchain": self.toolchain, "drivers": list(self.drivers),
            "cpu": {"model": self.cpu_model, "cores": self.cores, "cflags": list(self.cflags)},
            "python": {"version": self.python_version, "abi": self.python_abi, "platforms": list(self.platforms),
                       "os": self.os, "glibc": self.glibc, "build": self.build},
            "memory": {"default_ram_mib": self.default_ram_mib,
                       "variants": [{"ram_mib": v.ram_mib, "budget_mib": v.budget_mib} for v in self.ram_variants]},
        }


def known_targets(targets_dir: Path | str) -> list[str]:
    return sorted(p.stem for p in Path(targets_dir).glob("*.toml"))


def load_target(name: str, targets_dir: Path | str, toolchains_dir: Path | str | None = None) -> Target:
    """Load and check targets_dir/<name>.toml. toolchains_dir (default: targets_dir/../toolchains) is where
    the file named by `toolchain` must exist."""
    targets_dir = Path(targets_dir)
    known = known_targets(targets_dir)
    # Looking the name up among the files (rather than opening targets_dir/name.toml) also keeps a name like
    # "../x" from reaching outside the directory.
    if name not in known:
        listed = ", ".join(known) if known else f"none (no .toml files in {_shown(targets_dir)})"
        raise TargetError(f"unknown target {name!r}; known targets: {listed}")
    return _load_file(targets_dir / f"{name}.toml", _schema(targets_dir), toolchains_dir)


def load_all(targets_dir: Path | str, toolchains_dir: Path | str | None = None) -> dict[str, Target]:
    """Every target in targets_dir, by name (sorted); the first bad file raises."""
    targets_dir = Path(targets_dir)
    schema = _schema(targets_dir)
    return {n: _load_file(targets_dir / f"{n}.toml", schema, toolchains_dir) for n in known_targets(targets_dir)}


def schema_fields(schema: Mapping) -> dict[str, str]:
    """Every property of the schema as a field path (`cpu.cores`, `memory.variants[].ram_mib`), with its
    description ("" where it has none). The README test and error messages use it."""
    out: dict[str, str] = {}

    def walk(node: Mapping, prefix: str) -> None:
        for key, sub in node.get("properties", {}).items():
            path = f"{prefix}{key}"
            out[path] = sub.get("description", "")
            walk(sub, path + ".")
            if isinstance(sub.get("items"), Mapping):
                walk(sub["items"], path + "[].")

    walk(schema, "")
    return out


# ---- loading and checking -------------------------------------------------------------------------------

def _shown(path: Path) -> str:
    # Relative to the working directory where possible: "targets/rpi4.toml" reads better than a long path.
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _schema(targets_dir: Path) -> dict:
    path = targets_dir / "schema.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise TargetError(f"{_shown(path)}: missing; target files cannot be checked without it") from None
    except json.JSONDecodeError as e:
        raise TargetError(f"{_shown(path)}: not valid JSON: {e}") from None


def _load_file(path: Path, schema: dict, toolchains_dir: Path | str | None) -> Target:
    shown = _shown(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:  # its message carries "(at line L, column C)"
        raise TargetError(f"{shown}: TOML syntax error: {e}") from None
    except UnicodeDecodeError as e:
        raise TargetError(f"{shown}: not UTF-8 text ({e.reason} at byte {e.start})") from None

    problems = _schema_problems(data, schema)
    if not problems:  # the relations below assume the shapes the schema guarantees
        tc_dir = Path(toolchains_dir) if toolchains_dir is not None else path.absolute().parent.parent / "toolchains"
        problems = _relation_problems(data, path.stem, tc_dir)
    if problems:
        raise TargetError("\n".join(f"{shown}: {p}" for p in problems))

    cpu, py, mem = data["cpu"], data["python"], data["memory"]
    return Target(
        name=data["name"], description=data["description"], arch=data["arch"], toolchain=data["toolchain"],
        drivers=tuple(data["drivers"]), cpu_model=cpu["model"], cores=cpu["cores"], cflags=tuple(cpu["cflags"]),
        python_version=py["version"], python_abi=py["abi"], platforms=tuple(py["platforms"]), os=py["os"],
        glibc=py["glibc"], build=py["build"],
        ram_variants=tuple(MemoryVariant(v["ram_mib"], v["budget_mib"]) for v in mem["variants"]),
        default_ram_mib=mem["default_ram_mib"],
        access=MappingProxyType(dict(data["access"])), emulation=MappingProxyType(dict(data["emulation"])),
        path=path)


def _dotted(parts) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _schema_problems(data: dict, schema: dict) -> list[str]:
    try:
        import jsonschema
    except ModuleNotFoundError:  # imported here so that a board can use Target without the build-only dependency
        raise TargetError("checking target files needs the jsonschema package (pip install jsonschema)") from None
    fields = schema_fields(schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(data), key=lambda e: [str(p) for p in e.absolute_path])
    lines: list[str] = []
    for e in errors:
        lines.extend(_explain(e, fields))
    return list(dict.fromkeys(lines))  # `required` reports once per missing key, with the same instance


def _explain(e, fields: dict[str, str]) -> Iterator[str]:
    """jsonschema's messages say what is wrong but not where, and say "additional properties" for a typo;
    turn each into `field.path: what to do`."""
    path = _dotted(e.absolute_path)
    if e.validator == "additionalProperties":
        allowed = sorted(e.schema.get("properties", {}))
        for key in sorted(set(e.instance) - set(allowed)):
            close = difflib.get_close_matches(key, allowed, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"allowed keys: {', '.join(allowed)}"
            yield f"{_join(path, key)}: unknown key; {hint}"
    elif e.validator == "required":
        for key in e.validator_value:
            if key not in e.instance:
                yield f"{_join(path, key)}: missing (required)"
    elif "propertyNames" in e.absolute_schema_path:  # a key that is valid elsewhere but not in this case
        yield f"{_join(path, e.instance)}: not allowed here: {e.schema.get('description', '')}".rstrip(": ")
    else:
        msg = e.message
        if e.validator in ("pattern", "const"):  # the raw regex or value says little; the description says why
            desc = fields.get(re.sub(r"\[\d+\]", "[]", path).removesuffix("[]"), "")
            msg += f" ({desc})" if desc else ""
        yield f"{path or '(top level)'}: {msg}"


def _relation_problems(data: dict, stem: str, toolchains_dir: Path) -> list[str]:
    problems = []
    if data["name"] != stem:
        problems.append(f"name: {data['name']!r} must equal the file name's stem {stem!r}")

    py = data["python"]
    want_abi = "cp" + py["version"].replace(".", "")
    if py["abi"] != want_abi:
        problems.append(f"python.abi: {py['abi']!r} does not match python.version {py['version']!r} "
                        f"(expected {want_abi!r})")
    glibc = tuple(int(x) for x in py["glibc"].split("."))
    for i, tag in enumerate(py["platforms"]):
        if not tag.endswith("_" + data["arch"]):
            problems.append(f"python.platforms[{i}]: {tag!r} does not end in the arch {data['arch']!r}")
            continue
        base = tag.removesuffix("_" + data["arch"])
        m = re.fullmatch(r"manylinux_(\d+)_(\d+)", base)
        needs = (int(m[1]), int(m[2])) if m else _LEGACY_MANYLINUX.get(base)
        if needs and needs > glibc:
            # pip would fetch wheels linked against a newer glibc than the board has; they fail at import.
            problems.append(f"python.platforms[{i}]: {tag!r} needs glibc {needs[0]}.{needs[1]}, newer than "
                            f"python.glibc {py['glibc']!r}")

    mem = data["memory"]
    sizes = [v["ram_mib"] for v in mem["variants"]]
    for i, v in enumerate(mem["variants"]):
        if sizes.index(v["ram_mib"]) != i:
            problems.append(f"memory.variants[{i}].ram_mib: {v['ram_mib']} is listed twice")
        if v["budget_mib"] >= v["ram_mib"]:
            problems.append(f"memory.variants[{i}].budget_mib: {v['budget_mib']} must be less than ram_mib "
                            f"{v['ram_mib']} (the OS needs some of it)")
    if mem["default_ram_mib"] not in sizes:
        problems.append(f"memory.default_ram_mib: {mem['default_ram_mib']} is not one of the variants' ram_mib "
                        f"({', '.join(map(str, sizes))})")

    tc_file = toolchains_dir / f"{data['toolchain']}.toml"
    if not tc_file.is_file():
        problems.append(f"toolchain: {data['toolchain']!r} has no toolchain file {_shown(tc_file)}")
    return problems
