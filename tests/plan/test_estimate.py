"""clawdbot.plan.estimate: weights + peak live activations, checked on graphs whose answer follows from first
principles, against a brute-force liveness count on random DAGs, on zoo models, and against a measured run."""
from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clawdbot.errors import ClawError
from clawdbot.importers.onnx import import_onnx
from clawdbot.ir.graph import Graph, Node, TensorType
from clawdbot.ir.infer import infer_graph
from clawdbot.ir.ops import registry
from clawdbot.ir.validate import validate
from clawdbot.plan import MemoryEstimate, estimate_memory
from clawdbot.tools import zoo


# -- building graphs by hand ----------------------------------------------------------------------------------
def node(op: str, ins, outs, name: str | None = None, **attrs) -> Node:
    return Node(op, list(ins), list(outs), registry.get(op).complete_attrs(attrs, op), name or outs[0])


def build(inputs: dict[str, TensorType], nodes: list[Node], outputs, constants=None) -> Graph:
    """A valid graph with every type inferred (symbolic dims stay symbolic)."""
    g = Graph("t", list(inputs), list(outputs), nodes, dict(constants or {}), dict(inputs))
    infer_graph(g)
    validate(g)
    return g


def f32(*shape) -> TensorType:
    return TensorType("float32", tuple(shape))


# -- first principles -----------------------------------------------------------------------------------------
def test_chain_frees_each_value_after_its_last_use_and_excludes_constants():
    # x[10] -concat w[90]-> a[100] -relu-> b[100] -concat(b, b)-> c[200] -relu-> y[200]; float32.
    w = np.zeros(90, np.float32)
    g = build({"x": f32(10)},
              [node("concat", ["x", "w"], ["a"]), node("relu", ["a"], ["b"]),
               node("concat", ["b", "b"], ["c"]), node("relu", ["c"], ["y"])],
              ["y"], {"w": w})
    e = estimate_memory(g)
    # Steps: x+a = 40+400, a+b = 800, b+c = 400+800, c+y = 800+800: the last one is the peak.
    assert e.peak_activation_bytes == 1600
    assert e.peak_step == 3 and e.peak_node == str(g.nodes[3])
    assert dict(e.live_at_peak) == {"c": 800, "y": 800}
    assert e.weights_bytes == 360 and e.largest_weights == (("w", 360),)
    assert e.total_bytes() == 1960 and e.total_bytes(overhead_bytes=40) == 2000
    assert e.dims == {} and e.assumed == ()


def test_diamond_branches_overlap_depending_on_the_order():
    # x[100] splits into two branches a, b (200 each), each reduced to one number, then joined: float32.
    a, b = node("concat", ["x", "x"], ["a"]), node("concat", ["x", "x"], ["b"])
    ra, rb = node("reduce_sum", ["a"], ["ra"]), node("reduce_sum", ["b"], ["rb"])
    y = node("add", ["ra", "rb"], ["y"])
    # Both branches opened first: at step 1, x (400), a (800, still waiting for its reduction) and b (800).
    both_open = estimate_memory(build({"x": f32(100)}, [a, b, ra, rb, y], ["y"]))
    assert both_open.peak_activation_bytes == 2000 and both_open.peak_step == 1
    assert dict(both_open.live_at_peak) == {"x": 400, "a": 800, "b": 800}
    # One branch closed before the next opens: a dies at step 1, so at most x + one branch + the sums.
    one_by_one = estimate_memory(build({"x": f32(100)}, [a, ra, b, rb, y], ["y"]))
    assert one_by_one.peak_activation_bytes == 400 + 800 + 4
    assert one_by_one.peak_step == 1


def test_graph_output_consumed_early_stays_live_to_the_end():
    nodes = [node("relu", ["x"], ["a"]),             # a is both consumed now and returned
             node("concat", ["x", "x"], ["b"]),
             node("relu", ["b"], ["c"]),
             node("relu", ["c"], ["y"])]
    as_output = estimate_memory(build({"x": f32(100)}, nodes, ["a", "y"]))
    # step 2: a (400, returned at the end) + b + c (800 each)
    assert as_output.peak_activation_bytes == 2000
    assert "a" in dict(as_output.live_at_peak)
    # The same nodes with `a` not returned: it dies at step 0 and the peak is b + c or c + y.
    not_output = estimate_memory(build({"x": f32(100)}, nodes, ["y"]))
    assert not_output.peak_activation_bytes == 1600


