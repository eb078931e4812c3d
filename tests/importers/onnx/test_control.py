"""ONNX If, Loop and Scan through clawdbot, compared with onnxruntime.

Bodies that read values of enclosing graphs (captures), bodies with their own initializers and Constant nodes
(hoisted into the model's constants), Loop with and without a trip count and a condition, scan outputs, carried
values whose shape changes, zero iterations, a Loop inside an If, Scan 9+ with axes and directions and Scan 8
with its batch axis; then a .claw round trip, unsupported ops inside bodies, and validation of subgraphs.
conftest.py sets CLAWDBOT_CHECK=1, so kernel outputs (the bodies' too) are checked against inferred types.
"""
from __future__ import annotations

from functools import partial

import numpy as np
import onnx
import pytest
from claw_testing import assert_matches_ort, graph_model, randn
from onnx import TensorProto, helper, numpy_helper

import clawdbot
from clawdbot.converter import ModelConverter
from clawdbot.errors import GraphValidationError, UnsupportedOpsError
from clawdbot.ir.validate import validate

RNG = np.random.default_rng(11)
F, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL
check = partial(assert_matches_ort, rtol=1e-6, atol=1e-6)


# -- building subgraphs --------------------------------------------------------------------------------------
def vi(name: str, elem: int | None = None, shape=None) -> onnx.ValueInfoProto:
    """A value declaration; without an element type it declares nothing (ONNX allows untyped body values)."""
    if elem is None:
        return helper.make_value_info(name, onnx.TypeProto())
    return helper.make_tensor_value_info(name, elem, shape)


def const_node(name: str, value) -> onnx.NodeProto:
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(value), name))


def body(nodes, inputs, outputs, initializers=None, name="body") -> onnx.GraphProto:
    """A subgraph: inputs/outputs are names (untyped) or value infos; initializers a {name: array} dict."""
    decl = [vi(x) if isinstance(x, str) else x for x in inputs]
    outs = [vi(x) if isinstance(x, str) else x for x in outputs]
    inits = [numpy_helper.from_array(np.asarray(v), k) for k, v in (initializers or {}).items()]
    return helper.make_graph(nodes, name, decl, outs, inits)


def subgraph_dicts(d: dict):
    """Every subgraph dict inside graph dict `d`, recursively."""
    for node in d["nodes"]:
        for v in node["attrs"].values():
            if isinstance(v, dict) and "nodes" in v:
                yield v
                yield from subgraph_dicts(v)


# -- If ------------------------------------------------------------------------------------------------------
def if_model() -> onnx.ModelProto:
    """then: (x * 2) + b, reading a computed value and an initializer of the main graph; else: x - k with its own
    initializer k and a Constant node."""
    then_branch = body([helper.make_node("Add", ["w", "b"], ["t_out"])], [], ["t_out"], name="then")
    else_branch = body([const_node("half", np.float32(0.5)),
                        helper.make_node("Sub", ["x", "k"], ["d"]),
                        helper.make_node("Mul", ["d", "half"], ["e_out"])], [], ["e_out"],
                       initializers={"k": randn(RNG, 4)}, name="else")
    nodes = [helper.make_node("Mul", ["x", "two"], ["w"]),
             helper.make_node("If", ["cond"], ["y"], name="branch", then_branch=then_branch,
                              else_branch=else_branch)]
    return graph_model(nodes, {"cond": np.array(True), "x": randn(RNG, (3, 4))},
                       {"two": np.float32(2), "b": randn(RNG, 4)})


@pytest.mark.parametrize("cond", [True, False])
def test_if_branches_capture_outer_values(cond):
    m = if_model()
    check(m, {"cond": np.array(cond), "x": randn(RNG, (3, 4))})
    graph = ModelConverter().convert(m).graph
    (node,) = [n for n in graph.nodes if n.op == "if"]
    # One signature for both branches: the union of what they read, each passed once.
    assert len(node.inputs) == 1 + len(node.attrs["then_branch"]["inputs"])
    assert len(node.inputs) == 1 + len(node.attrs["else_branch"]["inputs"])
    assert len(set(node.inputs[1:])) == len(node.inputs) - 1
    assert {"w", "b"} <= set(node.inputs)


