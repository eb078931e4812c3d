"""The memory plan (plan/memory.py) and the CPU executor running from it.

On random graphs (hypothesis): the plan passes its own overlap check, an independent check finds no two
values whose lifetimes overlap sharing a byte unless the plan made one a view or an in-place result of the
other, and running from the plan gives onnxruntime's outputs. On the zoo models: the arena stays at the lower
bound, and after warm-up an inference allocates nothing beyond the outputs it returns (tracemalloc).
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest
from claw_testing import graph_model, ort_run
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import helper

import clawdbot
from clawdbot.converter import ModelConverter
from clawdbot.errors import ClawError, ClawFileError
from clawdbot.importers.onnx import import_onnx
from clawdbot.ir.clawfile import load_model, save_graph
from clawdbot.plan.memory import MemoryPlan, plan_memory, stored_plan
from clawdbot.session import Session
from clawdbot.tools import zoo

SHAPES = {"a": [2, 3, 4, 5], "b": [6, 20]}       # two shape families a reshape moves between
UNARY = ["Relu", "Sigmoid", "Tanh", "Erf", "Neg"]
BINARY = ["Add", "Mul", "Sub", "Max"]


@st.composite
def random_models(draw):
    """A random DAG over two shape families: unary and binary elementwise ops, softmax, matmul by a constant,
    reshapes between the families; some intermediate values are graph outputs too."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    values = {"x": "a"}  # value -> shape family
    nodes, consts = [], {}
    for k in range(draw(st.integers(1, 14))):
        v = draw(st.sampled_from(sorted(values)))
        fam = values[v]
        kind = draw(st.sampled_from(["unary", "binary", "softmax", "matmul", "reshape"]))
        out = f"v{k}"
        if kind == "unary":
            nodes.append(helper.make_node(draw(st.sampled_from(UNARY)), [v], [out]))
        elif kind == "binary":
            w = draw(st.sampled_from(sorted(u for u, f in values.items() if f == fam)))
            nodes.append(helper.make_node(draw(st.sampled_from(BINARY)), [v, w], [out]))
        elif kind == "softmax":
            nodes.append(helper.make_node("Softmax", [v], [out], axis=-1))
        elif kind == "matmul":
            n = SHAPES[fam][-1]
            consts[f"w{k}"] = rng.standard_normal((n, n)).astype(np.float32) / n
            nodes.append(helper.make_node("MatMul", [v, f"w{k}"], [out]))
        else:
            fam = "b" if fam == "a" else "a"
            consts[f"s{k}"] = np.array(SHAPES[fam], np.int64)
            nodes.append(helper.make_node("Reshape", [v, f"s{k}"], [out]))
        values[out] = fam
    produced = [n.output[0] for n in nodes]
    extra = draw(st.lists(st.sampled_from(produced), max_size=3, unique=True))
    outputs = list(dict.fromkeys([produced[-1], *extra]))
    x = rng.standard_normal(SHAPES["a"]).astype(np.float32)
    return graph_model(nodes, {"x": x}, consts, outputs=outputs, opset=17), {"x": x}


def _lifetimes(graph) -> dict[str, tuple[int, int]]:
    """Each node output's (birth, last use) from the graph alone, graph outputs living to the end."""
    born, last = {}, {}
    for k, node in enumerate(graph.nodes):
        for i in node.inputs:
            if i in born:
                last[i] = k
        for o in node.outputs:
            born[o] = last[o] = k
    for o in graph.outputs:
        last[o] = len(graph.nodes) - 1
    return {v: (born[v], last[v]) for v in born}


def assert_no_live_overlap(graph, plan: MemoryPlan) -> None:
    """Independently of the plan's own check: values live at one step never share a byte, except a value and
    what the plan made of it in the same buffer (a view, or an in-place result born where its source dies)."""
    life = _lifetimes(graph)
    views = {graph.nodes[s].outputs[0] for s in plan.views}
    placed = [(v, plan.offset(v), plan.offset(v) + int(np.prod(s.shape)) * np.dtype(s.dtype).itemsize)
              for v, s in plan.slots.items()]
    for i, (v, lo, hi) in enumerate(placed):
        for w, wlo, whi in placed[i + 1:]:
            (bv, lv), (bw, lw) = life[v], life[w]
            if not (lo < whi and wlo < hi and bv <= lw and bw <= lv):
                continue
            same = plan.slots[v].buffer == plan.slots[w].buffer
            handoff = lv == bw or lw == bv
            assert same and (handoff or v in views or w in views), (
                f"{v} [{lo}, {hi}) steps {bv}..{lv} overlaps {w} [{wlo}, {whi}) steps {bw}..{lw}")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_models())
def test_random_graphs_share_memory_only_where_safe_and_match_onnxruntime(case):
    model, feeds = case
    graph = import_onnx(model)
    plan = plan_memory(graph)
    plan.check()
    assert plan.arena_bytes >= plan.lower_bound
    assert_no_live_overlap(graph, plan)
    session = Session(graph, plan=plan)
    for _ in range(2):  # the second run reuses the arena the first one left
        ours = session.run(feeds)
        for name, ref in zip(ours, ort_run(model, feeds)):
            np.testing.assert_allclose(ours[name], ref, rtol=1e-5, atol=1e-6, err_msg=name)