def test_graph_input_never_consumed_counts_at_step_zero():
    g = build({"x": f32(10), "unused": f32(1000)}, [node("relu", ["x"], ["y"])], ["y"])
    e = estimate_memory(g)
    assert e.peak_activation_bytes == 40 + 40 + 4000 and e.peak_step == 0
    assert e.live_at_peak[0] == ("unused", 4000)


def test_symbolic_dims_bound_from_dims_or_assumed_one():
    g = build({"x": f32("N", 16), "m": f32("N", "T")},
              [node("relu", ["x"], ["a"]), node("relu", ["m"], ["b"])], ["a", "b"])
    given_all = estimate_memory(g, {"N": 4, "T": 8})
    # Step 0: x, a (returned, so live to the end) and m (read at step 1); step 1 has a, m, b: less.
    assert given_all.peak_activation_bytes == 2 * (4 * 16 * 4) + 4 * 8 * 4
    assert dict(given_all.live_at_peak) == {"x": 256, "a": 256, "m": 128}
    assert given_all.dims == {"N": 4, "T": 8} and given_all.assumed == ()
    defaulted = estimate_memory(g, {"N": 4})
    assert defaulted.dims == {"N": 4, "T": 1} and defaulted.assumed == ("T",)
    assert defaulted.peak_activation_bytes == 2 * (4 * 16 * 4) + 4 * 1 * 4
    assert estimate_memory(g).assumed == ("N", "T")
    # The caller's graph keeps its symbolic types.
    assert g.types["a"].shape == ("N", 16)


def test_bad_dims_are_clear_errors():
    g = build({"x": f32("N", 16)}, [node("relu", ["x"], ["y"])], ["y"])
    with pytest.raises(ClawError, match=r"\['batch'\] are not symbolic dims.*\['N'\]"):
        estimate_memory(g, {"batch": 2})
    with pytest.raises(ClawError, match="positive integer"):
        estimate_memory(g, {"N": 0})
    unnamed = build({"x": f32(None, 16)}, [node("relu", ["x"], ["y"])], ["y"])
    with pytest.raises(ClawError, match="graph input 'x'.*unnamed unknown dim at axis 0"):
        estimate_memory(unnamed)


def test_data_dependent_shape_names_value_and_node():
    g = build({"x": f32("N")}, [node("non_zero", ["x"], ["nz"], name="find"), node("identity", ["nz"], ["y"])],
              ["y"])
    with pytest.raises(ClawError, match=r"'nz' \(produced by non_zero node 'find'\).*int64\[1, \?\]"):
        estimate_memory(g, {"N": 8})


def test_result_is_json_able_and_contributors_mix_weights_and_activations():
    w = np.zeros(1000, np.float32)
    g = build({"x": f32(10)}, [node("concat", ["x", "w"], ["a"]), node("relu", ["a"], ["y"])], ["y"], {"w": w})
    e = estimate_memory(g)
    assert isinstance(e, MemoryEstimate)
    d = json.loads(json.dumps(e.to_dict()))
    assert d["weights_bytes"] == 4000 and d["total_bytes"] == 4000 + e.peak_activation_bytes
    assert d["live_at_peak"] == [{"name": n, "bytes": b} for n, b in e.live_at_peak]
    assert e.contributors(3) == [("a", 4040), ("y", 4040), ("w", 4000)]


# -- control flow ---------------------------------------------------------------------------------------------
def _branch(nodes, out_type_of_x=f32("N")) -> dict:
    """A branch taking x (a capture) and returning y, as its to_dict()."""
    return build({"x": out_type_of_x}, nodes, ["y"]).to_dict()


def test_if_counts_the_larger_branch_peak_during_its_step():
    # Inside a branch, x is the capture: the outer value, live at the if's step anyway, so not counted again.
    then_b = _branch([node("concat", ["x", "x", "x"], ["y"])])                          # y = 1200
    else_b = _branch([node("relu", ["x"], ["r"]), node("concat", ["r", "r", "x"], ["y"])])  # r + y = 1600
    g = build({"cond": TensorType("bool", ()), "x": f32("N")},
              [node("if", ["cond", "x"], ["y"], name="choose", then_branch=then_b, else_branch=else_b)], ["y"])
    e = estimate_memory(g, {"N": 100})
    # cond (1 byte) + x (400) + y (1200), and the larger branch's own peak: only one branch runs.
    assert e.peak_activation_bytes == 1 + 400 + 1200 + 1600
    assert ("peak inside subgraph 'else_branch' of if node 'choose'", 1600) in e.live_at_peak