def test_if_branch_shapes_differ():
    """then gives [6, 4], else [3, 4]: the output is [?, 4]."""
    then_branch = body([helper.make_node("Concat", ["x", "x"], ["t"], axis=0)], [], ["t"], name="then")
    else_branch = body([helper.make_node("Neg", ["x"], ["e"])], [], ["e"], name="else")
    m = graph_model([helper.make_node("If", ["cond"], ["y"], then_branch=then_branch, else_branch=else_branch)],
                    {"cond": np.array([True]), "x": randn(RNG, (3, 4))})
    assert ModelConverter().convert(m).graph.types["y"].shape == (None, 4)
    for cond in (True, False):
        check(m, {"cond": np.array([cond]), "x": randn(RNG, (3, 4))})


# -- Loop ----------------------------------------------------------------------------------------------------
def loop_body(with_cond: bool) -> onnx.GraphProto:
    """Carried: acc [2, 3] float (acc + x * i), n int64 scalar (n + 1). Scan outputs: acc, i. cond_out: while
    sum(acc) < limit when the node has a cond, else cond_in passed through. Reads x and limit from outside."""
    nodes = [helper.make_node("Cast", ["i"], ["i_f"], to=F),
             helper.make_node("Mul", ["x", "i_f"], ["step"]),
             helper.make_node("Add", ["acc_in", "step"], ["acc_out"]),
             helper.make_node("Add", ["n_in", "one"], ["n_out"]),
             helper.make_node("Identity", ["acc_out"], ["acc_scan"]),
             helper.make_node("Identity", ["i"], ["i_scan"])]
    if with_cond:
        nodes += [helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
                  helper.make_node("Less", ["total", "limit"], ["cond_out"])]
    else:
        nodes += [helper.make_node("Identity", ["cond_in"], ["cond_out"])]
    # The scan outputs are declared: onnxruntime gives zero iterations' scan outputs a shape only from those.
    return body(nodes, [vi("i", I64, []), vi("cond_in", BOOL, []), "acc_in", "n_in"],
                ["cond_out", "acc_out", "n_out", vi("acc_scan", F, [2, 3]), vi("i_scan", I64, [])],
                initializers={"one": np.int64(1)})


@pytest.mark.parametrize("trip_count, cond", [(6, None), (None, True), (6, True), (50, True), (0, True),
                                              (0, None), (6, False)])
def test_loop_trip_count_and_cond(trip_count, cond):
    """A for loop (M only), a while loop (cond only) and both (the first to end wins); zero iterations."""
    m_in = "M" if trip_count is not None else ""
    c_in = "c" if cond is not None else ""
    node = helper.make_node("Loop", [m_in, c_in, "acc0", "n0"], ["acc", "n", "accs", "iters"], name="the_loop",
                            body=loop_body(with_cond=cond is not None))
    feeds = {"x": np.abs(randn(RNG, (2, 3))), "acc0": randn(RNG, (2, 3)), "n0": np.array(0, np.int64)}
    if trip_count is not None:
        feeds["M"] = np.array(trip_count, np.int64)
    if cond is not None:
        feeds["c"] = np.array(cond)
    m = graph_model([node], feeds, {"limit": np.float32(20)}, outputs=["acc", "n", "accs", "iters"])
    ours = check(m, feeds)
    if trip_count is not None and cond is None:
        assert ours["n"] == trip_count and ours["accs"].shape == (trip_count, 2, 3)


