"""`claw convert / info / run / ops` end to end, and their one-line errors."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import onnx
import pytest
from claw_testing import add_relu, ort_run, with_unknown_ops

from clawdbot.cli import main


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "m.onnx"
    onnx.save(add_relu(), str(path))
    return path


def test_convert_info_run_round_trip(tmp_path, onnx_file, capsys):
    claw = tmp_path / "m.claw"
    assert main(["convert", str(onnx_file), "-o", str(claw)]) == 0
    assert main(["info", str(claw)]) == 0
    info = capsys.readouterr().out
    assert "parameters:  4" in info and "input:       x: float32[N, 4]" in info and "relu" in info
    x = np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out"
    assert main(["run", str(claw), "--input", f"x={tmp_path / 'x.npy'}", "-o", str(out)]) == 0
    np.testing.assert_allclose(np.load(out / "y.npy"), ort_run(add_relu(), {"x": x})[0], rtol=1e-6)
    assert not list(out.glob("*.tmp")), "no temp files left behind"


def test_unsupported_model_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "bad.onnx"
    onnx.save(with_unknown_ops(), str(path))
    assert main(["convert", str(path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("claw: error:") and "FancyOp: fancy1, fancy2" in err and "Traceback" not in err
    assert not (tmp_path / "bad.claw").exists()


def test_corrupted_claw_file(tmp_path, onnx_file, capsys):
    claw = tmp_path / "m.claw"
    main(["convert", str(onnx_file), "-o", str(claw)])
    data = bytearray(claw.read_bytes())
    data[len(data) // 2] ^= 0xFF
    claw.write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["info", str(claw)]) == 2
    assert "claw: error:" in capsys.readouterr().err


def test_run_input_mistakes(tmp_path, onnx_file, capsys):
    np.save(tmp_path / "x.npy", np.zeros((1, 4), np.float32))
    assert main(["run", str(onnx_file), "--input", f"nope={tmp_path / 'x.npy'}"]) == 2
    assert "missing input(s) ['x']" in capsys.readouterr().err
    assert main(["run", str(onnx_file), "--input", f"x={tmp_path / 'missing.npy'}"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["run", str(onnx_file), "--input", "x"]) == 2
    assert "expected NAME=FILE.npy" in capsys.readouterr().err


def test_ops_lists_the_op_set(capsys):
    assert main(["ops"]) == 0
    out = capsys.readouterr().out
    assert "[elementwise]" in out and "add" in out and "(no CPU kernel)" not in out


def test_console_entry_point_runs_as_module(tmp_path, onnx_file):
    r = subprocess.run([sys.executable, "-m", "clawdbot.cli", "info", str(onnx_file)], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 2 and "claw: error:" in r.stderr and "Traceback" not in r.stderr


def test_output_piped_into_a_closed_reader_is_quiet():
    # The reader is gone before claw writes (as with `claw ops | head -1` once head has exited): no traceback.
    p = subprocess.Popen([sys.executable, "-m", "clawdbot.cli", "ops"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    p.stdout.close()
    err = p.stderr.read().decode()
    assert p.wait(timeout=60) == 141 and "Traceback" not in err and "BrokenPipe" not in err


# -- memory: the plan in `claw info`, --memory-plot, `claw convert --target` ------------------------------
def _memory_section(out: str) -> dict[str, str]:
    lines = out[out.index("memory:"):].splitlines()
    return {k.strip(): v.strip() for k, _, v in (ln.partition(":") for ln in lines)}


def _bytes_of(field: str) -> int:
    return int(field.split(" B")[0].replace(",", ""))


@pytest.fixture(scope="module")
def squeezenet(tmp_path_factory):
    from clawdbot.tools import zoo
    d = tmp_path_factory.mktemp("squeezenet")
    zoo.save("squeezenet1_1", d / "squeezenet.onnx")
    assert main(["convert", str(d / "squeezenet.onnx"), "-o", str(d / "squeezenet.claw")]) == 0
    return d / "squeezenet.claw"


def test_info_shows_the_memory_plan(squeezenet, capsys):
    from clawdbot.ir.clawfile import load_graph
    from clawdbot.plan.memory import plan_memory
    capsys.readouterr()
    assert main(["info", str(squeezenet)]) == 0
    mem = _memory_section(capsys.readouterr().out)
    plan = plan_memory(load_graph(squeezenet))
    assert _bytes_of(mem["weights"]) == plan.weights_bytes
    assert _bytes_of(mem["arena"]) == plan.arena_bytes
    assert _bytes_of(mem["lower bound"]) == plan.lower_bound
    assert mem["efficiency"] == f"{plan.efficiency:.3f} (arena / lower bound)"
    views = len(plan.views)
    assert views and mem["sharing"] == (f"{plan.shared_values()} values share a buffer "
                                        f"({plan.shared_values() - views} in place, {views} as views)")
    scratch = [b.size for b in plan.buffers if b.name.startswith("scratch:")]
    assert scratch and mem["scratch"] == f"{sum(scratch):,} B ({sum(scratch) / 2**20:.1f} MiB) in {len(scratch)} " \
                                         f"kernel buffers"
    assert "dims batch=1 (assumed, not given: batch; set with --dims)" in mem["memory"]
    assert "dynamic" not in mem


def test_info_plans_for_other_dims(squeezenet, capsys):
    from clawdbot.ir.clawfile import load_graph
    from clawdbot.plan.memory import plan_memory
    capsys.readouterr()
    assert main(["info", str(squeezenet), "--dims", "batch=4"]) == 0
    mem = _memory_section(capsys.readouterr().out)
    assert mem["memory"].endswith("dims batch=4")
    assert _bytes_of(mem["arena"]) == plan_memory(load_graph(squeezenet), {"batch": 4}).arena_bytes
    assert main(["info", str(squeezenet), "--dims", "batch=1"]) == 0
    assert _memory_section(capsys.readouterr().out)["memory"].endswith("dims batch=1"), "given, not assumed"


@pytest.mark.parametrize("dims, why", [("bacth=4", "not symbolic dims of the model's inputs"),
                                       ("batch=0", "expected NAME=SIZE with a positive size"),
                                       ("batch", "expected NAME=SIZE")])
def test_info_dims_mistakes_are_one_line(squeezenet, capsys, dims, why):
    capsys.readouterr()
    assert main(["info", str(squeezenet), "--dims", dims]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("claw: error:") and why in err and err.count("\n") == 1


def test_info_memory_plot_writes_a_png(squeezenet, tmp_path, capsys):
    image = pytest.importorskip("matplotlib.image")
    out = tmp_path / "arena.png"
    assert main(["info", str(squeezenet), "--memory-plot", str(out)]) == 0
    assert f"memory plot: {out}" in capsys.readouterr().out
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 0
    assert image.imread(out).shape[0] > 0
    assert [p.name for p in tmp_path.iterdir()] == ["arena.png"]


def test_info_memory_plot_without_matplotlib_names_the_extra(squeezenet, tmp_path, capsys, monkeypatch):
    for name in ("matplotlib.figure", "matplotlib.backends.backend_agg"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules makes the import fail
    capsys.readouterr()
    assert main(["info", str(squeezenet), "--memory-plot", str(tmp_path / "arena.png")]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.count("\n") == 1 and "pip install 'clawdbot[plot]'" in err
    assert not list(tmp_path.iterdir())


# add_relu's arena is its one buffer of N x 4 float32 (s, with y in place over it): N sets the need exactly.
BIG_N = 1 << 26   # 1 GiB of activations: over rpi4's 2048 MiB variant's 1024 MiB budget, within its 4096's


def _add_relu_plan(n: int):
    from clawdbot.converter import ModelConverter
    from clawdbot.plan.memory import plan_memory
    return plan_memory(ModelConverter().convert(add_relu()).graph, {"N": n})


def test_convert_over_the_board_budget_fails_with_both_numbers_and_writes_nothing(tmp_path, onnx_file, capsys):
    from clawdbot.crossbuild.build import RUNTIME_OVERHEAD_MIB
    claw = tmp_path / "m.claw"
    assert main(["convert", str(onnx_file), "-o", str(claw), "--target", "rpi4", "--ram", "2048",
                 "--dims", f"N={BIG_N}"]) == 2
    out, err = capsys.readouterr()
    plan = _add_relu_plan(BIG_N)
    need = plan.total_bytes(RUNTIME_OVERHEAD_MIB << 20)
    assert err.count("\n") == 1 and err.startswith("claw: error: model m needs ")
    assert f"needs {need / 2**20:.1f} MiB but rpi4 (2048 MiB RAM) allows 1024.0 MiB" in err
    [(biggest, size)] = plan.contributors(5)
    assert f"Biggest at step {plan.peak_step()}: {biggest} {size / 2**20:.1f} MiB" in err
    assert out == "" and not claw.exists() and not list(tmp_path.glob("*.tmp"))


def test_convert_and_invoke_build_give_the_same_verdict(tmp_path, onnx_file, capsys):
    from clawdbot.converter import ModelConverter
    from clawdbot.crossbuild import build as build_mod
    from clawdbot.cli import TARGETS_DIR
    from clawdbot.crossbuild.targets import load_target
    from clawdbot.errors import BuildError
    assert main(["convert", str(onnx_file), "-o", str(tmp_path / "m.claw"), "--target", "rpi4", "--ram", "2048",
                 "--dims", f"N={BIG_N}"]) == 2
    graph = ModelConverter().convert(add_relu()).graph
    with pytest.raises(BuildError) as e:
        build_mod.check_memory("m", graph, load_target("rpi4", TARGETS_DIR), 2048, {"N": BIG_N})
    assert capsys.readouterr().err == f"claw: error: {e.value}\n"


def test_convert_within_the_budget_prints_the_margin(tmp_path, onnx_file, capsys):
    from clawdbot.crossbuild.build import RUNTIME_OVERHEAD_MIB
    claw = tmp_path / "m.claw"
    assert main(["convert", str(onnx_file), "-o", str(claw), "--target", "rpi4", "--dims", f"N={BIG_N}"]) == 0
    out = capsys.readouterr().out
    need = _add_relu_plan(BIG_N).total_bytes(RUNTIME_OVERHEAD_MIB << 20)
    margin = (2560 << 20) - need
    assert f"memory: needs {need / 2**20:.1f} MiB of rpi4's 2560 MiB budget (4096 MiB RAM): " \
           f"{margin / 2**20:.1f} MiB to spare\n" in out
    assert claw.exists()
    assert main(["convert", str(onnx_file), "-o", str(claw), "--target", "rpi4"]) == 0
    assert "to spare; taking N=1 (set with --dims)" in capsys.readouterr().out


@pytest.mark.parametrize("args, why", [
    (["--target", "rpi3"], "unknown target 'rpi3'; known targets: jetson-orin-nano, rk3588, rpi4, rpi5, x86_64"),
    (["--target", "rpi4", "--ram", "3000"], "has no 3000 MiB RAM variant; its variants: 2048, 4096, 8192 MiB"),
    (["--ram", "2048"], "--ram picks the board's RAM variant for the memory check: give --target too"),
    (["--target", "rpi4", "--dims", "N=x"], "--dims 'N=x': expected NAME=SIZE"),
])
def test_convert_target_mistakes_are_one_line_and_write_nothing(tmp_path, onnx_file, capsys, args, why):
    claw = tmp_path / "m.claw"
    assert main(["convert", str(onnx_file), "-o", str(claw), *args]) == 2
    out, err = capsys.readouterr()
    assert err.startswith("claw: error:") and why in err and err.count("\n") == 1
    assert out == "" and not claw.exists()


def _onnx_file(tmp_path, node, x_shape, y_type=onnx.TensorProto.FLOAT):
    from claw_testing import make_model
    h = onnx.helper
    graph = h.make_graph([node], "g", [h.make_tensor_value_info("x", onnx.TensorProto.FLOAT, x_shape)],
                         [h.make_tensor_value_info("y", y_type, None)])
    path = tmp_path / "g.onnx"
    onnx.save(make_model(graph, 17), path)
    return path


def test_info_and_convert_name_values_sized_at_run_time(tmp_path, capsys):
    path = _onnx_file(tmp_path, onnx.helper.make_node("NonZero", ["x"], ["y"]), [3, 4], onnx.TensorProto.INT64)
    assert main(["convert", str(path), "--target", "rpi4"]) == 0
    assert "to spare; not counted: y (sized at run time)" in capsys.readouterr().out
    assert main(["info", str(path.with_suffix(".claw"))]) == 0
    mem = _memory_section(capsys.readouterr().out)
    assert mem["dynamic"] == "y (outside the arena: sized at run time)"
    assert mem["memory"].endswith("dims none (static input shapes)")


def test_info_describes_a_model_whose_memory_cannot_be_planned(tmp_path, capsys):
    path = _onnx_file(tmp_path, onnx.helper.make_node("Relu", ["x"], ["y"]), None)
    assert main(["convert", str(path)]) == 0
    claw = str(path.with_suffix(".claw"))
    assert main(["info", claw]) == 0
    out = capsys.readouterr().out
    assert "relu" in out and "memory:      no plan: graph input 'x'" in out and "unknown rank" in out
    # asked for, the plan's absence is the error
    pytest.importorskip("matplotlib")
    assert main(["info", claw, "--memory-plot", str(tmp_path / "a.png")]) == 2
    assert "unknown rank" in capsys.readouterr().err and not (tmp_path / "a.png").exists()