def test_scan_body_is_estimated_with_its_slice_types():
    # The body's types as an importer may leave them, unknown: they come from the scan's inputs here.
    body = build({"s": f32(None), "xi": f32(None)},
                 [node("add", ["s", "xi"], ["s2"]), node("relu", ["xi"], ["yi"])], ["s2", "yi"]).to_dict()
    g = build({"s0": f32(4), "xs": f32("T", 4)},
              [node("scan", ["s0", "xs"], ["s_final", "ys"], name="scan", body=body, num_states=1,
                    num_scan_inputs=1, scan_input_axes=[0], scan_input_directions=[0], scan_output_axes=[0],
                    scan_output_directions=[0])],
              ["s_final", "ys"])
    e = estimate_memory(g, {"T": 10})
    # Outer: s0, xs[10, 4], s_final, ys[10, 4]. Body, with xi one row of xs: s, xi, s2 at its step 0 and
    # xi, s2, yi at its step 1 (s is dead), 3 x 16 bytes either way.
    assert e.peak_activation_bytes == 16 + 160 + 16 + 160 + 48
    assert ("peak inside subgraph 'body' of scan node 'scan'", 48) in e.live_at_peak
    assert e.dims == {"T": 10}


def test_loop_body_is_estimated_with_the_carried_types():
    # The body names its own dim ("len"): its carried value's type comes from the loop's input c0 here.
    body = build({"i": TensorType("int64", ()), "cond": TensorType("bool", ()), "c": f32("len")},
                 [node("identity", ["cond"], ["more"]), node("add", ["c", "c"], ["c2"]), node("relu", ["c"], ["sl"])],
                 ["more", "c2", "sl"]).to_dict()
    g = build({"c0": f32("N")},
              [node("loop", ["M", "", "c0"], ["c_final", "stacked"], name="loop", body=body, num_carried=1)],
              ["c_final", "stacked"], {"M": np.array(3, np.int64)})
    e = estimate_memory(g, {"N": 100})
    # Body at N = 100: its last step holds c, c2, sl (400 each) and `more` (1 byte, returned) = 1201; the others
    # are less. Outer: c0, c_final and the 3 stacked slices [3, 100], with the body's peak. M is a weight.
    assert e.peak_activation_bytes == 400 + 400 + 1200 + 1201
    assert e.weights_bytes == 8
    assert ("stacked", 1200) in e.live_at_peak


def test_data_dependent_shape_inside_a_subgraph_is_a_clear_error():
    then_b = _branch([node("non_zero", ["x"], ["y"], name="nz_then")])
    else_b = _branch([node("relu", ["x"], ["r"]), node("non_zero", ["r"], ["y"], name="nz_else")])
    g = build({"cond": TensorType("bool", ()), "x": f32("N")},
              [node("if", ["cond", "x"], ["y"], name="choose", then_branch=then_b, else_branch=else_b)], ["y"])
    with pytest.raises(ClawError, match=r"if node 'choose': subgraph 'then_branch': .*'y' \(produced by non_zero "
                                        r"node 'nz_then'\)"):
        estimate_memory(g)