def test_loop_without_cond_ignores_body_cond():
    """ONNX: with M and no cond input the body's cond output is ignored — a for loop. (onnxruntime stops when it
    turns false; clawdbot follows the specification.)"""
    b = body([const_node("stop", np.array(False)), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
             [vi("i", I64, []), vi("c_in", BOOL, []), "v_in"], ["stop", "v_out"], initializers={"one": np.float32(1)})
    m = graph_model([helper.make_node("Loop", ["M", "", "v0"], ["v"], body=b)],
                    {"M": np.array(4, np.int64), "v0": np.float32(0)}, outputs=["v"])
    assert clawdbot.load(m).run({"M": np.array(4, np.int64), "v0": np.float32(0)})["v"] == 4


def test_loop_carried_value_changes_shape():
    """rows grows by one row per iteration: its type widens to [?, 3] and the body is typed for every step."""
    b = body([helper.make_node("Unsqueeze", ["x", "zero"], ["row"]),
              helper.make_node("Concat", ["rows_in", "row"], ["rows_out"], axis=0),
              helper.make_node("Identity", ["c_in"], ["c_out"])],
             [vi("i", I64, []), vi("c_in", BOOL, []), "rows_in"], ["c_out", "rows_out"],
             initializers={"zero": np.array([0], np.int64)})
    feeds = {"M": np.array(4, np.int64), "rows0": randn(RNG, (1, 3)), "x": randn(RNG, 3)}
    m = graph_model([helper.make_node("Loop", ["M", "", "rows0"], ["rows"], body=b)], feeds, outputs=["rows"])
    graph = ModelConverter().convert(m).graph
    assert graph.types["rows"].shape == (None, 3)
    assert check(m, feeds)["rows"].shape == (5, 3)


def loop_in_if_model() -> onnx.ModelProto:
    """then: a Loop summing x * scale over M steps — x from the main graph, read two levels down; scale from the
    then-branch's Constant node; the loop body has its own initializer. else: a Scan over x's rows."""
    inner = body([helper.make_node("Mul", ["x", "scale"], ["xs"]),
                  helper.make_node("Add", ["s_in", "xs"], ["s_mid"]),
                  helper.make_node("Add", ["s_mid", "bias"], ["s_out"]),
                  helper.make_node("Identity", ["c_in"], ["c_out"])],
                 [vi("i", I64, []), vi("c_in", BOOL, []), "s_in"], ["c_out", "s_out"],
                 initializers={"bias": np.full(4, 0.25, np.float32)}, name="inner_loop_body")
    then_branch = body([const_node("scale", np.float32(3)),
                        helper.make_node("Loop", ["M", "", "zeros"], ["t_out"], name="inner_loop", body=inner)],
                       [], ["t_out"], name="then")
    scan_body = body([helper.make_node("Add", ["acc_in", "row"], ["acc_out"])], ["acc_in", "row"], ["acc_out"],
                     name="scan_body")
    else_branch = body([helper.make_node("Scan", ["zeros", "x"], ["e_out"], num_scan_inputs=1, body=scan_body)],
                       [], ["e_out"], name="else")
    nodes = [helper.make_node("If", ["cond"], ["y"], name="outer_if", then_branch=then_branch,
                              else_branch=else_branch)]
    return graph_model(nodes, {"cond": np.array(True), "M": np.array(3, np.int64), "x": randn(RNG, (5, 4))},
                       {"zeros": np.zeros(4, np.float32)})


@pytest.mark.parametrize("cond", [True, False])
def test_loop_inside_if(cond):
    m = loop_in_if_model()
    check(m, {"cond": np.array(cond), "M": np.array(3, np.int64), "x": randn(RNG, (5, 4))})


def test_loop_inside_loop_reads_the_outer_bodys_values():
    """The inner body reads the outer body's formal inputs (its iteration number and carried value) and a value
    of the main graph: each is captured one level at a time."""
    inner = body([helper.make_node("Cast", ["i"], ["i_f"], to=F),
                  helper.make_node("Mul", ["acc_in", "i_f"], ["scaled"]),
                  helper.make_node("Add", ["t_in", "scaled"], ["t_mid"]),
                  helper.make_node("Add", ["t_mid", "x"], ["t_out"]),
                  helper.make_node("Identity", ["c2_in"], ["c2_out"])],
                 [vi("j", I64, []), vi("c2_in", BOOL, []), "t_in"], ["c2_out", "t_out"], name="inner_body")
    outer = body([helper.make_node("Loop", ["N", "", "acc_in"], ["inner_sum"], name="inner", body=inner),
                  helper.make_node("Mul", ["inner_sum", "half"], ["acc_out"]),
                  helper.make_node("Identity", ["c_in"], ["c_out"]),
                  helper.make_node("Identity", ["acc_out"], ["acc_scan"])],
                 [vi("i", I64, []), vi("c_in", BOOL, []), "acc_in"], ["c_out", "acc_out", vi("acc_scan", F, [3])],
                 initializers={"half": np.float32(0.5)}, name="outer_body")
    feeds = {"M": np.array(4, np.int64), "N": np.array(3, np.int64), "acc0": randn(RNG, 3), "x": randn(RNG, 3)}
    m = graph_model([helper.make_node("Loop", ["M", "", "acc0"], ["acc", "accs"], name="outer", body=outer)], feeds,
                    outputs=["acc", "accs"])
    check(m, feeds)


def test_subgraphs_are_closed_and_their_constants_hoisted():
    graph = ModelConverter().convert(loop_in_if_model()).graph
    d = graph.to_dict()
    subs = list(subgraph_dicts(d))
    assert len(subs) == 4  # then, else, the loop body, the scan body
    for sub in subs:
        assert sub["constants"] == []
        used = {i for n in sub["nodes"] for i in n["inputs"] if i} | set(sub["outputs"])
        produced = set(sub["inputs"]) | {o for n in sub["nodes"] for o in n["outputs"]}
        assert used <= produced, f"subgraph {sub['name']} reads {used - produced} from outside"
    hoisted = [c for c in graph.constants.values() if c.shape == (4,) and np.all(c == 0.25)]
    assert len(hoisted) == 1, "the loop body's initializer is one of the model's constants"
    assert any(c.shape == () and c == 3 for c in graph.constants.values()), "the branch's Constant too"


# -- Scan ----------------------------------------------------------------------------------------------------
def scan_model(in_axes, in_dirs, out_axes, out_dirs, opset=17) -> tuple[onnx.ModelProto, dict]:
    """State: sum [3]. Scan inputs: a [T, 3] and b, whose slices are [3] too (b laid out along its in_axes[1]).
    Scan outputs: sum after the step [3], and a * b [3]."""
    b_body = body([helper.make_node("Add", ["s_in", "a_t"], ["s_mid"]),
                   helper.make_node("Add", ["s_mid", "b_t"], ["s_out"]),
                   helper.make_node("Mul", ["a_t", "b_t"], ["prod"]),
                   helper.make_node("Identity", ["s_out"], ["s_scan"])],
                  ["s_in", "a_t", "b_t"], ["s_out", "s_scan", "prod"])
    t = 5
    feeds = {"s0": randn(RNG, 3), "a": randn(RNG, (t, 3)),
             "b": randn(RNG, (t, 3) if in_axes[1] in (0, -2) else (3, t))}
    node = helper.make_node("Scan", ["s0", "a", "b"], ["s", "sums", "prods"], num_scan_inputs=2, body=b_body,
                            scan_input_axes=in_axes, scan_input_directions=in_dirs, scan_output_axes=out_axes,
                            scan_output_directions=out_dirs)
    return graph_model([node], feeds, outputs=["s", "sums", "prods"], opset=opset), feeds


@pytest.mark.parametrize("in_axes, in_dirs, out_axes, out_dirs", [
    ([0, 0], [0, 0], [0, 0], [0, 0]),
    ([0, 1], [1, 0], [1, 0], [0, 1]),
    ([0, -1], [0, 1], [-1, -2], [1, 1]),
    ([-2, 1], [1, 1], [0, 1], [1, 0]),
])
def test_scan_axes_and_directions(in_axes, in_dirs, out_axes, out_dirs):
    m, feeds = scan_model(in_axes, in_dirs, out_axes, out_dirs)
    check(m, feeds)


def test_scan_reads_outer_values_and_has_initializer():
    sb = body([helper.make_node("Mul", ["x_t", "w"], ["xw"]),
               helper.make_node("Add", ["h_in", "xw"], ["h_mid"]),
               helper.make_node("Tanh", ["h_mid"], ["h_out"]),
               helper.make_node("Add", ["h_out", "k"], ["y_t"])],
              ["h_in", "x_t"], ["h_out", "y_t"], initializers={"k": randn(RNG, 4)})
    feeds = {"h0": randn(RNG, 4), "xs": randn(RNG, (6, 4))}
    m = graph_model([helper.make_node("Scan", ["h0", "xs"], ["h", "ys"], num_scan_inputs=1, body=sb)], feeds,
                    {"w": randn(RNG, 4)}, outputs=["h", "ys"], opset=11)
    check(m, feeds)


@pytest.mark.parametrize("directions", [[0], [1]])
def test_scan8_batch_axis(directions):
    """Scan 8: every input and output has a batch axis first; the body sees one batch entry."""
    sb = body([helper.make_node("Add", ["s_in", "x_t"], ["s_out"]),
               helper.make_node("Mul", ["s_out", "x_t"], ["y_t"])],
              ["s_in", "x_t"], ["s_out", "y_t"])
    feeds = {"s0": randn(RNG, (2, 3)), "xs": randn(RNG, (2, 4, 3))}
    m = graph_model([helper.make_node("Scan", ["", "s0", "xs"], ["s", "ys"], num_scan_inputs=1, body=sb,
                                      directions=directions)], feeds, outputs=["s", "ys"], opset=8)
    check(m, feeds)


# -- files, errors, validation -------------------------------------------------------------------------------
def test_claw_round_trip_with_loop(tmp_path):
    node = helper.make_node("Loop", ["M", "c", "acc0", "n0"], ["acc", "n", "accs", "iters"],
                            body=loop_body(with_cond=True))
    feeds = {"M": np.array(7, np.int64), "c": np.array(True), "x": np.abs(randn(RNG, (2, 3))),
             "acc0": randn(RNG, (2, 3)), "n0": np.array(0, np.int64)}
    m = graph_model([node], feeds, {"limit": np.float32(10)}, outputs=["acc", "n", "accs", "iters"])
    path = ModelConverter().convert(m).save(tmp_path / "loop.claw")
    ours = check(m, feeds)                    # converted in memory: as onnxruntime
    saved = clawdbot.load(path).run(feeds)    # loaded from the file: the very same outputs
    assert list(saved) == list(ours)
    for name, v in ours.items():
        assert saved[name].dtype == v.dtype and saved[name].shape == v.shape, name
        np.testing.assert_array_equal(saved[name], v, err_msg=name)


def test_unsupported_ops_inside_bodies_are_reported_with_the_rest():
    """One UnsupportedOpsError names the unknown ops of the main graph and of a nested body, and not the Loop or If
    holding them (those are supported)."""
    inner = body([helper.make_node("FancyOp", ["v_in"], ["v_out"], name="fancy_in_body"),
                  helper.make_node("Identity", ["c_in"], ["c_out"])],
                 [vi("i", I64, []), vi("c_in", BOOL, []), "v_in"], ["c_out", "v_out"])
    then_branch = body([helper.make_node("Loop", ["M", "", "x"], ["t"], name="inner_loop", body=inner)],
                       [], ["t"], name="then")
    else_branch = body([helper.make_node("Neg", ["x"], ["e"])], [], ["e"], name="else")
    nodes = [helper.make_node("If", ["cond"], ["y0"], name="outer_if", then_branch=then_branch,
                              else_branch=else_branch),
             helper.make_node("WeirdOp", ["y0"], ["y"], name="weird")]
    m = graph_model(nodes, {"cond": np.array(True), "M": np.array(2, np.int64), "x": randn(RNG, 3)})
    with pytest.raises(UnsupportedOpsError) as e:
        ModelConverter().convert(m)
    assert set(e.value.unsupported) == {"FancyOp", "WeirdOp"}
    assert e.value.unsupported["FancyOp"] == ["outer_if/then/inner_loop/body/fancy_in_body"]


def test_sequence_ops_in_a_body_are_unsupported():
    b = body([helper.make_node("SequenceEmpty", [], ["seq"], dtype=F),
              helper.make_node("SequenceInsert", ["seq", "v_in"], ["seq2"]),
              helper.make_node("SequenceAt", ["seq2", "zero"], ["v_out"]),
              helper.make_node("Identity", ["c_in"], ["c_out"])],
             [vi("i", I64, []), vi("c_in", BOOL, []), "v_in"], ["c_out", "v_out"],
             initializers={"zero": np.int64(0)})
    m = graph_model([helper.make_node("Loop", ["M", "", "x"], ["y"], body=b)],
                    {"M": np.array(2, np.int64), "x": randn(RNG, 3)})
    with pytest.raises(UnsupportedOpsError, match="SequenceEmpty"):
        ModelConverter().convert(m)


def test_validate_checks_subgraphs_and_names_the_parent_node():
    graph = ModelConverter().convert(loop_in_if_model()).graph
    (node,) = graph.nodes
    loop_body_dict = node.attrs["then_branch"]["nodes"][0]["attrs"]["body"]
    loop_body_dict["nodes"][0]["inputs"][0] = "nowhere"
    with pytest.raises(GraphValidationError) as e:
        validate(graph)
    msg = str(e.value)
    assert "outer_if" in msg and "then_branch" in msg and "inner_loop" in msg and "'body'" in msg
    assert "nowhere" in msg


def test_validate_rejects_a_subgraph_with_constants():
    graph = ModelConverter().convert(if_model()).graph
    (node,) = [n for n in graph.nodes if n.op == "if"]
    node.attrs["else_branch"]["constants"] = ["k"]
    with pytest.raises(GraphValidationError, match="branch.*constants"):
        validate(graph)


def test_validate_checks_the_body_signature():
    feeds = {"M": np.array(2, np.int64), "x": randn(RNG, (2, 3)), "acc0": randn(RNG, (2, 3)),
             "n0": np.array(0, np.int64)}
    m = graph_model([helper.make_node("Loop", ["M", "", "acc0", "n0"], ["acc", "n", "accs", "iters"],
                                      name="the_loop", body=loop_body(with_cond=False))],
                    feeds, outputs=["acc", "n", "accs", "iters"])
    graph = ModelConverter().convert(m).graph
    (node,) = graph.nodes
    node.attrs["body"]["types"][node.attrs["body"]["inputs"][2]]["dtype"] = "float64"
    with pytest.raises(GraphValidationError, match="the_loop"):
        validate(graph)
