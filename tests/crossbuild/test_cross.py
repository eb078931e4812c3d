"""Real cross builds (Docker toolchain and host cross compiler) and the QEMU bundle test.

These are the issue's acceptance checks: aarch64 kernels built with the board's flags, byte-identical
rebuilds, the same wheel from both toolchains, and a bundle that installs offline on an emulated rpi4 and
reproduces the x86 host's outputs there. Marked `cross`; see --cross in tests/conftest.py.
"""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
import zipfile
from pathlib import Path

import pytest

from clawdbot.crossbuild.emulate import test_bundle as install_and_check
from clawdbot.crossbuild.targets import load_target

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / "artifacts" / "cache"  # the fixtures' cache (tests/crossbuild/conftest.py)

pytestmark = pytest.mark.cross

ELF_MACHINE = {0xB7: "aarch64", 0x3E: "x86_64"}


def _members(bundle) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def _runtime_wheel(files: dict[str, bytes]) -> tuple[str, bytes]:
    [(name, data)] = [(n, d) for n, d in files.items() if n.startswith("wheels/clawdbot-")]
    return name, data


def _kernels(wheel: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        return {n: ELF_MACHINE.get(int.from_bytes(z.read(n)[18:20], "little"), "?")
                for n in z.namelist() if n.endswith(".so")}


def _cflags(wheel: bytes) -> list[str]:
    with zipfile.ZipFile(io.BytesIO(wheel)) as z:
        [config] = [n for n in z.namelist() if n.endswith("build_config.json")]
        return json.loads(z.read(config))["cflags"]


def test_rpi4_bundle_holds_aarch64_kernels_built_with_the_rpi4_flags(rpi4_docker):
    files = _members(rpi4_docker.bundle)
    name, wheel = _runtime_wheel(files)
    assert name.endswith("-cp311-cp311-linux_aarch64.whl")
    kernels = _kernels(wheel)
    names = sorted(k.rsplit("/", 1)[1].split(".")[0] for k in kernels)
    assert names == ["depthwise", "im2col", "mathfn", "pool", "qgemm"]
    assert set(kernels.values()) == {"aarch64"}
    assert "-mcpu=cortex-a72" in _cflags(wheel) and "-ffp-contract=off" in _cflags(wheel)
    # every dependency the board installs offline is there, for its platform
    assert any(n.startswith("wheels/numpy-") and n.endswith("aarch64.whl") and "cp311" in n for n in files)
    assert any(n.startswith("wheels/pip-") for n in files)


def test_rpi4_manifest_records_toolchain_versions_checksums_and_memory(rpi4_docker):
    m = rpi4_docker.manifest
    files = _members(rpi4_docker.bundle)
    assert json.loads(files["manifest.json"]) == m
    assert m["target"]["name"] == "rpi4" and m["python"]["abi"] == "cp311"
    assert m["toolchain"]["kind"] == "docker"
    assert m["toolchain"]["image"].startswith("clawdbot-toolchain/aarch64-linux-gnu:")
    assert m["toolchain"]["image_id"].startswith("sha256:")
    assert any(p.startswith("gcc-12-aarch64-linux-gnu") for p in m["toolchain"]["packages"])
    assert set(m["files"]) == set(files) - {"manifest.json"}
    for rel, meta in m["files"].items():
        assert hashlib.sha256(files[rel]).hexdigest() == meta["sha256"], rel
    mem = m["model"]["memory"]
    assert mem["fits"] and mem["need_bytes"] < mem["budget_bytes"] == 2560 << 20
    assert mem["method"].startswith("arena plan")
    assert mem["need_bytes"] == (mem["weights_bytes"] + mem["arena_bytes"] + mem["inputs_bytes"]
                                 + mem["runtime_overhead_bytes"])
    assert mem["margin_bytes"] == mem["budget_bytes"] - mem["need_bytes"]
    assert mem["lower_bound_bytes"] <= mem["arena_bytes"] and mem["efficiency"] >= 1.0
    assert m["model"]["name"] == "mobilenet_v2" and m["drivers"] == {"cpu": "built"}


def test_two_builds_from_the_same_inputs_are_byte_identical(rpi4_docker, rpi4_docker_again):
    assert rpi4_docker.bundle.read_bytes() == rpi4_docker_again.bundle.read_bytes()


def test_host_toolchain_compiles_the_same_wheel_without_docker(rpi4_docker, rpi4_host):
    docker_wheel = _runtime_wheel(_members(rpi4_docker.bundle))
    host_wheel = _runtime_wheel(_members(rpi4_host.bundle))
    assert host_wheel == docker_wheel
    assert rpi4_host.manifest["toolchain"]["kind"] == "host"
    assert any(p.startswith("libpython3.11-dev:arm64") for p in rpi4_host.manifest["toolchain"]["packages"])
    # everything but the record of which toolchain made it is the same
    strip = lambda m: {k: v for k, v in m.items() if k != "toolchain"}  # noqa: E731
    assert strip(rpi4_host.manifest) == strip(rpi4_docker.manifest)


def test_rpi4_bundle_installs_offline_and_matches_the_x86_run_under_qemu(rpi4_docker):
    report = install_and_check(rpi4_docker.bundle, load_target("rpi4", ROOT / "targets"), CACHE,
                               kernel_tests=ROOT)
    assert any("runs on aarch64 with the cython kernels" in line and "-mcpu=cortex-a72" in line
               for line in report), report
    assert any(line.startswith("check: output logits") for line in report), report
    # the kernel tests ran there against the bundle's aarch64 kernels, none skipped for want of them
    [kernels] = [line for line in report if line.startswith("kernels:")]
    assert " passed" in kernels and "failed" not in kernels and "skipped" not in kernels, kernels


def test_x86_64_bundle_runs_natively(x86_64_docker):
    name, wheel = _runtime_wheel(_members(x86_64_docker.bundle))
    assert name.endswith("-cp311-cp311-linux_x86_64.whl")
    assert set(_kernels(wheel).values()) == {"x86_64"} and "-march=x86-64-v2" in _cflags(wheel)
    report = install_and_check(x86_64_docker.bundle, load_target("x86_64", ROOT / "targets"), CACHE)
    assert any("runs on x86_64 with the cython kernels" in line for line in report), report


def test_on_board_bundle_compiles_the_kernels_at_install_time(cross_tools, tmp_path):
    """Jetson's path (build = "on-board"), run where it can be: a native x86_64 twin of the x86_64 target, so
    install.py really compiles the kernels from the bundled sources with the bundled build tools."""
    from clawdbot.crossbuild.build import BuildOptions, build
    from clawdbot.crossbuild.progress import Progress
    targets = tmp_path / "targets"
    targets.mkdir()
    (targets / "schema.json").write_bytes((ROOT / "targets" / "schema.json").read_bytes())
    text = (ROOT / "targets" / "x86_64.toml").read_text()
    (targets / "x86_64-onboard.toml").write_text(
        text.replace('name = "x86_64"', 'name = "x86_64-onboard"').replace('build = "cross"', 'build = "on-board"'))
    result = build(BuildOptions(root=ROOT, target="x86_64-onboard", targets_dir=targets, model="squeezenet1_1",
                                out=tmp_path / "out", cache=CACHE), Progress())
    assert result.manifest["install"]["mode"] == "on-board"
    assert not any(n.startswith("wheels/clawdbot-") for n in result.manifest["files"])
    report = install_and_check(result.bundle, load_target("x86_64-onboard", targets, ROOT / "toolchains"), CACHE)
    assert any("runs on x86_64 with the cython kernels" in line and "-march=x86-64-v2" in line
               for line in report), report