# -- random DAGs against brute force --------------------------------------------------------------------------
@st.composite
def dags(draw):
    """A random graph of relu / concat / split nodes on 1-D values, with the length of every value."""
    dtype = draw(st.sampled_from(["float32", "float16", "float64", "int8"]))
    length: dict[str, int] = {}
    inputs = {f"x{i}": draw(st.integers(1, 40)) for i in range(draw(st.integers(1, 3)))}
    consts = {f"w{i}": draw(st.integers(1, 40)) for i in range(draw(st.integers(0, 2)))}
    length.update(inputs)
    length.update(consts)
    nodes = []
    for k in range(draw(st.integers(1, 10))):
        values = sorted(length)
        kind = draw(st.sampled_from(["relu", "concat", "split"]))
        if kind == "relu":
            src = draw(st.sampled_from(values))
            nodes.append(node("relu", [src], [f"v{k}"]))
            length[f"v{k}"] = length[src]
        elif kind == "concat":
            srcs = draw(st.lists(st.sampled_from(values), min_size=1, max_size=3))
            nodes.append(node("concat", srcs, [f"v{k}"]))
            length[f"v{k}"] = sum(length[s] for s in srcs)
        else:  # two parts, ceil-sized first (ONNX Split-18)
            src = draw(st.sampled_from(values))
            nodes.append(node("split", [src], [f"v{k}a", f"v{k}b"]))
            first = -(-length[src] // 2)
            length[f"v{k}a"], length[f"v{k}b"] = first, length[src] - first
    activations = [v for v in sorted(length) if v not in consts]
    outputs = draw(st.lists(st.sampled_from(activations), min_size=1, max_size=3, unique=True))
    g = build({n: TensorType(dtype, (n_,)) for n, n_ in inputs.items()}, nodes, outputs,
              {n: np.zeros(n_, dtype) for n, n_ in consts.items()})
    return g, {v: n * np.dtype(dtype).itemsize for v, n in length.items()}, set(consts)


def brute_force_live(g: Graph, nbytes: dict[str, int], consts: set[str]) -> list[dict[str, int]]:
    """For every step, every non-constant value tested directly: it exists by then, and it is made now, read
    now or later, or returned."""
    born = {v: 0 for v in g.inputs}
    for k, n in enumerate(g.nodes):
        born.update({o: k for o in n.outputs})
    steps = []
    for s in range(len(g.nodes)):
        live = {}
        for v in nbytes:
            if v in consts or born[v] > s:
                continue
            used_later = any(v in g.nodes[t].inputs for t in range(s, len(g.nodes)))
            if born[v] == s or used_later or v in g.outputs:
                live[v] = nbytes[v]
        steps.append(live)
    return steps


@settings(max_examples=200, deadline=None)
@given(dags())
def test_random_dags_match_brute_force(case):
    g, nbytes, consts = case
    e = estimate_memory(g)
    steps = brute_force_live(g, nbytes, consts)
    totals = [sum(s.values()) for s in steps]
    assert e.peak_activation_bytes == max(totals)
    assert e.peak_step == totals.index(max(totals))
    assert dict(e.live_at_peak) == steps[e.peak_step]
    assert e.weights_bytes == sum(nbytes[c] for c in consts)


# -- zoo models -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def zoo_graphs():
    cache: dict[str, Graph] = {}

    def get(name: str) -> Graph:
        if name not in cache:
            cache[name] = import_onnx(zoo.build(name))
        return cache[name]
    return get


@pytest.mark.parametrize("name", ["mobilenet_v2", "squeezenet1_1", "resnet50", "bert_encoder"])
def test_zoo_model_estimate_is_consistent(zoo_graphs, name):
    g = zoo_graphs(name)
    e = estimate_memory(g)
    assert e.dims == {"batch": 1} and e.assumed == ("batch",)
    assert e.weights_bytes == sum(c.nbytes for c in g.constants.values())
    # Independently: the static types at batch 1 (substituted, then the public inference), and for every node
    # its non-constant inputs plus outputs, all live while it runs: the peak is at least the largest of these,
    # and at most everything at once.
    static = Graph(g.name, g.inputs, g.outputs, g.nodes, g.constants,
                   {n: TensorType(t.dtype, tuple(1 if d == "batch" else d for d in t.shape))
                    for n, t in g.types.items() if n in g.inputs})
    infer_graph(static)

    def nbytes(v):
        return static.types[v].numel() * np.dtype(static.types[v].dtype).itemsize

    per_node = [sum(nbytes(v) for v in {*n.inputs, *n.outputs} if v and v not in g.constants) for n in g.nodes]
    everything = sum(nbytes(v) for v in static.types if v not in g.constants)
    assert max(per_node) <= e.peak_activation_bytes <= everything
    assert e.peak_node == str(g.nodes[e.peak_step])
    assert sum(b for _, b in e.live_at_peak) == e.peak_activation_bytes
    assert g.types[g.inputs[0]].shape[0] == "batch"  # the model itself is left as it was


def test_zoo_batch_scales_cnn_activations_not_weights(zoo_graphs):
    g = zoo_graphs("mobilenet_v2")
    one, four = estimate_memory(g), estimate_memory(g, {"batch": 4})
    assert four.assumed == () and four.dims == {"batch": 4}
    assert four.weights_bytes == one.weights_bytes
    # Every activation of a CNN has the batch axis, so the whole schedule scales by 4.
    assert four.peak_activation_bytes == 4 * one.peak_activation_bytes
