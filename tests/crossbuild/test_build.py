"""`invoke build` decisions that need no toolchain: the memory budget, unknown targets, what a missing
toolchain says, quantization requests, and the on-board (Jetson) bundle's contents."""
from __future__ import annotations

import re
import tarfile
from pathlib import Path

import onnx
import pytest

from claw_testing import make_model
from clawdbot.crossbuild import build as build_mod
from clawdbot.crossbuild import wheelhouse
from clawdbot.crossbuild.build import BuildOptions, build
from clawdbot.crossbuild.progress import Progress
from clawdbot.crossbuild.targets import TargetError, known_targets, load_target
from clawdbot.crossbuild.toolchains import load_toolchain
from clawdbot.errors import BuildError, ClawError

ROOT = Path(__file__).resolve().parents[2]


def _huge_relu() -> onnx.ModelProto:
    """One Relu over 1 x 24000 x 24000 float32: input and output live at once are 4.3 GiB."""
    h = onnx.helper
    graph = h.make_graph([h.make_node("Relu", ["x"], ["y"], name="relu_node")], "huge",
                         [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 24000, 24000])],
                         [h.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 24000, 24000])])
    return make_model(graph, 17)


def _opts(tmp_path, **kw) -> BuildOptions:
    return BuildOptions(root=ROOT, out=tmp_path / "out", cache=tmp_path / "cache", **kw)


@pytest.fixture
def no_downloads(monkeypatch):
    """Fail the test if the build gets as far as fetching anything: budget errors must come first."""
    def refuse(*a, **k):
        raise AssertionError("the build went on to download wheels")
    monkeypatch.setattr(wheelhouse, "download", refuse)


def test_a_model_over_the_budget_fails_fast_with_both_numbers(tmp_path, no_downloads):
    path = tmp_path / "huge.onnx"
    onnx.save(_huge_relu(), path)
    with pytest.raises(BuildError) as e:
        build(_opts(tmp_path, target="rpi4", model=str(path)), Progress())
    msg = str(e.value)
    # The arena holds y alone (24000 * 24000 * 4 B, already 64-byte aligned); the input x is as large.
    y_mib = 24000 * 24000 * 4 / 2**20
    assert f"needs {2 * y_mib + build_mod.RUNTIME_OVERHEAD_MIB:.1f} MiB" in msg
    assert "rpi4 (4096 MiB RAM) allows 2560.0 MiB" in msg
    assert f"arena {y_mib:.1f} MiB (lower bound {y_mib:.1f} MiB) + inputs {y_mib:.1f} MiB" in msg
    assert f"Biggest at step 0: y {y_mib:.1f} MiB" in msg and "\n" not in msg
    assert not (tmp_path / "out").exists()


def test_the_8gb_variant_has_room_for_it(tmp_path):
    from clawdbot.converter import ModelConverter
    graph = ModelConverter().convert(_huge_relu()).graph
    report = build_mod.check_memory("huge", graph, load_target("rpi4", ROOT / "targets"), 8192, {})
    assert report["fits"] and report["budget_bytes"] == 6144 << 20
    with pytest.raises(TargetError, match="rpi4.* has no 3000 MiB RAM variant; its variants: 2048, 4096, 8192 MiB"):
        build_mod.check_memory("huge", graph, load_target("rpi4", ROOT / "targets"), 3000, {})


def test_the_memory_report_is_the_arena_plan_with_its_margin():
    from clawdbot.converter import ModelConverter
    from clawdbot.plan.memory import plan_memory
    graph = ModelConverter().convert(_huge_relu()).graph
    plan = plan_memory(graph)
    r = build_mod.check_memory("huge", graph, load_target("rpi4", ROOT / "targets"), 8192, {})
    assert r["method"].startswith("arena plan")
    assert (r["weights_bytes"], r["arena_bytes"], r["lower_bound_bytes"]) == \
        (plan.weights_bytes, plan.arena_bytes, plan.lower_bound)
    assert r["efficiency"] == round(plan.efficiency, 4)
    assert r["runtime_overhead_bytes"] == build_mod.RUNTIME_OVERHEAD_MIB << 20
    assert r["inputs_bytes"] == 24000 * 24000 * 4
    assert r["need_bytes"] == (plan.weights_bytes + plan.arena_bytes + r["inputs_bytes"]
                               + r["runtime_overhead_bytes"])
    assert r["margin_bytes"] == r["budget_bytes"] - r["need_bytes"] > 0
    assert r["biggest"] == [{"buffer": "y", "bytes": 24000 * 24000 * 4}]
    assert r["dims"] == {} and r["assumed"] == [] and r["ram_mib"] == 8192


def test_a_model_that_cannot_be_planned_names_the_model():
    from clawdbot.converter import ModelConverter
    graph = ModelConverter().convert(_huge_relu()).graph
    with pytest.raises(BuildError, match="model huge: no memory plan: .*batch"):
        build_mod.check_memory("huge", graph, load_target("rpi4", ROOT / "targets"), None, {"batch": 4})


def test_unknown_target_lists_the_known_ones(tmp_path, no_downloads):
    with pytest.raises(ClawError) as e:
        build(_opts(tmp_path, target="rpi3"), Progress())
    for name in ("jetson-orin-nano", "rk3588", "rpi4", "rpi5", "x86_64"):
        assert name in str(e.value)