@pytest.fixture(scope="module")
def zoo_graphs():
    cache = {}

    def get(name: str):
        if name not in cache:
            cache[name] = ModelConverter().convert(zoo.build(name)).graph
        return cache[name]
    return get


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small", "bert_encoder"])
def test_after_warm_up_a_run_allocates_nothing_beyond_its_outputs(zoo_graphs, name):
    """numpy reports its array buffers to tracemalloc. The bound is for Python objects (argument lists, array
    headers) and numpy's fixed 32 KiB ufunc iteration buffer: every tensor of these models is larger, so an
    allocated intermediate, kernel scratch or copy would exceed it."""
    graph = zoo_graphs(name)
    session = Session(graph, plan=plan_memory(graph))
    feeds = zoo.example_inputs(name, batch=1)
    first = session.run(feeds)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        outs = session.run(feeds)
        extra = tracemalloc.get_traced_memory()[1] - base - sum(o.nbytes for o in outs.values())
    finally:
        tracemalloc.stop()
    assert extra <= 64 << 10, f"{name}: a run allocated {extra} bytes beyond its outputs"
    for k in first:
        np.testing.assert_array_equal(outs[k], first[k])  # the arena reused, same results


@pytest.mark.slow
@pytest.mark.parametrize("name", ["resnet50", "mobilenet_v2", "efficientnet_b0", "bert_encoder"])
@pytest.mark.parametrize("batch", [1, 4])
def test_the_executed_plan_is_within_10_percent_of_the_lower_bound(zoo_graphs, name, batch):
    """Issue 5's target, on the plan the executor follows: in-place results, views and im2col scratch
    included (the lower bound counts scratch too)."""
    plan = plan_memory(zoo_graphs(name), {"batch": batch})
    assert plan.efficiency <= 1.10, plan.format()


def test_a_saved_model_carries_its_plan_and_a_load_runs_from_it(tmp_path, zoo_graphs):
    graph = zoo_graphs("squeezenet1_1")
    path = ModelConverter().convert(zoo.build("squeezenet1_1")).save(tmp_path / "m.claw")
    plan = stored_plan(path)
    assert plan is not None and plan.to_dict() == plan_memory(graph).to_dict()
    session = clawdbot.load(path)
    program = session._program
    assert list(program._layouts) == [(1,)]  # planned before any run: nothing is inferred at load
    feeds = zoo.example_inputs("squeezenet1_1", batch=1)
    np.testing.assert_allclose(session.run(feeds)["logits"],
                               ort_run(zoo.build("squeezenet1_1"), feeds)[0], rtol=1e-4, atol=1e-5)


def test_other_input_sizes_are_planned_on_first_sight_and_reuse_a_large_enough_arena(zoo_graphs):
    graph = zoo_graphs("squeezenet1_1")
    session = Session(graph, plan=plan_memory(graph, {"batch": 3}))
    model = zoo.build("squeezenet1_1")
    for batch in (3, 1, 2):
        feeds = zoo.example_inputs("squeezenet1_1", batch=batch)
        np.testing.assert_allclose(session.run(feeds)["logits"], ort_run(model, feeds)[0], rtol=1e-4, atol=1e-5)
    program = session._program
    assert sorted(program._layouts) == [(1,), (2,), (3,)]
    assert len(program._pool) == 1  # one thread, one arena: sized for batch 3, bound to each plan in turn


def test_an_inconsistent_stored_plan_is_refused_naming_the_file(tmp_path, zoo_graphs):
    graph = zoo_graphs("squeezenet1_1")
    plan = plan_memory(graph).to_dict()
    live_together = [b for b in plan["buffers"] if b["first"] <= 3 <= b["last"] and b["size"]]
    live_together[1]["offset"] = live_together[0]["offset"]  # two live buffers on the same bytes
    path = tmp_path / "bad.claw"
    save_graph(path, graph, plan)
    with pytest.raises(ClawError, match=r"bad\.claw: memory plan: buffers .* overlap"):
        clawdbot.load(path)


def test_a_corrupted_plan_section_is_refused(tmp_path, zoo_graphs):
    graph = zoo_graphs("squeezenet1_1")
    path = tmp_path / "m.claw"
    save_graph(path, graph, plan_memory(graph).to_dict())
    data = bytearray(path.read_bytes())
    at = data.index(b'"arena_bytes"')
    data[at + 2] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(ClawFileError, match="m.claw: corrupted: checksum mismatch in the memory plan section"):
        load_model(path)


def test_a_plan_from_another_clawdbot_version_is_not_used(tmp_path, zoo_graphs):
    """Kernels decide what may share memory; another version's may decide differently, so its plan is
    ignored and the session plans for itself on first run."""
    graph = zoo_graphs("squeezenet1_1")
    plan = plan_memory(graph).to_dict()
    plan["clawdbot"] = "0.0.1"
    path = tmp_path / "old.claw"
    save_graph(path, graph, plan)
    assert stored_plan(path) is None
    session = clawdbot.load(path)
    assert not session._program._layouts
    session.run(zoo.example_inputs("squeezenet1_1", batch=1))
    assert list(session._program._layouts) == [(1,)]


def test_a_plan_for_another_graph_is_refused(zoo_graphs):
    plan = plan_memory(zoo_graphs("squeezenet1_1"))
    with pytest.raises(ClawError, match="does not fit"):
        Session(zoo_graphs("mobilenet_v3_small"), plan=plan)
