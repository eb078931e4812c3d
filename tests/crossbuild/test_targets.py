"""Board target files: the shipped ones load, and hand-edited mistakes give errors naming file and field."""
from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import jsonschema
import pytest

from clawdbot.crossbuild.targets import (MemoryVariant, Target, TargetError, known_targets, load_all,
                                         load_target, schema_fields)
from clawdbot.errors import ClawError

ROOT = Path(__file__).resolve().parents[2]
TARGETS = ROOT / "targets"
SHIPPED = ["jetson-orin-nano", "rk3588", "rpi4", "rpi5", "x86_64"]


def _schema() -> dict:
    return json.loads((TARGETS / "schema.json").read_text())


# ---- the shipped targets ----------------------------------------------------------------------------------

def test_shipped_targets_all_load_and_validate():
    targets = load_all(TARGETS)  # checks the toolchain files in the real toolchains/ too
    assert list(targets) == SHIPPED
    for name, t in targets.items():
        assert t.name == name and t.path == TARGETS / f"{name}.toml"
        assert "cpu" in t.drivers
        assert t.python_abi == "cp" + t.python_version.replace(".", "")
        assert all(v.budget_mib < v.ram_mib for v in t.ram_variants)
        assert t.native == (t.arch == "x86_64")
        assert (ROOT / "toolchains" / f"{t.toolchain}.toml").is_file()


def test_shipped_target_facts():
    rpi4 = load_target("rpi4", TARGETS)
    assert (rpi4.arch, rpi4.cores, rpi4.cflags, rpi4.python_abi, rpi4.glibc) == \
        ("aarch64", 4, ("-mcpu=cortex-a72",), "cp311", "2.36")
    jetson = load_target("jetson-orin-nano", TARGETS)
    assert (jetson.build, jetson.python_abi, jetson.toolchain, jetson.cores) == \
        ("on-board", "cp310", "jetson-aarch64", 6)
    assert set(jetson.drivers) == {"cpu", "cuda"}
    assert load_target("rk3588", TARGETS).cflags == ("-mcpu=cortex-a76.cortex-a55",)
    x86 = load_target("x86_64", TARGETS)
    assert x86.native and set(x86.emulation) == {"native"}


def test_unknown_target_lists_known_ones():
    with pytest.raises(TargetError) as e:
        load_target("rpi3", TARGETS)
    assert str(e.value) == "unknown target 'rpi3'; known targets: " + ", ".join(SHIPPED)
    assert isinstance(e.value, ClawError)


def test_target_name_cannot_reach_outside_the_directory():
    with pytest.raises(TargetError, match="unknown target '../targets/rpi4'"):
        load_target("../targets/rpi4", TARGETS)


# ---- the schema and its documentation ---------------------------------------------------------------------

def test_schema_is_valid_and_every_property_is_described():
    schema = _schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    fields = schema_fields(schema)
    assert "memory.variants[].budget_mib" in fields and "emulation.system_machine" in fields
    assert [p for p, d in fields.items() if not d] == []


def test_readme_covers_every_schema_property():
    readme = (TARGETS / "README.md").read_text()
    # Tables appear as their TOML header (`[cpu]`), every other field by its path (`memory.variants[].ram_mib`).
    missing = [p for p in schema_fields(_schema()) if f"`{p}`" not in readme and f"`[{p}]`" not in readme]
    assert missing == []


def test_schema_forbids_unknown_keys_everywhere():
    def objects(node):
        if isinstance(node, dict):
            if node.get("type") == "object":
                yield node
            for v in node.values():
                yield from objects(v)

    found = list(objects(_schema()))
    assert len(found) >= 7  # top level, cpu, python, memory, a variant, access, emulation
    assert all(o.get("additionalProperties") is False for o in found)


# ---- variants and manifest -------------------------------------------------------------------------------

def test_variant_selection():
    t = load_target("rpi4", TARGETS)
    assert t.variant() == t.variant(4096) == MemoryVariant(4096, 2560)
    assert t.variant(8192) == MemoryVariant(8192, 6144)
    assert t.budget_bytes() == 2560 << 20 and t.budget_bytes(8192) == 6144 << 20
    with pytest.raises(TargetError, match=r"'rpi4' has no 3000 MiB RAM variant; its variants: 2048, 4096, 8192 MiB"):
        t.variant(3000)