def test_quantize_puts_a_weight_quantized_model_in_the_bundle_and_its_budget(tmp_path):
    _, fp32 = build_mod.convert_model("squeezenet1_1", None)
    name, graph = build_mod.convert_model("squeezenet1_1", 8)
    assert name == "squeezenet1_1" and "conv_wq" in {n.op for n in graph.nodes}
    rpi4 = load_target("rpi4", ROOT / "targets")
    q8 = build_mod.check_memory(name, graph, rpi4, None, {})
    assert q8["weights_bytes"] < 0.27 * build_mod.check_memory(name, fp32, rpi4, None, {})["weights_bytes"]


def test_quantize_refuses_an_already_converted_model(tmp_path):
    claw = tmp_path / "m.claw"
    claw.write_bytes(b"")
    with pytest.raises(BuildError, match="--quantize applies when converting"):
        build_mod.convert_model(str(claw), 4)


def test_an_unknown_toolchain_kind_is_refused_before_any_work(tmp_path, no_downloads, monkeypatch):
    monkeypatch.setattr(build_mod, "convert_model", lambda *a: pytest.fail("converted before checking options"))
    with pytest.raises(BuildError, match="--toolchain 'podman': choose auto, docker, host"):
        build(_opts(tmp_path, target="rpi4", toolchain="podman"), Progress())


def test_a_missing_signing_key_is_named(tmp_path, no_downloads):
    with pytest.raises(BuildError, match="--sign-key .*nokey.pem: no such file"):
        build(_opts(tmp_path, target="rpi4", sign_key=tmp_path / "nokey.pem"), Progress())


def test_a_missing_model_file_is_named(tmp_path, no_downloads):
    with pytest.raises(BuildError, match="nope.onnx: no such file"):
        build(_opts(tmp_path, target="rpi4", model=str(tmp_path / "nope.onnx")), Progress())


def test_with_neither_docker_nor_a_cross_compiler_the_error_says_what_to_install(monkeypatch):
    from clawdbot.crossbuild import engine

    def no_engine(*a, **k):
        raise BuildError("no Docker engine answers")
    monkeypatch.setattr(engine.Engine, "connect", classmethod(no_engine))
    monkeypatch.setattr(build_mod.shutil, "which", lambda name, *a, **k: None)
    tc = load_toolchain("aarch64-linux-gnu", ROOT)
    with pytest.raises(BuildError) as e:
        build_mod.choose_toolchain("auto", tc, Progress())
    assert "no Docker engine" in str(e.value) and "apt-get install gcc-aarch64-linux-gnu" in str(e.value)
    with pytest.raises(BuildError, match="--toolchain host needs aarch64-linux-gnu-gcc"):
        build_mod.choose_toolchain("host", tc, Progress())


def test_every_target_names_a_loadable_toolchain_whose_dockerfile_takes_the_base_image():
    for name in known_targets(ROOT / "targets"):
        tc = load_toolchain(load_target(name, ROOT / "targets").toolchain, ROOT)
        text = tc.dockerfile.read_text()
        assert re.search(r"^ARG BASE_IMAGE=debian:bookworm-slim$", text, re.M), tc.dockerfile
        assert re.search(r"^FROM \$\{BASE_IMAGE\}$", text, re.M), tc.dockerfile
        assert "pip install --no-index" in text, "builds must not need an index inside the image"


def test_unknown_toolchain_lists_the_known_ones():
    with pytest.raises(BuildError, match="known toolchains: aarch64-linux-gnu, jetson-aarch64, x86_64-linux-gnu"):
        load_toolchain("armhf", ROOT)


def test_jetson_bundle_carries_sources_and_build_tools_for_its_python(tmp_path):
    """Jetson's Python 3.10 can't be built here: its bundle compiles on the board, from the pinned sdist."""
    result = build(_opts(tmp_path, target="jetson-orin-nano", model="squeezenet1_1"), Progress())
    m = result.manifest
    assert m["install"]["mode"] == "on-board"
    assert m["toolchain"]["kind"] == "on-board"
    assert m["drivers"] == {"cpu": "built", "cuda": "not built: clawdbot 0.1.0 has no cuda driver yet"}
    assert {r.split("==")[0] for r in m["install"]["build_requirements"]} == {"Cython", "setuptools", "wheel",
                                                                              "packaging"}
    files = set(m["files"])
    assert m["install"]["runtime"] in files
    assert any(re.fullmatch(r"wheels/numpy-2\.2\.\d+-cp310-cp310-manylinux.*aarch64\.whl", f) for f in files)
    with tarfile.open(result.bundle) as tar:
        top = tar.getnames()[0]
        sdist = tar.extractfile(f"{top}/{m['install']['runtime']}")
        with tarfile.open(fileobj=sdist) as src:
            names = src.getnames()
        # the agent's boot files, made for this board's serial console
        script = tar.getmember(f"{top}/boot/clawdbot-agent")
        assert script.mode == 0o755 and b"CLAW_AGENT_PORT=/dev/ttyTCU0\n" in tar.extractfile(script).read()
        assert f"{top}/boot/clawdbot-agent.service" in tar.getnames()
    assert any(n.endswith("runtime/clawdbot/hal/cpu/_cython/im2col.pyx") for n in names)
    assert any(n.endswith("/setup.py") for n in names) and not any(n.endswith(".so") for n in names)
    assert m["model"]["memory"]["fits"] and m["model"]["memory"]["ram_mib"] == 8192