def test_manifest_is_json_and_machine_independent():
    t = load_target("jetson-orin-nano", TARGETS)
    manifest = json.loads(json.dumps(t.to_manifest()))
    assert manifest["python"] == {"version": "3.10", "abi": "cp310", "platforms": list(t.platforms),
                                  "os": t.os, "glibc": "2.35", "build": "on-board"}
    assert manifest["memory"]["variants"] == [{"ram_mib": v.ram_mib, "budget_mib": v.budget_mib}
                                              for v in t.ram_variants]
    assert str(ROOT) not in json.dumps(manifest)


def test_target_is_read_only():
    t = load_target("rpi4", TARGETS)
    with pytest.raises(AttributeError):
        t.cores = 8  # type: ignore[misc]
    with pytest.raises(TypeError):
        t.access["ssh_user"] = "root"  # type: ignore[index]
    assert isinstance(t, Target) and dict(t.access)["ssh_user"] == "pi"


# ---- malformed files ------------------------------------------------------------------------------------

RPI4 = (TARGETS / "rpi4.toml").read_text()


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    # Errors show file paths relative to the working directory, as `invoke build` run from the repo would.
    monkeypatch.chdir(tmp_path)


def _tree(tmp_path: Path, text: str, stem: str = "rpi4", toolchains=("aarch64-linux-gnu", "x86_64-linux-gnu",
                                                                       "jetson-aarch64")) -> Path:
    """A targets/ dir holding schema.json and one target file, next to a toolchains/ stub."""
    targets = tmp_path / "targets"
    targets.mkdir(parents=True)
    shutil.copy(TARGETS / "schema.json", targets)
    (targets / f"{stem}.toml").write_text(text)
    (tmp_path / "toolchains").mkdir()
    for name in toolchains:
        (tmp_path / "toolchains" / f"{name}.toml").write_text(f'name = "{name}"\n')
    return targets


def _error(tmp_path: Path, text: str, stem: str = "rpi4", **kw) -> str:
    targets = _tree(tmp_path, text, stem, **kw)
    with pytest.raises(TargetError) as e:
        load_target(stem, targets)
    msg = str(e.value)
    # Every line names the file: errors are read without the traceback.
    shown = os.path.relpath(targets / f"{stem}.toml")  # e.g. targets/rpi4.toml
    assert all(line.startswith(shown + ": ") for line in msg.splitlines()), msg
    return msg


def _edit(old: str, new: str, text: str = RPI4) -> str:
    assert old in text, old
    return text.replace(old, new, 1)


def test_the_tree_helper_makes_a_loadable_copy(tmp_path):
    assert load_target("rpi4", _tree(tmp_path, RPI4)) == load_target("rpi4", TARGETS)


def test_type_error_names_file_and_field(tmp_path):
    msg = _error(tmp_path, _edit("cores = 4", 'cores = "four"'))
    assert "rpi4.toml: cpu.cores: 'four' is not of type 'integer'" in msg


def test_negative_budget_names_the_variant(tmp_path):
    msg = _error(tmp_path, _edit("budget_mib = 2560", "budget_mib = -5"))
    assert msg == "targets/rpi4.toml: memory.variants[1].budget_mib: -5 is less than the minimum of 1"


def test_unknown_key_is_a_typo_with_a_suggestion(tmp_path):
    msg = _error(tmp_path, _edit("cflags = [", "cflag = ["))
    assert "rpi4.toml: cpu.cflag: unknown key; did you mean 'cflags'?" in msg
    assert "rpi4.toml: cpu.cflags: missing (required)" in msg


def test_unknown_top_level_table(tmp_path):
    msg = _error(tmp_path, RPI4 + "\n[memroy]\nx = 1\n")
    assert "rpi4.toml: memroy: unknown key; did you mean 'memory'?" in msg


def test_path_in_cflags_is_refused(tmp_path):
    msg = _error(tmp_path, _edit('cflags = ["-mcpu=cortex-a72"]', 'cflags = ["-mcpu=cortex-a72", "-I/opt/inc"]'))
    assert "rpi4.toml: cpu.cflags[1]: '-I/opt/inc' does not match" in msg and "Path-independent" in msg


def test_name_must_equal_file_stem(tmp_path):
    msg = _error(tmp_path, RPI4, stem="myboard")
    assert "myboard.toml: name: 'rpi4' must equal the file name's stem 'myboard'" in msg


def test_abi_must_match_version(tmp_path):
    msg = _error(tmp_path, _edit('abi = "cp311"', 'abi = "cp310"'))
    assert "rpi4.toml: python.abi: 'cp310' does not match python.version '3.11' (expected 'cp311')" in msg


def test_default_ram_must_be_a_variant(tmp_path):
    msg = _error(tmp_path, _edit("default_ram_mib = 4096", "default_ram_mib = 3000"))
    assert "rpi4.toml: memory.default_ram_mib: 3000 is not one of the variants' ram_mib (2048, 4096, 8192)" in msg


def test_budget_must_be_below_ram(tmp_path):
    msg = _error(tmp_path, _edit("budget_mib = 6144", "budget_mib = 8192"))
    assert "rpi4.toml: memory.variants[2].budget_mib: 8192 must be less than ram_mib 8192" in msg


def test_duplicate_variant(tmp_path):
    msg = _error(tmp_path, _edit("ram_mib = 8192", "ram_mib = 4096"))
    assert "rpi4.toml: memory.variants[2].ram_mib: 4096 is listed twice" in msg


def test_platform_tags_must_fit_arch_and_glibc(tmp_path):
    text = _edit('"manylinux_2_28_aarch64",', '"manylinux_2_39_aarch64", "manylinux_2_28_x86_64",')
    msg = _error(tmp_path, text)
    assert "rpi4.toml: python.platforms[0]: 'manylinux_2_39_aarch64' needs glibc 2.39, newer than " \
           "python.glibc '2.36'" in msg
    assert "rpi4.toml: python.platforms[1]: 'manylinux_2_28_x86_64' does not end in the arch 'aarch64'" in msg


def test_legacy_manylinux_tag_is_bounded_by_glibc(tmp_path):
    msg = _error(tmp_path, _edit('glibc = "2.36"', 'glibc = "2.12"'))
    assert "python.platforms[0]: 'manylinux_2_28_aarch64' needs glibc 2.28" in msg
    assert "python.platforms[2]: 'manylinux2014_aarch64' needs glibc 2.17" in msg


def test_toml_syntax_error_names_file_and_line(tmp_path):
    text = _edit("cores = 4", "cores 4")
    line = text.splitlines().index("cores 4") + 1
    msg = _error(tmp_path, text)
    assert "rpi4.toml: TOML syntax error:" in msg and f"line {line}" in msg


def test_missing_toolchain_file(tmp_path):
    msg = _error(tmp_path, RPI4, toolchains=("x86_64-linux-gnu",))
    assert "rpi4.toml: toolchain: 'aarch64-linux-gnu' has no toolchain file" in msg


def test_toolchains_dir_argument(tmp_path):
    targets = _tree(tmp_path, RPI4, toolchains=())
    with pytest.raises(TargetError, match="has no toolchain file"):
        load_target("rpi4", targets)
    assert load_target("rpi4", targets, toolchains_dir=ROOT / "toolchains").toolchain == "aarch64-linux-gnu"


def test_toolchain_must_fit_arch(tmp_path):
    x86 = (TARGETS / "x86_64.toml").read_text()
    msg = _error(tmp_path, _edit('toolchain = "x86_64-linux-gnu"', 'toolchain = "aarch64-linux-gnu"', x86),
                 stem="x86_64")
    assert "x86_64.toml: toolchain: 'x86_64-linux-gnu' was expected" in msg


def test_native_target_has_no_qemu_keys_and_emulated_one_needs_them(tmp_path):
    x86 = (TARGETS / "x86_64.toml").read_text()
    msg = _error(tmp_path / "a", _edit("native = true", 'native = true\nqemu_cpu = "max"', x86), stem="x86_64")
    assert "x86_64.toml: emulation.qemu_cpu: not allowed here" in msg
    msg = _error(tmp_path / "b", re.sub(r"\nqemu_cpu = .*", "", RPI4))
    assert "rpi4.toml: emulation.qemu_cpu: missing (required)" in msg


def test_drivers_must_include_cpu(tmp_path):
    msg = _error(tmp_path, _edit('drivers = ["cpu"]', 'drivers = ["npu"]'))
    assert "rpi4.toml: drivers: " in msg


def test_every_problem_is_reported_at_once(tmp_path):
    text = _edit("cores = 4", 'cores = "four"', _edit("ssh_port = 22", "ssh_port = 0"))
    msg = _error(tmp_path, text)
    assert "cpu.cores:" in msg and "access.ssh_port: 0 is less than the minimum of 1" in msg


def test_known_targets_and_missing_schema(tmp_path):
    targets = _tree(tmp_path, RPI4)
    assert known_targets(targets) == ["rpi4"]
    (targets / "schema.json").unlink()
    with pytest.raises(TargetError, match=r"schema\.json: missing"):
        load_target("rpi4", targets)
